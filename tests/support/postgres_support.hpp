#pragma once

// PostgreSQL test helpers: the server URL from the environment, a unique schema per storage
// (dropped afterwards), and raw SQL for tests that inspect or tamper with the database.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "durable_execution/postgres/postgres_storage.hpp"
#include "durable_execution/storage.hpp"

namespace durable_execution::testing {

/** @brief The environment variable that holds the test server's libpq URL. */
inline constexpr const char* kPostgresUrlVariable = "DE_TEST_PG_URL";

/** @brief The test server's URL (DE_TEST_PG_URL), or nullopt when it is not set. */
[[nodiscard]] std::optional<std::string> postgres_test_url();

/** @brief Why PostgreSQL tests cannot run here ("" when they can). */
[[nodiscard]] std::string postgres_unavailable_reason();

/** @brief A new schema name, unique across processes and runs ("de_test_<random>"). */
[[nodiscard]] std::string unique_schema_name();

/** @brief Runs SQL statements on the test server (no parameters; test code only). */
void postgres_exec(const std::string& url, const std::string& sql);

/** @brief Runs one query and returns its rows as text (NULL as "<null>"). */
[[nodiscard]] std::vector<std::vector<std::string>> postgres_query(const std::string& url,
                                                                   const std::string& sql);

/** @brief Drops a schema and everything in it; never throws. */
void drop_postgres_schema(const std::string& url, const std::string& schema) noexcept;

/** @brief A PostgreSQL storage in its own new schema, dropped when the storage is destroyed. */
[[nodiscard]] std::unique_ptr<TaskExecutionsStorage> make_temp_schema_postgres_storage(
    PostgresStorageOptions options = {});

}  // namespace durable_execution::testing
