#pragma once

// The storage conformance suite (SPEC.md §4.1, §4.3 Part B), part of the testing kit
// (durable_execution::testing, needs GoogleTest): one value-parameterized GoogleTest suite that
// every TaskExecutionsStorage backend must pass. A backend's test runs the whole suite with one
// macro call at namespace scope (docs/custom-storage.md):
//
//   DE_STORAGE_CONFORMANCE_SUITE(MyStore, [] { return std::make_unique<MyStore>(); });

#include <gtest/gtest.h>

#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "durable_execution/errors.hpp"
#include "durable_execution/storage.hpp"
#include "durable_execution/task_execution.hpp"
#include "durable_execution/testing/storage_factory.hpp"

namespace durable_execution::testing {

/**
 * @brief Fixture of the storage conformance suite: a fresh, empty storage per test (made by the
 * parameter's factory; delete_all() then destroyed after the test), a fixed `now` and record
 * builders. Extra TEST_P bodies on it run on every instantiation, like the suite's own.
 * @note Thread safety: the fixture itself is used from the test thread; the storage it holds is
 *   shared with worker threads in the concurrency tests.
 */
class StorageConformance : public ::testing::TestWithParam<StorageFactory> {
 protected:
  /** @brief A stored row. */
  using Record = TaskExecutionRecord;
  /** @brief The changes of an update request. */
  using Update = TaskExecutionUpdate;
  /** @brief The storage's time type. */
  using Timestamp = ::durable_execution::Timestamp;

  /** @brief Makes the storage with the parameter's factory (skips, or fails in CI, if unavailable).
   */
  void SetUp() override;
  /** @brief delete_all(), then destroys the storage. */
  void TearDown() override;

  /** @brief The storage under test. */
  [[nodiscard]] TaskExecutionsStorage& storage() { return *storage_; }

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

  /** @brief storage().insert_many(records). */
  void insert(const std::vector<Record>& records) { storage().insert_many(records); }
  /** @brief normalize_update(now, update), i.e. the update as the engine would send it. */
  [[nodiscard]] static Update normalized(Timestamp now, Update update);

  /** @brief A fixed reference time for the test; rows are keyed relative to it. */
  Timestamp now_{};
  /** @brief The storage under test (null before SetUp and after TearDown). */
  std::unique_ptr<TaskExecutionsStorage> storage_;
};

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

namespace detail {

/**
 * Defined in the kit's library, next to the suite's tests. DE_STORAGE_CONFORMANCE_SUITE calls
 * it, so that a static link pulls in every part of the suite: the TEST_P bodies register
 * themselves through static initializers that nothing else references.
 */
int link_storage_conformance_suite() noexcept;

/** A factory given as a StorageFactory keeps its name (the suite's name if it has none). */
inline StorageFactory to_storage_factory(const char* suite_name, StorageFactory factory) {
  if (factory.name.empty()) factory.name = suite_name;
  return factory;
}

/** A factory given as a callable returning the storage is named after the suite. */
template <class Make>
requires std::invocable<Make&> &&
    std::convertible_to<std::invoke_result_t<Make&>, std::unique_ptr<TaskExecutionsStorage>>
        StorageFactory to_storage_factory(const char* suite_name, Make make) {
  return {suite_name, [make = std::move(make)]() mutable {
            return std::unique_ptr<TaskExecutionsStorage>{make()};
          }};
}

}  // namespace detail

}  // namespace durable_execution::testing

/**
 * @brief Runs the whole storage conformance suite on the storages the factory makes. Use it once
 * per backend (or wrapper combination), at namespace scope, followed by a semicolon:
 *
 * @code
 * DE_STORAGE_CONFORMANCE_SUITE(MyStore, [] { return std::make_unique<MyStore>(); });
 * DE_STORAGE_CONFORMANCE_SUITE(BatchingMyStore, durable_execution::testing::batching_factory(
 *                                                   {"MyStore", [] { return ...; }}));
 * @endcode
 *
 * `Name` (letters, digits, underscores) prefixes the test names: `Name/StorageConformance.<test>/
 * <factory name>`. The factory is a callable returning a `std::unique_ptr` to a fresh, empty
 * TaskExecutionsStorage (the test's param is then named `Name`), or a
 * durable_execution::testing::StorageFactory (keeps its own name, and can say when the backend
 * is unavailable). The executable links `durable_execution::testing` and GoogleTest's main.
 */
#define DE_STORAGE_CONFORMANCE_SUITE(Name, ...)                                            \
  namespace de_storage_conformance_##Name {                                                \
    using ::durable_execution::testing::StorageConformance;                                \
    [[maybe_unused]] static const int de_link_anchor_ =                                    \
        ::durable_execution::testing::detail::link_storage_conformance_suite();            \
    INSTANTIATE_TEST_SUITE_P(                                                              \
        Name, StorageConformance,                                                          \
        ::testing::Values(                                                                 \
            ::durable_execution::testing::detail::to_storage_factory(#Name, __VA_ARGS__)), \
        ::durable_execution::testing::factory_name);                                       \
  }                                                                                        \
  static_assert(true)
