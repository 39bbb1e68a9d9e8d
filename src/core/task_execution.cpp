#include "durable_execution/task_execution.hpp"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>

#include "durable_execution/detail/saturating_time.hpp"
#include "random.hpp"

namespace durable_execution {

namespace {

constexpr std::array kStatuses{
    TaskExecutionStatus::ready,
    TaskExecutionStatus::running,
    TaskExecutionStatus::failed,
    TaskExecutionStatus::timed_out,
    TaskExecutionStatus::waiting_for_children,
    TaskExecutionStatus::waiting_for_finalize,
    TaskExecutionStatus::finalize_failed,
    TaskExecutionStatus::completed,
    TaskExecutionStatus::cancelled,
};

template <class Enum, std::size_t N>
Enum parse_enum(std::string_view text, const std::array<Enum, N>& values, const char* what) {
  for (auto v : values) {
    if (to_string(v) == text) return v;
  }
  throw DurableExecutionError::non_retryable(fmt::format("Invalid {}: {}", what, text));
}

// `status` names the status that forbids the field, or is empty for a sub-state rule.
void reject(bool bad, std::string_view field, std::string_view why, std::string_view status = {}) {
  if (bad) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Invalid task execution update: {} {}{}", field, why, status));
  }
}

}  // namespace

std::string_view to_string(TaskExecutionStatus s) noexcept {
  switch (s) {
    case TaskExecutionStatus::ready:
      return "ready";
    case TaskExecutionStatus::running:
      return "running";
    case TaskExecutionStatus::failed:
      return "failed";
    case TaskExecutionStatus::timed_out:
      return "timed_out";
    case TaskExecutionStatus::waiting_for_children:
      return "waiting_for_children";
    case TaskExecutionStatus::waiting_for_finalize:
      return "waiting_for_finalize";
    case TaskExecutionStatus::finalize_failed:
      return "finalize_failed";
    case TaskExecutionStatus::completed:
      return "completed";
    case TaskExecutionStatus::cancelled:
      return "cancelled";
  }
  return "ready";
}

std::string_view to_string(OnChildrenFinishedProcessingStatus s) noexcept {
  switch (s) {
    case OnChildrenFinishedProcessingStatus::idle:
      return "idle";
    case OnChildrenFinishedProcessingStatus::processing:
      return "processing";
    case OnChildrenFinishedProcessingStatus::processed:
      return "processed";
  }
  return "idle";
}

std::string_view to_string(CloseStatus s) noexcept {
  switch (s) {
    case CloseStatus::idle:
      return "idle";
    case CloseStatus::ready:
      return "ready";
    case CloseStatus::closing:
      return "closing";
    case CloseStatus::closed:
      return "closed";
  }
  return "idle";
}

TaskExecutionStatus parse_task_execution_status(std::string_view text) {
  return parse_enum(text, kStatuses, "task execution status");
}

OnChildrenFinishedProcessingStatus parse_on_children_finished_processing_status(
    std::string_view text) {
  return parse_enum(text,
                    std::array{OnChildrenFinishedProcessingStatus::idle,
                               OnChildrenFinishedProcessingStatus::processing,
                               OnChildrenFinishedProcessingStatus::processed},
                    "on children finished processing status");
}

CloseStatus parse_close_status(std::string_view text) {
  return parse_enum(
      text,
      std::array{CloseStatus::idle, CloseStatus::ready, CloseStatus::closing, CloseStatus::closed},
      "close status");
}

TaskExecutionRecord make_task_execution_record(Timestamp now, NewTaskExecution v) {
  TaskExecutionRecord r;
  r.root = std::move(v.root);
  r.parent = std::move(v.parent);
  r.task_id = std::move(v.task_id);
  r.execution_id = std::move(v.execution_id);
  r.is_sleeping_task = v.is_sleeping_task;
  if (v.is_sleeping_task) {
    r.sleeping_task_unique_id = v.sleeping_task_unique_id.value_or("");
  }
  r.retry_options = v.retry_options;
  r.sleep_before_run = v.sleep_before_run;
  r.timeout = v.timeout;
  r.are_children_sequential = v.are_children_sequential;
  r.input = std::move(v.input);
  r.status = v.is_sleeping_task ? TaskExecutionStatus::running : TaskExecutionStatus::ready;
  r.start_at = detail::saturating_add(now, v.sleep_before_run);
  if (v.is_sleeping_task) r.expires_at = detail::saturating_add(r.start_at, v.timeout);
  r.created_at = now;
  r.updated_at = now;
  return r;
}

