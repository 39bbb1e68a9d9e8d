#pragma once

#include <memory>

#include "durable_execution/export.hpp"
#include "durable_execution/storage.hpp"

namespace durable_execution {

/**
 * @brief A process-local, indexed TaskExecutionsStorage, for tests and ephemeral work.
 *
 * Every query the engine makes is served by an ordered index or a hash (ready rows by start
 * time for claims, parent id, sleeping-task unique id, close status, expiry times, executor id
 * with cancellation flag), so the engine's cost per operation stays flat as the store grows. The
 * status-like indexes are partial: they hold only the values the engine selects (`ready` for the
 * claim, for example), and a query for other values scans all executions.
 * Nothing survives the process.
 *
 * @code
 * durable_execution::InMemoryTaskExecutionsStorage storage;
 * durable_execution::DurableExecutor executor{storage};
 * @endcode
 *
 * @note Thread safety: thread-safe; every method is atomic (one mutex guards the store).
 */
class DURABLE_EXECUTION_EXPORT InMemoryTaskExecutionsStorage final : public TaskExecutionsStorage {
 public:
  InMemoryTaskExecutionsStorage();
  ~InMemoryTaskExecutionsStorage() override;

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

  /** @brief Number of stored executions. */
  [[nodiscard]] std::size_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace durable_execution
