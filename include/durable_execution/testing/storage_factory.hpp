#pragma once

// Part of the testing kit (durable_execution::testing, needs GoogleTest): the named storage
// factory that parameterizes the conformance suite and any other storage-parameterized test, and
// factories for the library's own stores and wrappers. See docs/custom-storage.md.

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "durable_execution/fault_injection_storage.hpp"
#include "durable_execution/storage.hpp"

namespace durable_execution::testing {

/**
 * @brief A named way to make a fresh, empty storage: the parameter of every storage suite.
 *
 * @code
 * durable_execution::testing::StorageFactory mine{
 *     "MyStore", [] { return std::make_unique<MyStore>(); }};
 * @endcode
 *
 * `name` becomes part of the test names, so it must be letters, digits and underscores.
 * @note Thread safety: `make` is called from the test thread, once per test.
 */
struct StorageFactory {
  /** The backend's name in the test names (letters, digits, underscores). */
  std::string name;
  /** Makes a fresh, empty storage. */
  std::function<std::unique_ptr<TaskExecutionsStorage>()> make;
  /** Why this backend cannot run here (say, no database server configured); empty if it can. */
  std::function<std::string()> unavailable_reason{};
};

/** @brief True when the tests run in CI (`CI` set and not "false"/"0"): then a backend that is
 * unavailable fails its tests instead of skipping them. */
[[nodiscard]] bool running_in_ci();

/**
 * @brief In a fixture's SetUp: skips the test, with the reason, when the factory's backend is
 * unavailable here; in CI the test fails instead, so a missing server cannot pass silently.
 */
#define DE_SKIP_IF_STORAGE_UNAVAILABLE(factory)                                    \
  do {                                                                             \
    if ((factory).unavailable_reason) {                                            \
      if (auto de_reason_ = (factory).unavailable_reason(); !de_reason_.empty()) { \
        if (::durable_execution::testing::running_in_ci()) {                       \
          FAIL() << de_reason_ << " (CI is set: a missing backend fails the run)"; \
        }                                                                          \
        GTEST_SKIP() << de_reason_;                                                \
      }                                                                            \
    }                                                                              \
  } while (false)

/** @brief Test names, failure messages and ctest show the factory by name, not as bytes. */
inline void PrintTo(const StorageFactory& factory, std::ostream* os) { *os << factory.name; }

/** @brief The name generator of INSTANTIATE_TEST_SUITE_P over factories: the factory's name. */
inline std::string factory_name(const ::testing::TestParamInfo<StorageFactory>& info) {
  return info.param.name;
}

/** @brief Fresh InMemoryTaskExecutionsStorage instances, named "InMemory". */
[[nodiscard]] StorageFactory in_memory_factory();

/**
 * @brief `inner`'s storages, each wrapped in a TaskExecutionsStorageWithBatching with a short
 * window ("Batching" + its name): the executor's `enable_storage_batching` sends every call
 * through this wrapper, so a backend should keep the contract behind it too.
 */
[[nodiscard]] StorageFactory batching_factory(StorageFactory inner);

/**
 * @brief `inner`'s storages, each wrapped in a FaultInjectingTaskExecutionsStorage that starts
 * with `options` ("FaultInjection" + its name). With the default options no call fails, so the
 * wrapper must pass the whole conformance suite; with faults it is for executor tests.
 */
[[nodiscard]] StorageFactory fault_injection_factory(StorageFactory inner,
                                                     FaultInjectionOptions options = {});

/**
 * @brief For a backend that keeps its data in files: each storage gets a fresh, empty temp
 * directory, passed to `open`, and the directory (with everything in it) is removed after the
 * storage is destroyed. A storage that `open` fails to make leaves no directory behind.
 *
 * @code
 * auto factory = durable_execution::testing::temp_directory_storage_factory(
 *     "MyFileStore", [](const std::filesystem::path& dir) {
 *       return std::make_unique<MyFileStore>(dir / "store.db");
 *     });
 * @endcode
 */
[[nodiscard]] StorageFactory temp_directory_storage_factory(
    std::string name,
    std::function<std::unique_ptr<TaskExecutionsStorage>(const std::filesystem::path& directory)>
        open);

}  // namespace durable_execution::testing
