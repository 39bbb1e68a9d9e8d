#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <system_error>

#include "durable_execution/batching_storage.hpp"
#include "durable_execution/forwarding_storage.hpp"
#include "durable_execution/in_memory_storage.hpp"
#include "storage_factory.hpp"

#ifdef DE_TEST_WITH_SQLITE
#include "durable_execution/sqlite/sqlite_storage.hpp"
#endif
#ifdef DE_TEST_WITH_POSTGRES
#include "postgres_support.hpp"
#endif

namespace durable_execution::testing {

std::string temp_path(const std::string& stem) {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  auto name = stem + "_" + std::to_string(rd()) + "_" + std::to_string(counter.fetch_add(1));
  return (std::filesystem::temp_directory_path() / name).string();
}

bool running_in_ci() {
  const char* ci = std::getenv("CI");
  if (ci == nullptr) return false;
  const std::string value{ci};
  return !value.empty() && value != "0" && value != "false";
}

StorageFactory in_memory_factory() {
  return {"InMemory", [] { return std::make_unique<InMemoryTaskExecutionsStorage>(); }};
}

#ifdef DE_TEST_WITH_SQLITE
namespace {

/** Removes a SQLite database file and its WAL/shared-memory companions; never throws. */
void remove_sqlite_files(const std::string& path) noexcept {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    std::filesystem::remove(path + suffix, ignored);
  }
}

/** A SQLite storage on its own temp file that deletes the file (and -wal/-shm) when destroyed. */
class TempFileSqliteStorage final : public ForwardingTaskExecutionsStorage {
 public:
  explicit TempFileSqliteStorage(const std::string& path)
      : ForwardingTaskExecutionsStorage(open(path)), path_(path) {}
  TempFileSqliteStorage(const TempFileSqliteStorage&) = delete;
  TempFileSqliteStorage& operator=(const TempFileSqliteStorage&) = delete;
  TempFileSqliteStorage(TempFileSqliteStorage&&) = delete;
  TempFileSqliteStorage& operator=(TempFileSqliteStorage&&) = delete;
  ~TempFileSqliteStorage() override {
    reset_owned();  // close the database before deleting its files
    remove_sqlite_files(path_);
  }

 private:
  static std::unique_ptr<TaskExecutionsStorage> open(const std::string& path) {
    try {
      return std::make_unique<SqliteTaskExecutionsStorage>(path);
    } catch (...) {
      remove_sqlite_files(path);
      throw;
    }
  }

  std::string path_;
};

}  // namespace

StorageFactory sqlite_factory() {
  // A fresh FILE per storage (never ":memory:", which is per connection and hides locking bugs).
  return {"Sqlite", [] {
            return std::make_unique<TempFileSqliteStorage>(temp_path("de_sqlite_test") + ".db");
          }};
}
#endif

#ifdef DE_TEST_WITH_POSTGRES
StorageFactory postgres_factory() {
  return {"Postgres", [] { return make_temp_schema_postgres_storage(); },
          [] { return postgres_unavailable_reason(); }};
}
#endif

StorageFactory batching_factory(StorageFactory inner) {
  auto make = inner.make;
  return {"Batching" + inner.name,
          [make] {
            // A short window: the suite's concurrent tests still form batches, the others do
            // not wait.
            return std::make_unique<TaskExecutionsStorageWithBatching>(
                make(), StorageBatchingOptions{.window = std::chrono::microseconds{200}});
          },
          inner.unavailable_reason};
}

std::vector<StorageFactory> all_storage_factories() {
  std::vector<StorageFactory> factories{in_memory_factory()};
#ifdef DE_TEST_WITH_SQLITE
  factories.push_back(sqlite_factory());
#endif
#ifdef DE_TEST_WITH_POSTGRES
  factories.push_back(postgres_factory());
#endif
  return factories;
}

}  // namespace durable_execution::testing