TaskExecutionUpdate normalize_update(Timestamp now, TaskExecutionUpdate u) {
  reject(u.unset_executor_id || u.unset_run_output || u.unset_error || u.unset_expires_at ||
             u.unset_on_children_finished_processing_expires_at || u.unset_close_expires_at ||
             u.is_finished.has_value() || u.finished_at.has_value(),
         "directives", "are set by the normalizer, not by the caller");
  u.updated_at = now;
  if (u.status) {
    const auto s = *u.status;
    const auto name = to_string(s);
    if (is_finished(s)) {
      reject(u.run_output.has_value(), "run_output", "cannot be set with ", name);
      u.is_finished = true;
      u.finished_at = now;
      u.unset_run_output = true;
    }
    if (s == TaskExecutionStatus::ready) {
      reject(u.run_output.has_value(), "run_output", "cannot be set with ", name);
      u.unset_run_output = true;
    }
    if (!is_errored(s) && s != TaskExecutionStatus::ready && s != TaskExecutionStatus::running) {
      reject(u.error.has_value(), "error", "cannot be set with ", name);
      u.unset_error = true;
    }
    if ((s != TaskExecutionStatus::running && s != TaskExecutionStatus::cancelled) ||
        u.needs_promise_cancellation == false) {
      reject(u.executor_id.has_value(), "executor_id", "cannot be set with ", name);
      u.unset_executor_id = true;
    }
    if (s != TaskExecutionStatus::running) {
      reject(u.expires_at.has_value(), "expires_at", "cannot be set with ", name);
      u.unset_expires_at = true;
    }
    reject(u.output.has_value() && s != TaskExecutionStatus::completed, "output",
           "cannot be set with ", name);
  }
  if (u.on_children_finished_processing_status &&
      *u.on_children_finished_processing_status != OnChildrenFinishedProcessingStatus::processing) {
    reject(u.on_children_finished_processing_expires_at.has_value(),
           "on_children_finished_processing_expires_at", "requires the processing status");
    u.unset_on_children_finished_processing_expires_at = true;
  }
  if (u.close_status && *u.close_status != CloseStatus::closing) {
    reject(u.close_expires_at.has_value(), "close_expires_at", "requires the closing status");
    u.unset_close_expires_at = true;
  }
  return u;
}

void apply_update(TaskExecutionRecord& r, const TaskExecutionUpdate& u) {
  auto set = [](auto& field, const auto& value) {
    if (value) field = *value;
  };
  auto set_opt = [](auto& field, const auto& value, bool unset) {
    if (unset) {
      field.reset();
    } else if (value) {
      field = *value;
    }
  };
  set_opt(r.executor_id, u.executor_id, u.unset_executor_id);
  set(r.status, u.status);
  set_opt(r.run_output, u.run_output, u.unset_run_output);
  if (u.output) r.output = *u.output;
  set_opt(r.error, u.error, u.unset_error);
  set(r.retry_attempts, u.retry_attempts);
  set(r.start_at, u.start_at);
  if (u.started_at) r.started_at = *u.started_at;
  set_opt(r.expires_at, u.expires_at, u.unset_expires_at);
  if (u.children) r.children = *u.children;
  set(r.active_children_count, u.active_children_count);
  set(r.on_children_finished_processing_status, u.on_children_finished_processing_status);
  set_opt(r.on_children_finished_processing_expires_at,
          u.on_children_finished_processing_expires_at,
          u.unset_on_children_finished_processing_expires_at);
  if (u.on_children_finished_processing_finished_at) {
    r.on_children_finished_processing_finished_at = *u.on_children_finished_processing_finished_at;
  }
  if (u.finalize) r.finalize = *u.finalize;
  set(r.close_status, u.close_status);
  set_opt(r.close_expires_at, u.close_expires_at, u.unset_close_expires_at);
  if (u.closed_at) r.closed_at = *u.closed_at;
  set(r.needs_promise_cancellation, u.needs_promise_cancellation);
  set(r.is_finished, u.is_finished);
  if (u.finished_at) r.finished_at = *u.finished_at;
  r.updated_at = u.updated_at;
  if (u.increment_lease_expirations) ++r.lease_expirations;
}

