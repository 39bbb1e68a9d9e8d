#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "durable_execution/export.hpp"
#include "durable_execution/task_execution.hpp"

namespace durable_execution {

struct GetByIdRequest {
  std::string execution_id{};
  GetByIdFilters filters{};
};

struct GetBySleepingTaskUniqueIdRequest {
  std::string sleeping_task_unique_id{};
};

/** @brief A guarded update of a row's parent, made together with the row's own update. */
struct ParentUpdateRequest {
  GetByIdFilters filters{};
  TaskExecutionUpdate update{};
};

struct UpdateByIdRequest {
  std::string execution_id{};
  GetByIdFilters filters{};
  TaskExecutionUpdate update{};
  /**
   * If the row is updated and has a parent, also decrement the parent's active children count
   * in the same transaction. Lets the engine close a finished child in its result write instead
   * of a later mark step (which does the same decrement).
   */
  bool decrement_parent_active_children_count = false;
  /**
   * If the row is updated and has a parent that matches these filters, also apply this update to
   * the parent in the same transaction. Lets a finalize child settle its parent in its result
   * write instead of a later close step.
   */
  std::optional<ParentUpdateRequest> parent_update{};
};

struct UpdateByIdAndInsertChildrenRequest {
  std::string execution_id{};
  GetByIdFilters filters{};
  TaskExecutionUpdate update{};
  std::vector<TaskExecutionRecord> children_to_insert_if_updated{};
};

struct UpdateByStatusAndStartAtLessThanRequest {
  TaskExecutionStatus status = TaskExecutionStatus::ready;
  Timestamp start_at_less_than{};
  TaskExecutionUpdate update{};
  /** Each selected row gets `expires_at = update_expires_at_with_started_at + row.timeout`. */
  Timestamp update_expires_at_with_started_at{};
  std::int64_t limit = 0;
};

struct UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest {
  TaskExecutionStatus status = TaskExecutionStatus::waiting_for_children;
  OnChildrenFinishedProcessingStatus on_children_finished_processing_status =
      OnChildrenFinishedProcessingStatus::idle;
  TaskExecutionUpdate update{};
  std::int64_t limit = 0;
};

struct UpdateByCloseStatusRequest {
  CloseStatus close_status = CloseStatus::ready;
  TaskExecutionUpdate update{};
  std::int64_t limit = 0;
};

struct UpdateByIsSleepingTaskAndExpiresAtLessThanRequest {
  bool is_sleeping_task = false;
  Timestamp expires_at_less_than{};
  TaskExecutionUpdate update{};
  std::int64_t limit = 0;
  /**
   * If set, a selected row whose `lease_expirations` is already >= this value gets
   * `exhausted_update` instead of `update` (the crash-loop bound: such rows end `failed`). The
   * two updates together touch at most `limit` rows, each selected by ascending `expires_at`.
   */
  std::optional<std::int32_t> max_lease_expirations{};
  TaskExecutionUpdate exhausted_update{};
};

struct UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest {
  Timestamp on_children_finished_processing_expires_at_less_than{};
  TaskExecutionUpdate update{};
  std::int64_t limit = 0;
};

struct UpdateByCloseExpiresAtLessThanRequest {
  Timestamp close_expires_at_less_than{};
  TaskExecutionUpdate update{};
  std::int64_t limit = 0;
};

struct UpdateByExecutorIdAndNeedsPromiseCancellationRequest {
  std::string executor_id{};
  bool needs_promise_cancellation = true;
  TaskExecutionUpdate update{};
  std::int64_t limit = 0;
};

struct GetByParentExecutionIdRequest {
  std::string parent_execution_id{};
};

struct UpdateByParentExecutionIdAndIsFinishedRequest {
  std::string parent_execution_id{};
  bool is_finished = false;
  TaskExecutionUpdate update{};
};

struct UpdateAndDecrementParentActiveChildrenCountRequest {
  bool is_finished = true;
  CloseStatus close_status = CloseStatus::idle;
  TaskExecutionUpdate update{};
  std::int64_t limit = 0;
};

struct DeleteByIdRequest {
  std::string execution_id{};
};

/**
 * @brief The storage contract of the engine (SPEC.md §4.1): batch-shaped operations on execution
 * records.
 *
 * Every method is atomic; in the `*_many_*` methods atomicity holds per element (one request's
 * guard check and write happen together). Updates are applied as given: callers pass updates
 * produced by normalize_update(), and `unset_*` directives win over set values. Time comparisons
 * are strict "less than" and an unset time never matches. A limit <= 0 selects nothing. Returned
 * records are copies with the update applied. Selection order: `start_at` ascending for the
 * start-at claim, the compared expiry ascending for the expiry methods, `updated_at` ascending
 * (oldest first) for the other limited methods; ties keep insertion order where the backend can.
 *
 * Errors: a duplicate execution id or sleeping-task unique id on insert throws
 * DurableExecutionError and inserts nothing of that call; an unknown id is a no-op for updates
 * and deletes and `std::nullopt` for lookups. Backend failures surface as DurableExecutionError;
 * transient ones (busy database, lost connection) are marked retryable.
 *
 * @note Thread safety: implementations must be thread-safe: any number of threads (and, for
 *   database backends, processes) may call any method concurrently, without deadlock.
 */
class DURABLE_EXECUTION_EXPORT TaskExecutionsStorage {
 public:
  TaskExecutionsStorage() = default;
  TaskExecutionsStorage(const TaskExecutionsStorage&) = delete;
  TaskExecutionsStorage& operator=(const TaskExecutionsStorage&) = delete;
  TaskExecutionsStorage(TaskExecutionsStorage&&) = delete;
  TaskExecutionsStorage& operator=(TaskExecutionsStorage&&) = delete;
  virtual ~TaskExecutionsStorage();

