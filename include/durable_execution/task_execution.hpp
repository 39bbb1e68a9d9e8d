#pragma once

// The execution model (SPEC.md §2): the stored record, its statuses and sub-states, the update
// with its explicit "unset" directives, the update normalizer and the get-by-id filters.
// Durations are std::chrono::milliseconds; timestamps are UTC milliseconds (Timestamp).

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "durable_execution/errors.hpp"
#include "durable_execution/export.hpp"

namespace durable_execution {

/** @brief A point in time, UTC, in whole milliseconds (stored as int64 milliseconds). */
using Timestamp = std::chrono::sys_time<std::chrono::milliseconds>;

/** @brief The current time, truncated to milliseconds. */
[[nodiscard]] inline Timestamp now_timestamp() noexcept {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}
/** @brief Milliseconds since the Unix epoch, the storage form of a Timestamp. */
[[nodiscard]] constexpr std::int64_t to_unix_ms(Timestamp t) noexcept {
  return t.time_since_epoch().count();
}
[[nodiscard]] constexpr Timestamp from_unix_ms(std::int64_t ms) noexcept {
  return Timestamp{std::chrono::milliseconds{ms}};
}

enum class TaskExecutionStatus {
  ready,
  running,
  failed,
  timed_out,
  waiting_for_children,
  waiting_for_finalize,
  finalize_failed,
  completed,
  cancelled,
};

/** @brief ready, running, waiting_for_children, waiting_for_finalize. */
[[nodiscard]] constexpr bool is_active(TaskExecutionStatus s) noexcept {
  return s == TaskExecutionStatus::ready || s == TaskExecutionStatus::running ||
         s == TaskExecutionStatus::waiting_for_children ||
         s == TaskExecutionStatus::waiting_for_finalize;
}
/** @brief failed, timed_out, finalize_failed, completed, cancelled. */
[[nodiscard]] constexpr bool is_finished(TaskExecutionStatus s) noexcept { return !is_active(s); }
/** @brief Every finished status except completed. */
[[nodiscard]] constexpr bool is_errored(TaskExecutionStatus s) noexcept {
  return is_finished(s) && s != TaskExecutionStatus::completed;
}

/** @brief Children-processing sub-state of a parent (SPEC.md §2.4). */
enum class OnChildrenFinishedProcessingStatus { idle, processing, processed };

/** @brief Close sub-state of every execution (SPEC.md §2.4). */
enum class CloseStatus { idle, ready, closing, closed };

[[nodiscard]] DURABLE_EXECUTION_EXPORT std::string_view to_string(TaskExecutionStatus s) noexcept;
[[nodiscard]] DURABLE_EXECUTION_EXPORT std::string_view to_string(
    OnChildrenFinishedProcessingStatus s) noexcept;
[[nodiscard]] DURABLE_EXECUTION_EXPORT std::string_view to_string(CloseStatus s) noexcept;
/** @brief Parses a status name; throws DurableExecutionError "Invalid task execution status: X". */
[[nodiscard]] DURABLE_EXECUTION_EXPORT TaskExecutionStatus
parse_task_execution_status(std::string_view text);
[[nodiscard]] DURABLE_EXECUTION_EXPORT OnChildrenFinishedProcessingStatus
parse_on_children_finished_processing_status(std::string_view text);
[[nodiscard]] DURABLE_EXECUTION_EXPORT CloseStatus parse_close_status(std::string_view text);

/** @brief Identifies one execution of one task. */
struct TaskExecutionSummary {
  std::string task_id{};
  std::string execution_id{};

  friend bool operator==(const TaskExecutionSummary&, const TaskExecutionSummary&) = default;
};

/** @brief A child's view of its parent. */
struct ParentTaskExecutionSummary {
  std::string task_id{};
  std::string execution_id{};
  std::int32_t index_in_parent_children = 0;
  bool is_only_child_of_parent = false;
  bool is_finalize_of_parent = false;

  friend bool operator==(const ParentTaskExecutionSummary&,
                         const ParentTaskExecutionSummary&) = default;
};

/**
 * @brief Retry policy of a task. `max_attempts` counts retries: a task runs at most
 * `max_attempts + 1` times. Delay before retry k (k >= 1): base_delay * multiplier^(k-1),
 * capped by max_delay.
 */
struct RetryOptions {
  std::int32_t max_attempts = 0;
  std::optional<std::chrono::milliseconds> base_delay{};
  std::optional<double> delay_multiplier{};
  std::optional<std::chrono::milliseconds> max_delay{};

  friend bool operator==(const RetryOptions&, const RetryOptions&) = default;
};

/**
 * @brief One stored execution: every field of SPEC.md §2.1. Optional fields are unset when
 * absent (SQL NULL).
 */
struct TaskExecutionRecord {
  std::optional<TaskExecutionSummary> root{};
  std::optional<ParentTaskExecutionSummary> parent{};