// ---- JSON -----------------------------------------------------------------------------------

namespace {

/**
 * An integer member as T, refusing (std::out_of_range) what T cannot hold: nlohmann's own get<T>
 * converts a too large floating-point number with undefined behaviour. An integral float (a
 * JavaScript writer's 1e3) is accepted.
 */
template <class T>
T integer(const nlohmann::json& v, const char* key) {
  if (v.is_number_unsigned()) {
    if (v.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
      return static_cast<T>(v.get<std::uint64_t>());
    }
  } else if (v.is_number_integer()) {
    const auto x = v.get<std::int64_t>();
    if (x >= std::numeric_limits<T>::min() && x <= std::numeric_limits<T>::max()) {
      return static_cast<T>(x);
    }
  } else if (v.is_number_float()) {
    // [min, max + 1) is exact in double for both int32 and int64 (powers of two).
    const double d = v.get<double>();
    const double lo = static_cast<double>(std::numeric_limits<T>::min());
    if (d >= lo && d < -lo && d == std::trunc(d)) return static_cast<T>(d);
  } else {
    throw std::invalid_argument(std::string{key} + " must be a number");
  }
  throw std::out_of_range(std::string{key} + " is out of range");
}
template <class T>
T integer_value(const nlohmann::json& j, const char* key, T fallback) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? fallback : integer<T>(*it, key);
}

template <class T>
void put(nlohmann::json& j, const char* key, const std::optional<T>& v) {
  if (v) j[key] = *v;
}
void put(nlohmann::json& j, const char* key, const std::optional<Timestamp>& v) {
  if (v) j[key] = to_unix_ms(*v);
}
void put(nlohmann::json& j, const char* key, const std::optional<std::chrono::milliseconds>& v) {
  if (v) j[key] = v->count();
}
template <class T>
void get(const nlohmann::json& j, const char* key, std::optional<T>& v) {
  if (auto it = j.find(key); it != j.end() && !it->is_null()) {
    v = it->template get<T>();
  } else {
    v.reset();
  }
}
void get(const nlohmann::json& j, const char* key, std::optional<Timestamp>& v) {
  if (auto it = j.find(key); it != j.end() && !it->is_null()) {
    v = from_unix_ms(integer<std::int64_t>(*it, key));
  } else {
    v.reset();
  }
}
void get(const nlohmann::json& j, const char* key, std::optional<std::chrono::milliseconds>& v) {
  if (auto it = j.find(key); it != j.end() && !it->is_null()) {
    v = std::chrono::milliseconds{integer<std::int64_t>(*it, key)};
  } else {
    v.reset();
  }
}

}  // namespace

void to_json(nlohmann::json& j, TaskExecutionStatus s) { j = to_string(s); }
void from_json(const nlohmann::json& j, TaskExecutionStatus& s) {
  s = parse_task_execution_status(j.get<std::string>());
}
void to_json(nlohmann::json& j, OnChildrenFinishedProcessingStatus s) { j = to_string(s); }
void from_json(const nlohmann::json& j, OnChildrenFinishedProcessingStatus& s) {
  s = parse_on_children_finished_processing_status(j.get<std::string>());
}
void to_json(nlohmann::json& j, CloseStatus s) { j = to_string(s); }
void from_json(const nlohmann::json& j, CloseStatus& s) {
  s = parse_close_status(j.get<std::string>());
}

