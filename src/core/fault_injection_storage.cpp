#include "durable_execution/fault_injection_storage.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "durable_execution/errors.hpp"

namespace durable_execution {

namespace {

constexpr std::size_t kOperations =
    static_cast<std::size_t>(StorageOperation::delete_all) + std::size_t{1};

void validate(double rate, std::chrono::milliseconds min, std::chrono::milliseconds max) {
  if (!(rate >= 0.0 && rate <= 1.0)) {
    throw DurableExecutionError::non_retryable(fmt::format(
        "Invalid fault injection: failure_rate must be between 0 and 1 (got {})", rate));
  }
  if (min.count() < 0 || max < min) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Invalid fault injection: latency must satisfy 0 <= min <= max (got {} ms, "
                    "{} ms)",
                    min.count(), max.count()));
  }
}

}  // namespace

std::string_view to_string(StorageOperation op) noexcept {
  switch (op) {
    case StorageOperation::insert_many:
      return "insert_many";
    case StorageOperation::get_many_by_id:
      return "get_many_by_id";
    case StorageOperation::get_many_by_sleeping_task_unique_id:
      return "get_many_by_sleeping_task_unique_id";
    case StorageOperation::update_many_by_id:
      return "update_many_by_id";
    case StorageOperation::update_many_by_id_and_insert_children_if_updated:
      return "update_many_by_id_and_insert_children_if_updated";
    case StorageOperation::update_by_status_and_start_at_less_than_and_return:
      return "update_by_status_and_start_at_less_than_and_return";
    case StorageOperation::
        update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return:
      return "update_by_status_and_on_children_finished_processing_status_and_active_children_"
             "count_zero_and_return";
    case StorageOperation::update_by_close_status_and_return:
      return "update_by_close_status_and_return";
    case StorageOperation::update_by_is_sleeping_task_and_expires_at_less_than:
      return "update_by_is_sleeping_task_and_expires_at_less_than";
    case StorageOperation::update_by_on_children_finished_processing_expires_at_less_than:
      return "update_by_on_children_finished_processing_expires_at_less_than";
    case StorageOperation::update_by_close_expires_at_less_than:
      return "update_by_close_expires_at_less_than";
    case StorageOperation::update_by_executor_id_and_needs_promise_cancellation_and_return:
      return "update_by_executor_id_and_needs_promise_cancellation_and_return";
    case StorageOperation::get_many_by_parent_execution_id:
      return "get_many_by_parent_execution_id";
    case StorageOperation::update_many_by_parent_execution_id_and_is_finished:
      return "update_many_by_parent_execution_id_and_is_finished";
    case StorageOperation::
        update_and_decrement_parent_active_children_count_by_is_finished_and_close_status:
      return "update_and_decrement_parent_active_children_count_by_is_finished_and_close_status";
    case StorageOperation::delete_by_id:
      return "delete_by_id";
    case StorageOperation::delete_all:
      return "delete_all";
  }
  return "unknown";
}

struct FaultInjectingTaskExecutionsStorage::State {
  struct Pending {
    std::int32_t times = 0;
    bool retryable = true;
  };

  explicit State(const FaultInjectionOptions& o)
      : rng(o.seed),
        failure_rate(o.failure_rate),
        failures_are_retryable(o.failures_are_retryable),
        min_latency(o.min_latency),
        max_latency(o.max_latency) {
    validate(o.failure_rate, o.min_latency, o.max_latency);
  }

  mutable std::mutex mutex;
  std::mt19937_64 rng;
  double failure_rate;
  bool failures_are_retryable;
  std::chrono::milliseconds min_latency;
  std::chrono::milliseconds max_latency;
  std::array<Pending, kOperations> pending{};
  std::shared_ptr<const RequestPredicate> bad;
  bool bad_retryable = false;

  std::atomic<std::int64_t> calls{0};
  std::atomic<std::int64_t> failures{0};
  std::array<std::atomic<std::int64_t>, kOperations> failures_by_op{};
};

