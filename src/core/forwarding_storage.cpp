#include "durable_execution/forwarding_storage.hpp"

#include <utility>

namespace durable_execution {

ForwardingTaskExecutionsStorage::ForwardingTaskExecutionsStorage(TaskExecutionsStorage& inner)
    : inner_(&inner) {}

ForwardingTaskExecutionsStorage::ForwardingTaskExecutionsStorage(
    std::unique_ptr<TaskExecutionsStorage> inner)
    : owned_(std::move(inner)), inner_(owned_.get()) {}

ForwardingTaskExecutionsStorage::~ForwardingTaskExecutionsStorage() = default;

void ForwardingTaskExecutionsStorage::reset_owned() noexcept { owned_.reset(); }

void ForwardingTaskExecutionsStorage::insert_many(
    const std::vector<TaskExecutionRecord>& executions) {
  inner_->insert_many(executions);
}

std::vector<std::optional<TaskExecutionRecord>> ForwardingTaskExecutionsStorage::get_many_by_id(
    const std::vector<GetByIdRequest>& requests) {
  return inner_->get_many_by_id(requests);
}

std::vector<std::optional<TaskExecutionRecord>>
ForwardingTaskExecutionsStorage::get_many_by_sleeping_task_unique_id(
    const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) {
  return inner_->get_many_by_sleeping_task_unique_id(requests);
}

void ForwardingTaskExecutionsStorage::update_many_by_id(
    const std::vector<UpdateByIdRequest>& requests) {
  inner_->update_many_by_id(requests);
}

void ForwardingTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(
    const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) {
  inner_->update_many_by_id_and_insert_children_if_updated(requests);
}

std::vector<TaskExecutionRecord>
ForwardingTaskExecutionsStorage::update_by_status_and_start_at_less_than_and_return(
    const UpdateByStatusAndStartAtLessThanRequest& request) {
  return inner_->update_by_status_and_start_at_less_than_and_return(request);
}

std::vector<TaskExecutionRecord> ForwardingTaskExecutionsStorage::
    update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
        const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) {
  return inner_
      ->update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
          request);
}

std::vector<TaskExecutionRecord> ForwardingTaskExecutionsStorage::update_by_close_status_and_return(
    const UpdateByCloseStatusRequest& request) {
  return inner_->update_by_close_status_and_return(request);
}

std::int64_t ForwardingTaskExecutionsStorage::update_by_is_sleeping_task_and_expires_at_less_than(
    const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) {
  return inner_->update_by_is_sleeping_task_and_expires_at_less_than(request);
}

std::int64_t
ForwardingTaskExecutionsStorage::update_by_on_children_finished_processing_expires_at_less_than(
    const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) {
  return inner_->update_by_on_children_finished_processing_expires_at_less_than(request);
}

std::int64_t ForwardingTaskExecutionsStorage::update_by_close_expires_at_less_than(
    const UpdateByCloseExpiresAtLessThanRequest& request) {
  return inner_->update_by_close_expires_at_less_than(request);
}

std::vector<TaskExecutionRecord>
ForwardingTaskExecutionsStorage::update_by_executor_id_and_needs_promise_cancellation_and_return(
    const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) {
  return inner_->update_by_executor_id_and_needs_promise_cancellation_and_return(request);
}

std::vector<std::vector<TaskExecutionRecord>>
ForwardingTaskExecutionsStorage::get_many_by_parent_execution_id(
    const std::vector<GetByParentExecutionIdRequest>& requests) {
  return inner_->get_many_by_parent_execution_id(requests);
}

void ForwardingTaskExecutionsStorage::update_many_by_parent_execution_id_and_is_finished(
    const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) {
  inner_->update_many_by_parent_execution_id_and_is_finished(requests);
}

std::int64_t ForwardingTaskExecutionsStorage::
    update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
        const UpdateAndDecrementParentActiveChildrenCountRequest& request) {
  return inner_->update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
      request);
}

void ForwardingTaskExecutionsStorage::delete_by_id(const DeleteByIdRequest& request) {
  inner_->delete_by_id(request);
}

void ForwardingTaskExecutionsStorage::delete_all() { inner_->delete_all(); }

std::uint64_t ForwardingTaskExecutionsStorage::subscribe_to_external_work(
    std::function<void()> on_external_work) {
  return inner_->subscribe_to_external_work(std::move(on_external_work));
}

void ForwardingTaskExecutionsStorage::unsubscribe_from_external_work(std::uint64_t token) noexcept {
  inner_->unsubscribe_from_external_work(token);
}

}  // namespace durable_execution