void to_json(nlohmann::json& j, const TaskExecutionSummary& s) {
  j = nlohmann::json{{"taskId", s.task_id}, {"executionId", s.execution_id}};
}
void from_json(const nlohmann::json& j, TaskExecutionSummary& s) {
  j.at("taskId").get_to(s.task_id);
  j.at("executionId").get_to(s.execution_id);
}

void to_json(nlohmann::json& j, const ParentTaskExecutionSummary& s) {
  j = nlohmann::json{{"taskId", s.task_id},
                     {"executionId", s.execution_id},
                     {"indexInParentChildren", s.index_in_parent_children},
                     {"isOnlyChildOfParent", s.is_only_child_of_parent},
                     {"isFinalizeOfParent", s.is_finalize_of_parent}};
}
void from_json(const nlohmann::json& j, ParentTaskExecutionSummary& s) {
  j.at("taskId").get_to(s.task_id);
  j.at("executionId").get_to(s.execution_id);
  s.index_in_parent_children = integer_value<std::int32_t>(j, "indexInParentChildren", 0);
  s.is_only_child_of_parent = j.value("isOnlyChildOfParent", false);
  s.is_finalize_of_parent = j.value("isFinalizeOfParent", false);
}

void to_json(nlohmann::json& j, const RetryOptions& r) {
  j = nlohmann::json{{"maxAttempts", r.max_attempts}};
  put(j, "baseDelayMs", r.base_delay);
  put(j, "delayMultiplier", r.delay_multiplier);
  put(j, "maxDelayMs", r.max_delay);
}
void from_json(const nlohmann::json& j, RetryOptions& r) {
  r.max_attempts = integer_value<std::int32_t>(j, "maxAttempts", 0);
  get(j, "baseDelayMs", r.base_delay);
  get(j, "delayMultiplier", r.delay_multiplier);
  get(j, "maxDelayMs", r.max_delay);
}

void to_json(nlohmann::json& j, const TaskExecutionRecord& r) {
  j = nlohmann::json::object();
  put(j, "root", r.root);
  put(j, "parent", r.parent);
  j["taskId"] = r.task_id;
  j["executionId"] = r.execution_id;
  j["isSleepingTask"] = r.is_sleeping_task;
  put(j, "sleepingTaskUniqueId", r.sleeping_task_unique_id);
  j["retryOptions"] = r.retry_options;
  j["sleepMsBeforeRun"] = r.sleep_before_run.count();
  j["timeoutMs"] = r.timeout.count();
  j["areChildrenSequential"] = r.are_children_sequential;
  j["input"] = r.input;
  put(j, "executorId", r.executor_id);
  j["status"] = r.status;
  j["isFinished"] = r.is_finished;
  put(j, "runOutput", r.run_output);
  put(j, "output", r.output);
  put(j, "error", r.error);
  j["retryAttempts"] = r.retry_attempts;
  j["startAt"] = to_unix_ms(r.start_at);
  put(j, "startedAt", r.started_at);
  put(j, "expiresAt", r.expires_at);
  put(j, "finishedAt", r.finished_at);
  put(j, "children", r.children);
  j["activeChildrenCount"] = r.active_children_count;
  j["onChildrenFinishedProcessingStatus"] = r.on_children_finished_processing_status;
  put(j, "onChildrenFinishedProcessingExpiresAt", r.on_children_finished_processing_expires_at);
  put(j, "onChildrenFinishedProcessingFinishedAt", r.on_children_finished_processing_finished_at);
  put(j, "finalize", r.finalize);
  j["closeStatus"] = r.close_status;
  put(j, "closeExpiresAt", r.close_expires_at);
  put(j, "closedAt", r.closed_at);
  j["needsPromiseCancellation"] = r.needs_promise_cancellation;
  j["createdAt"] = to_unix_ms(r.created_at);
  j["updatedAt"] = to_unix_ms(r.updated_at);
  j["leaseExpirations"] = r.lease_expirations;
}

