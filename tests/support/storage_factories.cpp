#include <memory>

#include "storage_factory.hpp"

#ifdef DE_TEST_WITH_SQLITE
#include "durable_execution/sqlite/sqlite_storage.hpp"
#endif
#ifdef DE_TEST_WITH_POSTGRES
#include "postgres_support.hpp"
#endif

namespace durable_execution::testing {

#ifdef DE_TEST_WITH_SQLITE
StorageFactory sqlite_factory() {
  // A fresh FILE per storage (never ":memory:", which is per connection and hides locking bugs);
  // the directory takes the -wal and -shm files with it.
  return temp_directory_storage_factory("Sqlite", [](const std::filesystem::path& directory) {
    return std::make_unique<SqliteTaskExecutionsStorage>((directory / "test.db").string());
  });
}
#endif

#ifdef DE_TEST_WITH_POSTGRES
StorageFactory postgres_factory() {
  return {"Postgres", [] { return make_temp_schema_postgres_storage(); },
          [] { return postgres_unavailable_reason(); }};
}
#endif

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
