#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "durable_execution/export.hpp"
#include "durable_execution/forwarding_storage.hpp"

namespace durable_execution {

/** @brief The methods of TaskExecutionsStorage, to aim a fault at one of them. */
enum class StorageOperation : std::uint8_t {
  insert_many,
  get_many_by_id,
  get_many_by_sleeping_task_unique_id,
  update_many_by_id,
  update_many_by_id_and_insert_children_if_updated,
  update_by_status_and_start_at_less_than_and_return,
  update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return,
  update_by_close_status_and_return,
  update_by_is_sleeping_task_and_expires_at_less_than,
  update_by_on_children_finished_processing_expires_at_less_than,
  update_by_close_expires_at_less_than,
  update_by_executor_id_and_needs_promise_cancellation_and_return,
  get_many_by_parent_execution_id,
  update_many_by_parent_execution_id_and_is_finished,
  update_and_decrement_parent_active_children_count_by_is_finished_and_close_status,
  delete_by_id,
  delete_all,
};

/** @brief The method's name, as in TaskExecutionsStorage. */
[[nodiscard]] DURABLE_EXECUTION_EXPORT std::string_view to_string(StorageOperation op) noexcept;

/** @brief The faults a FaultInjectingTaskExecutionsStorage starts with (all can be changed). */
struct FaultInjectionOptions {
  /** Seed of the random choices (which calls fail, how long each call waits). */
  std::uint64_t seed = 0;
  /** Fraction of calls, 0-1, that fail at random before reaching the wrapped storage. */
  double failure_rate = 0;
  /** Whether those failures are marked retryable (a busy database) or not (a broken one). */
  bool failures_are_retryable = true;
  /** Each call first waits a random time in [min_latency, max_latency]. */
  std::chrono::milliseconds min_latency{0};
  /// Upper bound of that wait (>= min_latency).
  std::chrono::milliseconds max_latency{0};
};

/**
 * @brief A storage wrapper that injects faults, for testing what an executor does when its
 * storage misbehaves: random failures of a chosen fraction of calls (retryable or not), added
 * latency, the next N calls of one method failing, and batches that fail because one of their
 * requests is bad.
 *
 * An injected failure throws DurableExecutionError ("Injected fault in <method>") before the
 * call reaches the wrapped storage, so a failed call writes nothing — as a database that rolls
 * back the whole transaction. `delete_by_id` and `delete_all` (test helpers) never fail at
 * random, but fail_next() can aim at them.
 *
 * @code
 * durable_execution::InMemoryTaskExecutionsStorage memory;
 * durable_execution::FaultInjectingTaskExecutionsStorage storage{
 *     memory, {.seed = 42, .failure_rate = 0.05}};
 * storage.fail_next(durable_execution::StorageOperation::update_many_by_id, 3);
 * storage.fail_requests([](durable_execution::StorageOperation, const std::string& id) {
 *   return id == poisoned_id;  // every batch holding this execution fails, non-retryably
 * });
 * durable_execution::DurableExecutor executor{storage};
 * @endcode
 *
 * @note Thread safety: thread-safe (the random source is shared under a mutex; the sequence of
 *   choices is reproducible for one seed when calls come in the same order). A borrowed storage
 *   must outlive the wrapper; an owned one is destroyed with it.
 */
class DURABLE_EXECUTION_EXPORT FaultInjectingTaskExecutionsStorage final
    : public ForwardingTaskExecutionsStorage {
 public:
  /**
   * Decides whether a request of a batch is bad: called with the method and the execution id of
   * each request of the by-id and by-parent methods (insert_many: each record; children inserts:
   * the parent's id and each child's; the by-parent methods: the parent's id).
   */
  using RequestPredicate = std::function<bool(StorageOperation op, const std::string& id)>;

  /**
   * @brief Wraps a borrowed storage, which must outlive the wrapper.
   * @throws DurableExecutionError for a failure rate outside [0, 1] or min > max latency.
   */
  explicit FaultInjectingTaskExecutionsStorage(TaskExecutionsStorage& inner,
                                               const FaultInjectionOptions& options = {});
  /// @brief Wraps a storage the wrapper owns and destroys with it.
  /// @throws DurableExecutionError for a failure rate outside [0, 1] or min > max latency.
  explicit FaultInjectingTaskExecutionsStorage(std::unique_ptr<TaskExecutionsStorage> inner,
                                               const FaultInjectionOptions& options = {});
  ~FaultInjectingTaskExecutionsStorage() override;

  /** @brief Fails `rate` (0-1) of the calls from now on. */
  void set_failure_rate(double rate, bool retryable = true);
  /** @brief Every call first waits a random time in [min, max]. */
  void set_latency(std::chrono::milliseconds min, std::chrono::milliseconds max);
  /** @brief The next `times` calls of `op` fail (adds to any count still pending; a count of 0
   * or less adds nothing). */
  void fail_next(StorageOperation op, std::int32_t times, bool retryable = true);
  /**
   * @brief Every batch call with a request for which `bad` holds fails as a whole (nothing of
   * it written), as a database rejects a transaction with one bad row. Replaces any previous
   * predicate; an empty one clears it.
   */
  void fail_requests(RequestPredicate bad, bool retryable = false);
  /** @brief Removes every fault: no random failures, no latency, no pending or batch faults. */
  void clear_faults();

  /** @brief Calls received, and calls failed on purpose (by any fault). */
  [[nodiscard]] std::int64_t calls() const noexcept;
  /// @brief Calls failed on purpose, by any fault.
  [[nodiscard]] std::int64_t injected_failures() const noexcept;
  /// @brief Calls of `op` failed on purpose, by any fault.
  [[nodiscard]] std::int64_t injected_failures(StorageOperation op) const noexcept;

  void insert_many(const std::vector<TaskExecutionRecord>& executions) override;
  [[nodiscard]] std::vector<std::optional<TaskExecutionRecord>> get_many_by_id(
      const std::vector<GetByIdRequest>& requests) override;
  [[nodiscard]] std::vector<std::optional<TaskExecutionRecord>> get_many_by_sleeping_task_unique_id(
      const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) override;
  void update_many_by_id(const std::vector<UpdateByIdRequest>& requests) override;
  void update_many_by_id_and_insert_children_if_updated(
      const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) override;
  [[nodiscard]] std::vector<TaskExecutionRecord> update_by_status_and_start_at_less_than_and_return(
      const UpdateByStatusAndStartAtLessThanRequest& request) override;
  [[nodiscard]] std::vector<TaskExecutionRecord>
  update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
      const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) override;
  [[nodiscard]] std::vector<TaskExecutionRecord> update_by_close_status_and_return(
      const UpdateByCloseStatusRequest& request) override;
  std::int64_t update_by_is_sleeping_task_and_expires_at_less_than(
      const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) override;
  std::int64_t update_by_on_children_finished_processing_expires_at_less_than(
      const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) override;
  std::int64_t update_by_close_expires_at_less_than(
      const UpdateByCloseExpiresAtLessThanRequest& request) override;
  [[nodiscard]] std::vector<TaskExecutionRecord>
  update_by_executor_id_and_needs_promise_cancellation_and_return(
      const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) override;
  [[nodiscard]] std::vector<std::vector<TaskExecutionRecord>> get_many_by_parent_execution_id(
      const std::vector<GetByParentExecutionIdRequest>& requests) override;
  void update_many_by_parent_execution_id_and_is_finished(
      const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) override;
  std::int64_t update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
      const UpdateAndDecrementParentActiveChildrenCountRequest& request) override;
  void delete_by_id(const DeleteByIdRequest& request) override;
  void delete_all() override;

 private:
  struct State;
  /** The batch predicate now in force, or null. */
  [[nodiscard]] std::shared_ptr<const RequestPredicate> bad_requests() const;
  /** Waits the latency, then throws if a fault applies to this call. */
  void before(StorageOperation op, bool batch_has_bad_request = false);
  std::unique_ptr<State> state_;
};

}  // namespace durable_execution