void from_json(const nlohmann::json& j, TaskExecutionRecord& r) {
  get(j, "root", r.root);
  get(j, "parent", r.parent);
  j.at("taskId").get_to(r.task_id);
  j.at("executionId").get_to(r.execution_id);
  r.is_sleeping_task = j.value("isSleepingTask", false);
  get(j, "sleepingTaskUniqueId", r.sleeping_task_unique_id);
  r.retry_options = j.value("retryOptions", RetryOptions{});
  r.sleep_before_run =
      std::chrono::milliseconds{integer_value<std::int64_t>(j, "sleepMsBeforeRun", 0)};
  r.timeout = std::chrono::milliseconds{integer_value<std::int64_t>(j, "timeoutMs", 0)};
  r.are_children_sequential = j.value("areChildrenSequential", false);
  r.input = j.value("input", std::string{});
  get(j, "executorId", r.executor_id);
  j.at("status").get_to(r.status);
  r.is_finished = j.value("isFinished", false);
  get(j, "runOutput", r.run_output);
  get(j, "output", r.output);
  get(j, "error", r.error);
  r.retry_attempts = integer_value<std::int32_t>(j, "retryAttempts", 0);
  r.start_at = from_unix_ms(integer_value<std::int64_t>(j, "startAt", 0));
  get(j, "startedAt", r.started_at);
  get(j, "expiresAt", r.expires_at);
  get(j, "finishedAt", r.finished_at);
  get(j, "children", r.children);
  r.active_children_count = integer_value<std::int32_t>(j, "activeChildrenCount", 0);
  r.on_children_finished_processing_status =
      j.value("onChildrenFinishedProcessingStatus", OnChildrenFinishedProcessingStatus::idle);
  get(j, "onChildrenFinishedProcessingExpiresAt", r.on_children_finished_processing_expires_at);
  get(j, "onChildrenFinishedProcessingFinishedAt", r.on_children_finished_processing_finished_at);
  get(j, "finalize", r.finalize);
  r.close_status = j.value("closeStatus", CloseStatus::idle);
  get(j, "closeExpiresAt", r.close_expires_at);
  get(j, "closedAt", r.closed_at);
  r.needs_promise_cancellation = j.value("needsPromiseCancellation", false);
  r.created_at = from_unix_ms(integer_value<std::int64_t>(j, "createdAt", 0));
  r.updated_at = from_unix_ms(integer_value<std::int64_t>(j, "updatedAt", 0));
  r.lease_expirations = integer_value<std::int32_t>(j, "leaseExpirations", 0);
}

void to_json(nlohmann::json& j, const TaskExecutionUpdate& u) {
  j = nlohmann::json::object();
  put(j, "executorId", u.executor_id);
  put(j, "status", u.status);
  put(j, "runOutput", u.run_output);
  put(j, "output", u.output);
  put(j, "error", u.error);
  put(j, "retryAttempts", u.retry_attempts);
  put(j, "startAt", u.start_at);
  put(j, "startedAt", u.started_at);
  put(j, "expiresAt", u.expires_at);
  put(j, "children", u.children);
  put(j, "activeChildrenCount", u.active_children_count);
  put(j, "onChildrenFinishedProcessingStatus", u.on_children_finished_processing_status);
  put(j, "onChildrenFinishedProcessingExpiresAt", u.on_children_finished_processing_expires_at);
  put(j, "onChildrenFinishedProcessingFinishedAt", u.on_children_finished_processing_finished_at);
  put(j, "finalize", u.finalize);
  put(j, "closeStatus", u.close_status);
  put(j, "closeExpiresAt", u.close_expires_at);
  put(j, "closedAt", u.closed_at);
  put(j, "needsPromiseCancellation", u.needs_promise_cancellation);
  if (u.unset_executor_id) j["unsetExecutorId"] = true;
  put(j, "isFinished", u.is_finished);
  if (u.unset_run_output) j["unsetRunOutput"] = true;
  if (u.unset_error) j["unsetError"] = true;
  if (u.unset_expires_at) j["unsetExpiresAt"] = true;
  put(j, "finishedAt", u.finished_at);
  if (u.unset_on_children_finished_processing_expires_at) {
    j["unsetOnChildrenFinishedProcessingExpiresAt"] = true;
  }
  if (u.unset_close_expires_at) j["unsetCloseExpiresAt"] = true;
  j["updatedAt"] = to_unix_ms(u.updated_at);
  if (u.increment_lease_expirations) j["incrementLeaseExpirations"] = true;
}