  std::string task_id{};
  std::string execution_id{};
  bool is_sleeping_task = false;
  std::optional<std::string> sleeping_task_unique_id{};
  RetryOptions retry_options{};
  std::chrono::milliseconds sleep_before_run{0};
  std::chrono::milliseconds timeout{0};
  bool are_children_sequential = false;
  std::string input{};

  std::optional<std::string> executor_id{};
  TaskExecutionStatus status = TaskExecutionStatus::ready;
  bool is_finished = false;
  std::optional<std::string> run_output{};
  std::optional<std::string> output{};
  std::optional<StoredError> error{};
  std::int32_t retry_attempts = 0;
  Timestamp start_at{};
  std::optional<Timestamp> started_at{};
  std::optional<Timestamp> expires_at{};
  std::optional<Timestamp> finished_at{};

  std::optional<std::vector<TaskExecutionSummary>> children{};
  std::int32_t active_children_count = 0;
  OnChildrenFinishedProcessingStatus on_children_finished_processing_status =
      OnChildrenFinishedProcessingStatus::idle;
  std::optional<Timestamp> on_children_finished_processing_expires_at{};
  std::optional<Timestamp> on_children_finished_processing_finished_at{};

  std::optional<TaskExecutionSummary> finalize{};

  CloseStatus close_status = CloseStatus::idle;
  std::optional<Timestamp> close_expires_at{};
  std::optional<Timestamp> closed_at{};

  bool needs_promise_cancellation = false;

  Timestamp created_at{};
  Timestamp updated_at{};

  /**
   * How many times the lease of this execution's runs expired (T14: the executor that ran it
   * died or stalled). Not a retry attempt; past the executor's `max_lease_expirations` the
   * execution fails as abandoned repeatedly (a run that crashes its process every time).
   */
  std::int32_t lease_expirations = 0;

  friend bool operator==(const TaskExecutionRecord&, const TaskExecutionRecord&) = default;
};

/** @brief What a new record is made from; see make_task_execution_record. */
struct NewTaskExecution {
  std::optional<TaskExecutionSummary> root{};
  std::optional<ParentTaskExecutionSummary> parent{};
  std::string task_id{};
  std::string execution_id{};
  bool is_sleeping_task = false;
  std::optional<std::string> sleeping_task_unique_id{};
  RetryOptions retry_options{};
  std::chrono::milliseconds sleep_before_run{0};
  std::chrono::milliseconds timeout{0};
  bool are_children_sequential = false;
  std::string input{};
};

/**
 * @brief A new record with the insert defaults of SPEC.md §2.1: `ready` (sleeping: `running`
 * with `expires_at = now + sleep + timeout` and a unique id, "" when missing),
 * `start_at = now + sleep`, sub-states idle, created/updated at `now`.
 */
[[nodiscard]] DURABLE_EXECUTION_EXPORT TaskExecutionRecord
make_task_execution_record(Timestamp now, NewTaskExecution values);

/** @brief Equality filters of the by-id lookups and updates; an unset filter matches all. */
struct GetByIdFilters {
  std::optional<bool> is_sleeping_task{};
  std::optional<TaskExecutionStatus> status{};
  std::optional<bool> is_finished{};

  [[nodiscard]] bool matches(const TaskExecutionRecord& r) const noexcept {
    return (!is_sleeping_task || *is_sleeping_task == r.is_sleeping_task) &&
           (!status || *status == r.status) && (!is_finished || *is_finished == r.is_finished);
  }
  friend bool operator==(const GetByIdFilters&, const GetByIdFilters&) = default;
};

/**
 * @brief A partial update of a record.
 *
 * A set optional field sets that field. The `unset_*` directives clear optional fields and win
 * over a set value of the same field. `is_finished`/`finished_at` and the directives are
 * normally filled in by normalize_update(), never by hand. `updated_at` is always written.
 */
struct TaskExecutionUpdate {
  std::optional<std::string> executor_id{};
  std::optional<TaskExecutionStatus> status{};
  std::optional<std::string> run_output{};
  std::optional<std::string> output{};
  std::optional<StoredError> error{};
  std::optional<std::int32_t> retry_attempts{};
  std::optional<Timestamp> start_at{};
  std::optional<Timestamp> started_at{};
  std::optional<Timestamp> expires_at{};

  std::optional<std::vector<TaskExecutionSummary>> children{};
  std::optional<std::int32_t> active_children_count{};
  std::optional<OnChildrenFinishedProcessingStatus> on_children_finished_processing_status{};
  std::optional<Timestamp> on_children_finished_processing_expires_at{};
  std::optional<Timestamp> on_children_finished_processing_finished_at{};

