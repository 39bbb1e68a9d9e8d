#pragma once

#include <mutex>
#include <vector>

#include "durable_execution/storage.hpp"
#include "durable_execution/testing/storage_factory.hpp"

namespace durable_execution::testing {

/**
 * @brief A deliberately naive TaskExecutionsStorage: one vector, linear scans, one mutex.
 *
 * It is the executable reading of the storage contract (SPEC.md §4.1). The conformance suite
 * runs over it as well as over the real stores, so that a failing check can be told apart: if
 * the reference passes and a backend fails, the backend is wrong; if both fail, the check is.
 * Not for production use: every operation is O(rows).
 *
 * @note Thread safety: thread-safe; every method runs under one mutex.
 */
class ReferenceStorage final : public TaskExecutionsStorage {
 public:
  ReferenceStorage() = default;
  ~ReferenceStorage() override;

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
  // Throws if any record collides with a stored row or with another record of the batch.
  void check_insertable(const std::vector<TaskExecutionRecord>& executions) const;
  TaskExecutionRecord* find(const std::string& execution_id);

  std::mutex mutex_;
  std::vector<TaskExecutionRecord> rows_;  // insertion order; ties in sorts keep it
};

/** @brief Fresh ReferenceStorage instances, named "Reference". */
[[nodiscard]] StorageFactory reference_factory();

}  // namespace durable_execution::testing