FaultInjectingTaskExecutionsStorage::FaultInjectingTaskExecutionsStorage(
    TaskExecutionsStorage& inner, const FaultInjectionOptions& options)
    : ForwardingTaskExecutionsStorage(inner), state_(std::make_unique<State>(options)) {}

FaultInjectingTaskExecutionsStorage::FaultInjectingTaskExecutionsStorage(
    std::unique_ptr<TaskExecutionsStorage> inner, const FaultInjectionOptions& options)
    : ForwardingTaskExecutionsStorage(std::move(inner)), state_(std::make_unique<State>(options)) {}

FaultInjectingTaskExecutionsStorage::~FaultInjectingTaskExecutionsStorage() = default;

void FaultInjectingTaskExecutionsStorage::set_failure_rate(double rate, bool retryable) {
  std::lock_guard lock(state_->mutex);
  validate(rate, state_->min_latency, state_->max_latency);
  state_->failure_rate = rate;
  state_->failures_are_retryable = retryable;
}

void FaultInjectingTaskExecutionsStorage::set_latency(std::chrono::milliseconds min,
                                                      std::chrono::milliseconds max) {
  std::lock_guard lock(state_->mutex);
  validate(state_->failure_rate, min, max);
  state_->min_latency = min;
  state_->max_latency = max;
}

void FaultInjectingTaskExecutionsStorage::fail_next(StorageOperation op, std::int32_t times,
                                                    bool retryable) {
  std::lock_guard lock(state_->mutex);
  auto& p = state_->pending[static_cast<std::size_t>(op)];
  p.times = std::max(0, p.times + std::max(0, times));
  p.retryable = retryable;
}

void FaultInjectingTaskExecutionsStorage::fail_requests(RequestPredicate bad, bool retryable) {
  std::lock_guard lock(state_->mutex);
  state_->bad = bad ? std::make_shared<const RequestPredicate>(std::move(bad)) : nullptr;
  state_->bad_retryable = retryable;
}

void FaultInjectingTaskExecutionsStorage::clear_faults() {
  std::lock_guard lock(state_->mutex);
  state_->failure_rate = 0;
  state_->min_latency = std::chrono::milliseconds{0};
  state_->max_latency = std::chrono::milliseconds{0};
  state_->pending = {};
  state_->bad.reset();
}

std::int64_t FaultInjectingTaskExecutionsStorage::calls() const noexcept {
  return state_->calls.load();
}

std::int64_t FaultInjectingTaskExecutionsStorage::injected_failures() const noexcept {
  return state_->failures.load();
}

std::int64_t FaultInjectingTaskExecutionsStorage::injected_failures(
    StorageOperation op) const noexcept {
  return state_->failures_by_op[static_cast<std::size_t>(op)].load();
}

std::shared_ptr<const FaultInjectingTaskExecutionsStorage::RequestPredicate>
FaultInjectingTaskExecutionsStorage::bad_requests() const {
  std::lock_guard lock(state_->mutex);
  return state_->bad;
}

