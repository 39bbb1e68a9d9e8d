#pragma once

// The storage conformance suite (SPEC.md §4.1, §4.3 Part B): one value-parameterized GoogleTest
// suite that every TaskExecutionsStorage backend must pass. A backend's test executable links
// the `durable_execution_conformance` target (an OBJECT library, so the TEST_P bodies are always
// linked in) and instantiates the suite with its factory at global scope:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StorageConformance,
//                            ::testing::Values(durable_execution::testing::sqlite_factory()),
//                            durable_execution::testing::factory_name);
//
// The fixture lives in the global namespace so that the instantiation macro finds it unqualified.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "durable_execution/storage.hpp"
#include "durable_execution/task_execution.hpp"
#include "storage_factory.hpp"

/**
 * @brief Fixture of the storage conformance suite: a fresh, empty storage per test (made by the
 * parameter's factory), a fixed `now` and record builders.
 * @note Thread safety: the fixture itself is used from the test thread; the storage it holds is
 *   shared with worker threads in the concurrency tests.
 */
class StorageConformance
    : public ::testing::TestWithParam<durable_execution::testing::StorageFactory> {
 protected:
  using Record = durable_execution::TaskExecutionRecord;
  using Update = durable_execution::TaskExecutionUpdate;
  using Timestamp = durable_execution::Timestamp;

  void SetUp() override;
  void TearDown() override;

  [[nodiscard]] durable_execution::TaskExecutionsStorage& storage() { return *storage_; }

  /** @brief A fresh ready record as the engine inserts it (make_task_execution_record at now_),
   * with a new task id, execution id and a 1000 ms timeout. */
  [[nodiscard]] Record new_record() const;
  /** @brief A fresh sleeping record (status running, expires_at set) with the given unique id. */
  [[nodiscard]] Record new_sleeping_record(const std::string& unique_id) const;
  /** @brief A fresh record whose parent summary points at `parent`. */
  [[nodiscard]] Record new_child_record(const Record& parent, std::int32_t index,
                                        bool is_finalize = false) const;
  /** @brief A record with every optional field set and every field away from its default. */
  [[nodiscard]] Record fully_populated_record() const;

  /** @brief The stored row, or nullopt. */
  [[nodiscard]] std::optional<Record> find(const std::string& execution_id);
  /** @brief The stored row; throws (failing the test) when it is missing. */
  [[nodiscard]] Record fetch(const std::string& execution_id);
  /** @brief Every row among `ids`, in order, each fetched. */
  [[nodiscard]] std::vector<Record> fetch_all(const std::vector<std::string>& ids);

  void insert(const std::vector<Record>& records) { storage().insert_many(records); }
  /** @brief normalize_update(now, update), i.e. the update as the engine would send it. */
  [[nodiscard]] static Update normalized(Timestamp now, Update update);

  /** @brief A fixed reference time for the test; rows are keyed relative to it. */
  Timestamp now_{};
  std::unique_ptr<durable_execution::TaskExecutionsStorage> storage_;
};

namespace durable_execution::testing {

/** @brief A new task id ("task_" + random suffix), unique within the process. */
[[nodiscard]] std::string new_task_id();

/**
 * @brief Calls `fn`, retrying (up to a bounded number of attempts) while it throws a retryable
 * DurableExecutionError, as the engine's retry wrapper does; database backends may report
 * transient contention (busy database) that way under the concurrency tests.
 */
template <class Fn>
decltype(auto) with_storage_retries(Fn&& fn) {
  constexpr int kMaxAttempts = 200;
  for (int attempt = 1;; ++attempt) {
    try {
      return fn();
    } catch (const DurableExecutionError& e) {
      if (!e.is_retryable() || attempt >= kMaxAttempts) throw;
    }
  }
}

}  // namespace durable_execution::testing