void from_json(const nlohmann::json& j, TaskExecutionUpdate& u) {
  get(j, "executorId", u.executor_id);
  get(j, "status", u.status);
  get(j, "runOutput", u.run_output);
  get(j, "output", u.output);
  get(j, "error", u.error);
  get(j, "retryAttempts", u.retry_attempts);
  get(j, "startAt", u.start_at);
  get(j, "startedAt", u.started_at);
  get(j, "expiresAt", u.expires_at);
  get(j, "children", u.children);
  get(j, "activeChildrenCount", u.active_children_count);
  get(j, "onChildrenFinishedProcessingStatus", u.on_children_finished_processing_status);
  get(j, "onChildrenFinishedProcessingExpiresAt", u.on_children_finished_processing_expires_at);
  get(j, "onChildrenFinishedProcessingFinishedAt", u.on_children_finished_processing_finished_at);
  get(j, "finalize", u.finalize);
  get(j, "closeStatus", u.close_status);
  get(j, "closeExpiresAt", u.close_expires_at);
  get(j, "closedAt", u.closed_at);
  get(j, "needsPromiseCancellation", u.needs_promise_cancellation);
  u.unset_executor_id = j.value("unsetExecutorId", false);
  get(j, "isFinished", u.is_finished);
  u.unset_run_output = j.value("unsetRunOutput", false);
  u.unset_error = j.value("unsetError", false);
  u.unset_expires_at = j.value("unsetExpiresAt", false);
  get(j, "finishedAt", u.finished_at);
  u.unset_on_children_finished_processing_expires_at =
      j.value("unsetOnChildrenFinishedProcessingExpiresAt", false);
  u.unset_close_expires_at = j.value("unsetCloseExpiresAt", false);
  u.updated_at = from_unix_ms(integer_value<std::int64_t>(j, "updatedAt", 0));
  u.increment_lease_expirations = j.value("incrementLeaseExpirations", false);
}

void to_json(nlohmann::json& j, const GetByIdFilters& f) {
  j = nlohmann::json::object();
  put(j, "isSleepingTask", f.is_sleeping_task);
  put(j, "status", f.status);
  put(j, "isFinished", f.is_finished);
}
void from_json(const nlohmann::json& j, GetByIdFilters& f) {
  get(j, "isSleepingTask", f.is_sleeping_task);
  get(j, "status", f.status);
  get(j, "isFinished", f.is_finished);
}

// ---- ids ------------------------------------------------------------------------------------

std::string generate_execution_id() {
  // Sorted by ASCII value, so the time prefix sorts like the time itself.
  static constexpr std::string_view kAlphabet =
      "0123456789ABCDEFGHJKMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz";
  static_assert(kAlphabet.size() == 56);
  constexpr std::size_t kTimeChars = 8;  // 56^8 ms covers ~3,000 years.
  constexpr std::size_t kRandomChars = 16;
  auto& rng = detail::thread_random();
  std::string id = "te_";
  id.resize(3 + kTimeChars + kRandomChars);
  auto ms = static_cast<std::uint64_t>(to_unix_ms(now_timestamp()));
  for (std::size_t i = 0; i < kTimeChars; ++i) {
    id[3 + kTimeChars - 1 - i] = kAlphabet[ms % kAlphabet.size()];
    ms /= kAlphabet.size();
  }
  // Eight characters per 64-bit draw: 56^8 < 2^64, and only a draw in the top 3e-6 of the range
  // (2^64 mod 56^8) is biased.
  static_assert(kRandomChars % 8 == 0);
  for (std::size_t i = 0; i < kRandomChars; i += 8) {
    auto bits = rng();
    for (std::size_t j = i; j < i + 8; ++j) {
      id[3 + kTimeChars + j] = kAlphabet[bits % kAlphabet.size()];
      bits /= kAlphabet.size();
    }
  }
  return id;
}

}  // namespace durable_execution
