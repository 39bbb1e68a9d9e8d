#include "postgres_support.hpp"

#include <atomic>
#include <cstdlib>
#include <pqxx/pqxx>
#include <random>

#include "durable_execution/forwarding_storage.hpp"

namespace durable_execution::testing {

std::optional<std::string> postgres_test_url() {
  const char* url = std::getenv(kPostgresUrlVariable);
  if (url == nullptr || *url == '\0') return std::nullopt;
  return std::string{url};
}

std::string postgres_unavailable_reason() {
  if (postgres_test_url()) return {};
  return std::string{"PostgreSQL tests skipped: set "} + kPostgresUrlVariable +
         " to a server URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres) to run them";
}

std::string unique_schema_name() {
  static std::atomic<unsigned> counter{0};
  static const std::string process_tag = [] {
    std::random_device rd;
    std::string tag;
    constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::uniform_int_distribution<std::size_t> dist(0, sizeof(kAlphabet) - 2);
    std::mt19937_64 gen{(static_cast<std::uint64_t>(rd()) << 32) | rd()};
    for (int i = 0; i < 10; ++i) tag += kAlphabet[dist(gen)];
    return tag;
  }();
  return "de_test_" + process_tag + "_" + std::to_string(counter.fetch_add(1));
}

void postgres_exec(const std::string& url, const std::string& sql) {
  pqxx::connection c{url};
  pqxx::nontransaction tx{c};
  tx.exec("SET client_min_messages = warning");
  tx.exec(sql);
  tx.commit();
}

std::vector<std::vector<std::string>> postgres_query(const std::string& url,
                                                     const std::string& sql) {
  pqxx::connection c{url};
  pqxx::nontransaction tx{c};
  tx.exec("SET client_min_messages = warning");
  const auto r = tx.exec(sql);
  tx.commit();
  std::vector<std::vector<std::string>> out;
  for (const auto& row : r) {
    auto& cells = out.emplace_back();
    for (const auto& field : row) cells.emplace_back(field.is_null() ? "<null>" : field.c_str());
  }
  return out;
}

void drop_postgres_schema(const std::string& url, const std::string& schema) noexcept {
  try {
    postgres_exec(url, "DROP SCHEMA IF EXISTS \"" + schema + "\" CASCADE");
  } catch (...) {
    // Best effort: a leftover schema of a crashed run is harmless (names never repeat).
  }
}

namespace {

class TempSchemaPostgresStorage final : public ForwardingTaskExecutionsStorage {
 public:
  TempSchemaPostgresStorage(std::string url, std::string schema, PostgresStorageOptions options)
      : ForwardingTaskExecutionsStorage(open(url, schema, std::move(options))),
        url_(std::move(url)),
        schema_(std::move(schema)) {}
  TempSchemaPostgresStorage(const TempSchemaPostgresStorage&) = delete;
  TempSchemaPostgresStorage& operator=(const TempSchemaPostgresStorage&) = delete;
  TempSchemaPostgresStorage(TempSchemaPostgresStorage&&) = delete;
  TempSchemaPostgresStorage& operator=(TempSchemaPostgresStorage&&) = delete;
  ~TempSchemaPostgresStorage() override {
    reset_owned();  // close the connections first
    drop_postgres_schema(url_, schema_);
  }

 private:
  static std::unique_ptr<TaskExecutionsStorage> open(const std::string& url,
                                                     const std::string& schema,
                                                     PostgresStorageOptions options) {
    options.schema = schema;
    try {
      return std::make_unique<PostgresTaskExecutionsStorage>(url, std::move(options));
    } catch (...) {
      drop_postgres_schema(url, schema);
      throw;
    }
  }

  std::string url_;
  std::string schema_;
};

}  // namespace

std::unique_ptr<TaskExecutionsStorage> make_temp_schema_postgres_storage(
    PostgresStorageOptions options) {
  const auto url = postgres_test_url();
  if (!url) throw std::runtime_error(postgres_unavailable_reason());
  return std::make_unique<TempSchemaPostgresStorage>(*url, unique_schema_name(),
                                                     std::move(options));
}

}  // namespace durable_execution::testing