  std::optional<TaskExecutionSummary> finalize{};

  std::optional<CloseStatus> close_status{};
  std::optional<Timestamp> close_expires_at{};
  std::optional<Timestamp> closed_at{};

  std::optional<bool> needs_promise_cancellation{};

  bool unset_executor_id = false;
  std::optional<bool> is_finished{};
  bool unset_run_output = false;
  bool unset_error = false;
  bool unset_expires_at = false;
  std::optional<Timestamp> finished_at{};
  bool unset_on_children_finished_processing_expires_at = false;
  bool unset_close_expires_at = false;
  Timestamp updated_at{};

  /** Adds one to `lease_expirations` (the lease-expiry step). */
  bool increment_lease_expirations = false;

  friend bool operator==(const TaskExecutionUpdate&, const TaskExecutionUpdate&) = default;
};

/**
 * @brief The update normalizer of SPEC.md §2.3: sets `updated_at = now` and the directives that
 * the new status and sub-states imply (finished → is_finished, finished_at, unset run output;
 * ready → unset run output; non-errored and not ready/running → unset error; not running or
 * cancelled, or needs_promise_cancellation == false → unset executor id; not running → unset
 * expires_at; a processing status other than processing → unset its expiry; a close status
 * other than closing → unset close_expires_at).
 *
 * @throws DurableExecutionError (non-retryable) if `update` already carries directives, or sets a
 *   field that its own status or sub-state clears (for example `run_output` with `completed`,
 *   `expires_at` with anything but `running`, `output` with anything but `completed`).
 */
[[nodiscard]] DURABLE_EXECUTION_EXPORT TaskExecutionUpdate
normalize_update(Timestamp now, TaskExecutionUpdate update);

/**
 * @brief Applies a (normalized) update to a record in place; unset directives win over set
 * values. Used by in-process stores; SQL stores map the same fields to columns.
 */
DURABLE_EXECUTION_EXPORT void apply_update(TaskExecutionRecord& record,
                                           const TaskExecutionUpdate& update);

// JSON forms (camelCase keys, timestamps and durations as integer milliseconds).
DURABLE_EXECUTION_EXPORT void to_json(nlohmann::json& j, TaskExecutionStatus s);
DURABLE_EXECUTION_EXPORT void from_json(const nlohmann::json& j, TaskExecutionStatus& s);
DURABLE_EXECUTION_EXPORT void to_json(nlohmann::json& j, OnChildrenFinishedProcessingStatus s);
DURABLE_EXECUTION_EXPORT void from_json(const nlohmann::json& j,
                                        OnChildrenFinishedProcessingStatus& s);
DURABLE_EXECUTION_EXPORT void to_json(nlohmann::json& j, CloseStatus s);
DURABLE_EXECUTION_EXPORT void from_json(const nlohmann::json& j, CloseStatus& s);
DURABLE_EXECUTION_EXPORT void to_json(nlohmann::json& j, const TaskExecutionSummary& s);
DURABLE_EXECUTION_EXPORT void from_json(const nlohmann::json& j, TaskExecutionSummary& s);
DURABLE_EXECUTION_EXPORT void to_json(nlohmann::json& j, const ParentTaskExecutionSummary& s);
DURABLE_EXECUTION_EXPORT void from_json(const nlohmann::json& j, ParentTaskExecutionSummary& s);
DURABLE_EXECUTION_EXPORT void to_json(nlohmann::json& j, const RetryOptions& r);
DURABLE_EXECUTION_EXPORT void from_json(const nlohmann::json& j, RetryOptions& r);
DURABLE_EXECUTION_EXPORT void to_json(nlohmann::json& j, const TaskExecutionRecord& r);
DURABLE_EXECUTION_EXPORT void from_json(const nlohmann::json& j, TaskExecutionRecord& r);
DURABLE_EXECUTION_EXPORT void to_json(nlohmann::json& j, const TaskExecutionUpdate& u);
DURABLE_EXECUTION_EXPORT void from_json(const nlohmann::json& j, TaskExecutionUpdate& u);
DURABLE_EXECUTION_EXPORT void to_json(nlohmann::json& j, const GetByIdFilters& f);
DURABLE_EXECUTION_EXPORT void from_json(const nlohmann::json& j, GetByIdFilters& f);

/**
 * @brief A new execution id: "te_" + 24 characters of a 56-letter alphabet (0-9, A-Z, a-z without
 * I, L, O, i, l, o). The first 8 characters encode the creation time in milliseconds, so ids
 * sort by creation time and inserts land at the right edge of a B-tree; 16 random ones follow.
 * @note Thread safety: thread-safe.
 */
[[nodiscard]] DURABLE_EXECUTION_EXPORT std::string generate_execution_id();

}  // namespace durable_execution
