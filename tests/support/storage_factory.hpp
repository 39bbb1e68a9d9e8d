#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "durable_execution/storage.hpp"

namespace durable_execution::testing {

/** @brief A named way to make a fresh, empty storage; the parameter of every storage suite. */
struct StorageFactory {
  std::string name;
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

inline std::string factory_name(const ::testing::TestParamInfo<StorageFactory>& info) {
  return info.param.name;
}

/** @brief Fresh in-memory storages. */
[[nodiscard]] StorageFactory in_memory_factory();

#ifdef DE_TEST_WITH_SQLITE
/** @brief Fresh SQLite storages, each on a new temp file. */
[[nodiscard]] StorageFactory sqlite_factory();
#endif

#ifdef DE_TEST_WITH_POSTGRES
/** @brief Fresh PostgreSQL storages, each in a new schema of the DE_TEST_PG_URL server (dropped
 * afterwards); unavailable (skipped, or failed in CI) when DE_TEST_PG_URL is not set. */
[[nodiscard]] StorageFactory postgres_factory();
#endif

/** @brief `inner`'s storages, each wrapped in a TaskExecutionsStorageWithBatching ("Batching" +
 * its name). */
[[nodiscard]] StorageFactory batching_factory(StorageFactory inner);

/** @brief Every backend built into this test build: in-memory, then databases. */
[[nodiscard]] std::vector<StorageFactory> all_storage_factories();

/** @brief A unique path in the system temp directory (the file is not created). */
[[nodiscard]] std::string temp_path(const std::string& stem);

}  // namespace durable_execution::testing