  /** @brief Inserts all records, or none if any execution id or unique id already exists. */
  virtual void insert_many(const std::vector<TaskExecutionRecord>& executions) = 0;

  /** @brief One result per request, in request order; nullopt when missing or filtered out. */
  [[nodiscard]] virtual std::vector<std::optional<TaskExecutionRecord>> get_many_by_id(
      const std::vector<GetByIdRequest>& requests) = 0;

  [[nodiscard]] virtual std::vector<std::optional<TaskExecutionRecord>>
  get_many_by_sleeping_task_unique_id(
      const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) = 0;

  /** @brief Guarded update of at most one row per request (and of its parent's active children
   * count when the request asks for it). */
  virtual void update_many_by_id(const std::vector<UpdateByIdRequest>& requests) = 0;

  /** @brief Per request, atomically: the guarded update, then the children insert only if the
   * row was updated. */
  virtual void update_many_by_id_and_insert_children_if_updated(
      const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) = 0;

  /** @brief Claims rows by status with `start_at < bound`, ascending `start_at`. */
  [[nodiscard]] virtual std::vector<TaskExecutionRecord>
  update_by_status_and_start_at_less_than_and_return(
      const UpdateByStatusAndStartAtLessThanRequest& request) = 0;

  /** @brief Claims parents by status and processing status whose active children count is 0. */
  [[nodiscard]] virtual std::vector<TaskExecutionRecord>
  update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
      const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) = 0;

  [[nodiscard]] virtual std::vector<TaskExecutionRecord> update_by_close_status_and_return(
      const UpdateByCloseStatusRequest& request) = 0;

  /** @return the number of rows updated. */
  virtual std::int64_t update_by_is_sleeping_task_and_expires_at_less_than(
      const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) = 0;

  virtual std::int64_t update_by_on_children_finished_processing_expires_at_less_than(
      const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) = 0;

  virtual std::int64_t update_by_close_expires_at_less_than(
      const UpdateByCloseExpiresAtLessThanRequest& request) = 0;

  [[nodiscard]] virtual std::vector<TaskExecutionRecord>
  update_by_executor_id_and_needs_promise_cancellation_and_return(
      const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) = 0;

  /** @brief All children of each parent (finalize child included), in no particular order. */
  [[nodiscard]] virtual std::vector<std::vector<TaskExecutionRecord>>
  get_many_by_parent_execution_id(const std::vector<GetByParentExecutionIdRequest>& requests) = 0;

  virtual void update_many_by_parent_execution_id_and_is_finished(
      const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) = 0;

  /**
   * @brief Selects finished rows by close status (oldest `updated_at` first), updates them and, in
   * the same transaction, decrements each parent's active children count by its number of
   * selected children. @return the number of rows updated.
   */
  virtual std::int64_t
  update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
      const UpdateAndDecrementParentActiveChildrenCountRequest& request) = 0;

  virtual void delete_by_id(const DeleteByIdRequest& request) = 0;
  virtual void delete_all() = 0;

  /**
   * @brief Subscribes `on_external_work` to hints that another process has just created work
   * this one may want at once (new or newly ready executions, finished children, cancellations),
   * so that an executor need not wait for its next poll. A backend that can tell (PostgreSQL:
   * LISTEN/NOTIFY) calls the callback from a thread of its own; the default implementation
   * never calls it, and polling finds such work. The callback must return quickly and must not
   * call the storage. The executor subscribes in start() and unsubscribes in shutdown().
   * @return a token for unsubscribe_from_external_work (0 if the callback is never called).
   */
  virtual std::uint64_t subscribe_to_external_work(std::function<void()> on_external_work);

  /**
   * @brief Ends a subscription (an unknown or 0 token is ignored). Once it returns, the callback
   * is not running and will not be called again.
   */
  virtual void unsubscribe_from_external_work(std::uint64_t token) noexcept;
};

}  // namespace durable_execution
