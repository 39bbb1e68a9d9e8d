#pragma once

// The storage factories of the project's own parameterized suites: the testing kit's
// (StorageFactory, in-memory, batching, fault injection, temp paths) plus the database backends
// built into this test build.

#include <string>
#include <vector>

#include "durable_execution/testing/storage_factory.hpp"
#include "durable_execution/testing/temp_path.hpp"

namespace durable_execution::testing {

#ifdef DE_TEST_WITH_SQLITE
/** @brief Fresh SQLite storages, each on a new file in its own temp directory (removed after). */
[[nodiscard]] StorageFactory sqlite_factory();
#endif

#ifdef DE_TEST_WITH_POSTGRES
/** @brief Fresh PostgreSQL storages, each in a new schema of the DE_TEST_PG_URL server (dropped
 * afterwards); unavailable (skipped, or failed in CI) when DE_TEST_PG_URL is not set. */
[[nodiscard]] StorageFactory postgres_factory();
#endif

/** @brief Every backend built into this test build: in-memory, then databases. */
[[nodiscard]] std::vector<StorageFactory> all_storage_factories();

}  // namespace durable_execution::testing
