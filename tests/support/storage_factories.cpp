#include <atomic>
#include <filesystem>
#include <random>

#include "durable_execution/in_memory_storage.hpp"
#include "storage_factory.hpp"

#ifdef DE_TEST_WITH_SQLITE
#include "durable_execution/sqlite/sqlite_storage.hpp"
#endif

namespace durable_execution::testing {

std::string temp_path(const std::string& stem) {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  auto name = stem + "_" + std::to_string(rd()) + "_" + std::to_string(counter.fetch_add(1));
  return (std::filesystem::temp_directory_path() / name).string();
}

StorageFactory in_memory_factory() {
  return {"InMemory", [] { return std::make_unique<InMemoryTaskExecutionsStorage>(); }};
}

std::vector<StorageFactory> all_storage_factories() {
  std::vector<StorageFactory> factories{in_memory_factory()};
#ifdef DE_TEST_WITH_SQLITE
  factories.push_back(sqlite_factory());
#endif
  return factories;
}

}  // namespace durable_execution::testing
