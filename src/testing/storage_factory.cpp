#include "durable_execution/testing/storage_factory.hpp"

#include <chrono>
#include <cstdlib>
#include <optional>
#include <utility>

#include "durable_execution/batching_storage.hpp"
#include "durable_execution/forwarding_storage.hpp"
#include "durable_execution/in_memory_storage.hpp"
#include "durable_execution/testing/temp_path.hpp"

namespace durable_execution::testing {

bool running_in_ci() {
  const char* ci = std::getenv("CI");
  if (ci == nullptr) return false;
  const std::string value{ci};
  return !value.empty() && value != "0" && value != "false";
}

StorageFactory in_memory_factory() {
  return {"InMemory", [] { return std::make_unique<InMemoryTaskExecutionsStorage>(); }};
}

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

StorageFactory fault_injection_factory(StorageFactory inner, FaultInjectionOptions options) {
  auto make = inner.make;
  return {"FaultInjection" + inner.name,
          [make, options] {
            return std::make_unique<FaultInjectingTaskExecutionsStorage>(make(), options);
          },
          inner.unavailable_reason};
}

namespace {

/** A storage that owns its temp directory. Members die before the base (which owns the store),
 * so the destructor closes the store first; only then is the directory removed. */
class TempDirectoryStorage final : public ForwardingTaskExecutionsStorage {
 public:
  TempDirectoryStorage(std::unique_ptr<TempDirectory> directory,
                       std::unique_ptr<TaskExecutionsStorage> storage)
      : ForwardingTaskExecutionsStorage(std::move(storage)), directory_(std::move(directory)) {}
  TempDirectoryStorage(const TempDirectoryStorage&) = delete;
  TempDirectoryStorage& operator=(const TempDirectoryStorage&) = delete;
  TempDirectoryStorage(TempDirectoryStorage&&) = delete;
  TempDirectoryStorage& operator=(TempDirectoryStorage&&) = delete;
  ~TempDirectoryStorage() override { reset_owned(); }

 private:
  std::unique_ptr<TempDirectory> directory_;
};

}  // namespace

StorageFactory temp_directory_storage_factory(
    std::string name,
    std::function<std::unique_ptr<TaskExecutionsStorage>(const std::filesystem::path& directory)>
        open) {
  auto stem = "de_" + name;
  return {std::move(name),
          [open = std::move(open), stem]() -> std::unique_ptr<TaskExecutionsStorage> {
            // The directory is made first and dies with the storage, or here if open throws.
            auto directory = std::make_unique<TempDirectory>(stem);
            auto storage = open(directory->path());
            if (!storage) return nullptr;
            return std::make_unique<TempDirectoryStorage>(std::move(directory), std::move(storage));
          }};
}

}  // namespace durable_execution::testing
