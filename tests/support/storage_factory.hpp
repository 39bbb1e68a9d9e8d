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
};

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

/** @brief Every backend built into this test build: in-memory, then databases. */
[[nodiscard]] std::vector<StorageFactory> all_storage_factories();

/** @brief A unique path in the system temp directory (the file is not created). */
[[nodiscard]] std::string temp_path(const std::string& stem);

}  // namespace durable_execution::testing