void FaultInjectingTaskExecutionsStorage::before(StorageOperation op, bool batch_has_bad_request) {
  auto& s = *state_;
  s.calls.fetch_add(1);
  std::chrono::milliseconds latency{0};
  std::optional<bool> fail_retryable;
  const char* why = "";
  {
    std::lock_guard lock(s.mutex);
    if (s.max_latency.count() > 0) {
      latency = std::chrono::milliseconds{std::uniform_int_distribution<std::int64_t>(
          s.min_latency.count(), s.max_latency.count())(s.rng)};
    }
    auto& pending = s.pending[static_cast<std::size_t>(op)];
    if (batch_has_bad_request) {
      fail_retryable = s.bad_retryable;
      why = "a bad request in the batch";
    } else if (pending.times > 0) {
      --pending.times;
      fail_retryable = pending.retryable;
      why = "a planned failure";
    } else if (op != StorageOperation::delete_by_id && op != StorageOperation::delete_all &&
               s.failure_rate > 0 &&
               std::uniform_real_distribution<double>(0.0, 1.0)(s.rng) < s.failure_rate) {
      fail_retryable = s.failures_are_retryable;
      why = "a random failure";
    }
  }
  if (latency.count() > 0) std::this_thread::sleep_for(latency);
  if (!fail_retryable) return;
  s.failures.fetch_add(1);
  s.failures_by_op[static_cast<std::size_t>(op)].fetch_add(1);
  throw DurableExecutionError(fmt::format("Injected fault in {}: {}", to_string(op), why),
                              ErrorType::generic, *fail_retryable, false);
}

namespace {

template <class Range, class Id>
bool any_bad(
    const std::shared_ptr<const FaultInjectingTaskExecutionsStorage::RequestPredicate>& bad,
    StorageOperation op, const Range& range, Id id) {
  return bad &&
         std::any_of(range.begin(), range.end(), [&](const auto& r) { return (*bad)(op, id(r)); });
}

}  // namespace

void FaultInjectingTaskExecutionsStorage::insert_many(
    const std::vector<TaskExecutionRecord>& executions) {
  constexpr auto op = StorageOperation::insert_many;
  before(op, any_bad(bad_requests(), op, executions,
                     [](const TaskExecutionRecord& r) -> const std::string& {
                       return r.execution_id;
                     }));
  ForwardingTaskExecutionsStorage::insert_many(executions);
}

std::vector<std::optional<TaskExecutionRecord>> FaultInjectingTaskExecutionsStorage::get_many_by_id(
    const std::vector<GetByIdRequest>& requests) {
  constexpr auto op = StorageOperation::get_many_by_id;
  before(op, any_bad(bad_requests(), op, requests,
                     [](const GetByIdRequest& r) -> const std::string& { return r.execution_id; }));
  return ForwardingTaskExecutionsStorage::get_many_by_id(requests);
}

std::vector<std::optional<TaskExecutionRecord>>
FaultInjectingTaskExecutionsStorage::get_many_by_sleeping_task_unique_id(
    const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) {
  before(StorageOperation::get_many_by_sleeping_task_unique_id);
  return ForwardingTaskExecutionsStorage::get_many_by_sleeping_task_unique_id(requests);
}

void FaultInjectingTaskExecutionsStorage::update_many_by_id(
    const std::vector<UpdateByIdRequest>& requests) {
  constexpr auto op = StorageOperation::update_many_by_id;
  before(op,
         any_bad(bad_requests(), op, requests,
                 [](const UpdateByIdRequest& r) -> const std::string& { return r.execution_id; }));
  ForwardingTaskExecutionsStorage::update_many_by_id(requests);
}

void FaultInjectingTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(
    const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) {
  constexpr auto op = StorageOperation::update_many_by_id_and_insert_children_if_updated;
  const auto bad = bad_requests();
  const bool hit = bad && std::any_of(requests.begin(), requests.end(), [&](const auto& r) {
                     return (*bad)(op, r.execution_id) ||
                            std::any_of(r.children_to_insert_if_updated.begin(),
                                        r.children_to_insert_if_updated.end(),
                                        [&](const auto& c) { return (*bad)(op, c.execution_id); });
                   });
  before(op, hit);
  ForwardingTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(requests);
}

std::vector<TaskExecutionRecord>
FaultInjectingTaskExecutionsStorage::update_by_status_and_start_at_less_than_and_return(
    const UpdateByStatusAndStartAtLessThanRequest& request) {
  before(StorageOperation::update_by_status_and_start_at_less_than_and_return);
  return ForwardingTaskExecutionsStorage::update_by_status_and_start_at_less_than_and_return(
      request);
}

