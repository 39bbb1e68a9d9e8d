// Transitions: the requests of claims, of the background steps and of the application's calls
// (SPEC.md §3: T3, T13, T14, T18, T22, T23, §3.7). Planning only; see transitions.hpp.

#include <fmt/format.h>

#include "transitions.hpp"

namespace durable_execution::detail {

using Status = TaskExecutionStatus;

// ---- claims and the background steps' requests -------------------------------------------------

UpdateByStatusAndStartAtLessThanRequest Transitions::claim_ready(const std::string& executor_id,
                                                                 std::int64_t limit,
                                                                 Timestamp now) const {
  TaskExecutionUpdate u;
  u.status = Status::running;
  u.executor_id = executor_id;
  u.started_at = now;
  return UpdateByStatusAndStartAtLessThanRequest{
      Status::ready,
      // start_at <= now: a task enqueued in this very millisecond runs now, not next tick.
      now + std::chrono::milliseconds{1},
      normalize_update(now, std::move(u)),
      now + options_.expire_leeway,
      limit,
  };
}

std::vector<UpdateByIdRequest> Transitions::release(const std::vector<TaskExecutionRecord>& rows,
                                                    Timestamp now) {
  std::vector<UpdateByIdRequest> releases;
  releases.reserve(rows.size());
  for (const auto& row : rows) {
    TaskExecutionUpdate u;
    u.status = Status::ready;
    releases.push_back(UpdateByIdRequest{row.execution_id,
                                         GetByIdFilters{.status = Status::running},
                                         normalize_update(now, std::move(u))});
  }
  return releases;
}

UpdateAndDecrementParentActiveChildrenCountRequest Transitions::mark_finished(Timestamp now) const {
  TaskExecutionUpdate u;
  u.close_status = CloseStatus::ready;
  return UpdateAndDecrementParentActiveChildrenCountRequest{
      true, CloseStatus::idle, normalize_update(now, std::move(u)),
      options_.mark_finished_task_executions_as_close_status_ready_batch_size};
}

UpdateByCloseStatusRequest Transitions::claim_close(Timestamp now) const {
  TaskExecutionUpdate u;
  u.close_status = CloseStatus::closing;
  u.close_expires_at = now + options_.close_step_lease + options_.expire_leeway;
  return UpdateByCloseStatusRequest{CloseStatus::ready, normalize_update(now, std::move(u)),
                                    options_.close_finished_task_executions_batch_size};
}

UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest Transitions::claim_children_finished(
    Timestamp now) const {
  TaskExecutionUpdate u;
  u.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::processing;
  u.on_children_finished_processing_expires_at =
      now + options_.children_step_lease + options_.expire_leeway;
  return UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest{
      Status::waiting_for_children, OnChildrenFinishedProcessingStatus::idle,
      normalize_update(now, std::move(u)),
      options_.process_on_children_finished_task_executions_batch_size};
}

UpdateByExecutorIdAndNeedsPromiseCancellationRequest Transitions::claim_cancellations(
    const std::string& executor_id, Timestamp now) const {
  TaskExecutionUpdate u;
  u.needs_promise_cancellation = false;
  return UpdateByExecutorIdAndNeedsPromiseCancellationRequest{
      executor_id, true, normalize_update(now, std::move(u)),
      options_.cancel_needs_promise_cancellation_task_executions_batch_size};
}

ExpiryRequests Transitions::expire(Timestamp now) const {
  const auto limit = options_.retry_expired_task_executions_batch_size;
  // T14: the executor that ran these died (or stalled past its lease): run them again, unless
  // that happened more than max_lease_expirations times (a run that kills its process every time
  // must not crash-loop every executor forever): then it fails.
  TaskExecutionUpdate again;
  again.status = Status::ready;
  again.error = DurableExecutionError::non_retryable("Task execution expired").to_stored();
  again.start_at = now;
  again.increment_lease_expirations = true;
  TaskExecutionUpdate exhausted;
  exhausted.status = Status::failed;
  exhausted.error =
      DurableExecutionError::non_retryable(
          fmt::format("Task execution abandoned repeatedly: its lease expired more than {} "
                      "times (the executor running it died or stalled each time; option "
                      "max_lease_expirations)",
                      options_.max_lease_expirations))
          .to_stored();
  exhausted.increment_lease_expirations = true;
  // T13: sleeping executions that were not woken in time.
  TaskExecutionUpdate timed_out;
  timed_out.status = Status::timed_out;
  timed_out.error = DurableExecutionTimedOutError{}.to_stored();
  timed_out.start_at = now;
  // Fixes the reference quirk: a children step that died resets to idle and runs again.
  TaskExecutionUpdate idle;
  idle.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::idle;
  // T22: a close job that died is retried.
  TaskExecutionUpdate reclose;
  reclose.close_status = CloseStatus::ready;
  return ExpiryRequests{
      {false, now, normalize_update(now, std::move(again)), limit, options_.max_lease_expirations,
       normalize_update(now, std::move(exhausted))},
      {true, now, normalize_update(now, std::move(timed_out)), limit},
      {now, normalize_update(now, std::move(idle)), limit},
      {now, normalize_update(now, std::move(reclose)), limit},
  };
}

// ---- the application's requests ----------------------------------------------------------------

UpdateByIdRequest Transitions::cancel(const std::string& execution_id, Timestamp now) {
  TaskExecutionUpdate u;
  u.status = Status::cancelled;
  u.error = DurableExecutionCancelledError{}.to_stored();
  u.needs_promise_cancellation = true;
  return UpdateByIdRequest{execution_id, GetByIdFilters{.is_finished = false},
                           normalize_update(now, std::move(u))};
}

UpdateByIdRequest Transitions::wake_sleeping(const std::string& execution_id, Status status,
                                             std::string payload, Timestamp now) {
  TaskExecutionUpdate u;
  if (status == Status::completed) {
    u.status = Status::completed;
    u.output = std::move(payload);
  } else if (status == Status::failed) {
    u.status = Status::failed;
    u.error = StoredError{
        ErrorType::generic, false, false,
        payload.empty() ? std::string{"Unknown error"} : json_safe_message(std::move(payload))};
  } else {
    throw DurableExecutionError::non_retryable(
        fmt::format("Invalid status {} for waking up a sleeping task", to_string(status)));
  }
  return UpdateByIdRequest{execution_id,
                           GetByIdFilters{.is_sleeping_task = true, .is_finished = false},
                           normalize_update(now, std::move(u))};
}

}  // namespace durable_execution::detail