std::vector<TaskExecutionRecord> FaultInjectingTaskExecutionsStorage::
    update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
        const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) {
  before(
      StorageOperation::
          update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return);
  return ForwardingTaskExecutionsStorage::
      update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
          request);
}

std::vector<TaskExecutionRecord>
FaultInjectingTaskExecutionsStorage::update_by_close_status_and_return(
    const UpdateByCloseStatusRequest& request) {
  before(StorageOperation::update_by_close_status_and_return);
  return ForwardingTaskExecutionsStorage::update_by_close_status_and_return(request);
}

std::int64_t
FaultInjectingTaskExecutionsStorage::update_by_is_sleeping_task_and_expires_at_less_than(
    const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) {
  before(StorageOperation::update_by_is_sleeping_task_and_expires_at_less_than);
  return ForwardingTaskExecutionsStorage::update_by_is_sleeping_task_and_expires_at_less_than(
      request);
}

std::int64_t
FaultInjectingTaskExecutionsStorage::update_by_on_children_finished_processing_expires_at_less_than(
    const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) {
  before(StorageOperation::update_by_on_children_finished_processing_expires_at_less_than);
  return ForwardingTaskExecutionsStorage::
      update_by_on_children_finished_processing_expires_at_less_than(request);
}

std::int64_t FaultInjectingTaskExecutionsStorage::update_by_close_expires_at_less_than(
    const UpdateByCloseExpiresAtLessThanRequest& request) {
  before(StorageOperation::update_by_close_expires_at_less_than);
  return ForwardingTaskExecutionsStorage::update_by_close_expires_at_less_than(request);
}

std::vector<TaskExecutionRecord> FaultInjectingTaskExecutionsStorage::
    update_by_executor_id_and_needs_promise_cancellation_and_return(
        const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) {
  before(StorageOperation::update_by_executor_id_and_needs_promise_cancellation_and_return);
  return ForwardingTaskExecutionsStorage::
      update_by_executor_id_and_needs_promise_cancellation_and_return(request);
}

std::vector<std::vector<TaskExecutionRecord>>
FaultInjectingTaskExecutionsStorage::get_many_by_parent_execution_id(
    const std::vector<GetByParentExecutionIdRequest>& requests) {
  constexpr auto op = StorageOperation::get_many_by_parent_execution_id;
  before(op, any_bad(bad_requests(), op, requests,
                     [](const GetByParentExecutionIdRequest& r) -> const std::string& {
                       return r.parent_execution_id;
                     }));
  return ForwardingTaskExecutionsStorage::get_many_by_parent_execution_id(requests);
}

void FaultInjectingTaskExecutionsStorage::update_many_by_parent_execution_id_and_is_finished(
    const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) {
  constexpr auto op = StorageOperation::update_many_by_parent_execution_id_and_is_finished;
  before(op,
         any_bad(bad_requests(), op, requests,
                 [](const UpdateByParentExecutionIdAndIsFinishedRequest& r) -> const std::string& {
                   return r.parent_execution_id;
                 }));
  ForwardingTaskExecutionsStorage::update_many_by_parent_execution_id_and_is_finished(requests);
}

std::int64_t FaultInjectingTaskExecutionsStorage::
    update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
        const UpdateAndDecrementParentActiveChildrenCountRequest& request) {
  before(StorageOperation::
             update_and_decrement_parent_active_children_count_by_is_finished_and_close_status);
  return ForwardingTaskExecutionsStorage::
      update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(request);
}

void FaultInjectingTaskExecutionsStorage::delete_by_id(const DeleteByIdRequest& request) {
  before(StorageOperation::delete_by_id);
  ForwardingTaskExecutionsStorage::delete_by_id(request);
}

void FaultInjectingTaskExecutionsStorage::delete_all() {
  before(StorageOperation::delete_all);
  ForwardingTaskExecutionsStorage::delete_all();
}

}  // namespace durable_execution
