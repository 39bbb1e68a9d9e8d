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
/// @brief The Timestamp of a storage value: milliseconds since the Unix epoch.
[[nodiscard]] constexpr Timestamp from_unix_ms(std::int64_t ms) noexcept {
  return Timestamp{std::chrono::milliseconds{ms}};
}

/// @brief Where an execution is in its life (SPEC.md §2.2): active (is_active()) or finished
/// (is_finished()); a finished status never changes again.
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

/// @brief The stored name of a status: "ready", "waiting_for_children", ...
[[nodiscard]] DURABLE_EXECUTION_EXPORT std::string_view to_string(TaskExecutionStatus s) noexcept;
/// @brief The stored name of a children-processing sub-state: "idle", "processing", "processed".
[[nodiscard]] DURABLE_EXECUTION_EXPORT std::string_view to_string(
    OnChildrenFinishedProcessingStatus s) noexcept;
/// @brief The stored name of a close sub-state: "idle", "ready", "closing", "closed".
[[nodiscard]] DURABLE_EXECUTION_EXPORT std::string_view to_string(CloseStatus s) noexcept;
/** @brief Parses a status name; throws DurableExecutionError "Invalid task execution status: X". */
[[nodiscard]] DURABLE_EXECUTION_EXPORT TaskExecutionStatus
parse_task_execution_status(std::string_view text);
/// @brief Parses the name of a children-processing sub-state; throws DurableExecutionError on
/// anything else.
[[nodiscard]] DURABLE_EXECUTION_EXPORT OnChildrenFinishedProcessingStatus
parse_on_children_finished_processing_status(std::string_view text);
/// @brief Parses the name of a close sub-state; throws DurableExecutionError on anything else.
[[nodiscard]] DURABLE_EXECUTION_EXPORT CloseStatus parse_close_status(std::string_view text);

/** @brief Identifies one execution of one task. */
struct TaskExecutionSummary {
  /// The id of the task (TaskOptions::id).
  std::string task_id{};
  /// The id of the execution, unique in a storage.
  std::string execution_id{};

  /// Equal when every field is equal.
  friend bool operator==(const TaskExecutionSummary&, const TaskExecutionSummary&) = default;
};

/** @brief A child's view of its parent. */
struct ParentTaskExecutionSummary {
  /// The parent's task id.
  std::string task_id{};
  /// The parent's execution id.
  std::string execution_id{};
  /// This child's position in the parent's children (0 for a finalize execution).
  std::int32_t index_in_parent_children = 0;
  /// The parent has this one child (a sequential step runs as an only child).
  bool is_only_child_of_parent = false;
  /// This execution is the parent's finalize step, not one of its children.
  bool is_finalize_of_parent = false;

  /// Equal when every field is equal.
  friend bool operator==(const ParentTaskExecutionSummary&,
                         const ParentTaskExecutionSummary&) = default;
};

/**
 * @brief Retry policy of a task. `max_attempts` counts retries: a task runs at most
 * `max_attempts + 1` times. Delay before retry k (k >= 1): base_delay * multiplier^(k-1),
 * capped by max_delay.
 */
struct RetryOptions {
  /// Retries after the first run; 0 runs the task once.
  std::int32_t max_attempts = 0;
  /// Delay before the first retry; unset: 0 (retry at once).
  std::optional<std::chrono::milliseconds> base_delay{};
  /// Factor applied to the delay per further retry; unset: 1 (every delay is base_delay).
  std::optional<double> delay_multiplier{};
  /// Upper bound of any retry delay; unset: no bound.
  std::optional<std::chrono::milliseconds> max_delay{};

  /// Equal when every field is equal.
  friend bool operator==(const RetryOptions&, const RetryOptions&) = default;
};

/**
 * @brief One stored execution: every field of SPEC.md §2.1. Optional fields are unset when
 * absent (SQL NULL).
 */
struct TaskExecutionRecord {
  /// The top-level execution of the tree; unset on a top-level execution.
  std::optional<TaskExecutionSummary> root{};
  /// The parent, on children and finalize executions.
  std::optional<ParentTaskExecutionSummary> parent{};

  /// The task this is an execution of.
  std::string task_id{};
  /// Unique in the storage ("te_..." from generate_execution_id()).
  std::string execution_id{};
  /// An execution of a sleeping task: it has no function and is woken from outside.
  bool is_sleeping_task = false;
  /// A sleeping execution's unique id (unique across the storage), by which it is woken.
  std::optional<std::string> sleeping_task_unique_id{};
  /// The effective retry policy, after any enqueue override.
  RetryOptions retry_options{};
  /// The effective delay between enqueue and the first run.
  std::chrono::milliseconds sleep_before_run{0};
  /// The effective timeout of one run (of a sleeping execution: of the whole wait).
  std::chrono::milliseconds timeout{0};
  /// Informational: the task runs its children one after another.
  bool are_children_sequential = false;
  /// The serialized (JSON) input.
  std::string input{};

  /// The executor that claimed the latest run; kept on `cancelled`.
  std::optional<std::string> executor_id{};
  /// The status (SPEC.md §2.2).
  TaskExecutionStatus status = TaskExecutionStatus::ready;
  /// The status is a finished one; never reverts to false.
  bool is_finished = false;
  /// A parent's serialized run output while its children run.
  std::optional<std::string> run_output{};
  /// The final serialized output, once `completed`.
  std::optional<std::string> output{};
  /// The error of a finished errored execution, or of the previous attempt while `ready`.
  std::optional<StoredError> error{};
  /// Retries scheduled so far (the run context's attempt number).
  std::int32_t retry_attempts = 0;
  /// The earliest time the execution may be claimed.
  Timestamp start_at{};
  /// The time of the latest claim; never set on a sleeping execution.
  std::optional<Timestamp> started_at{};
  /// The lease deadline while `running`.
  std::optional<Timestamp> expires_at{};
  /// When the status became a finished one.
  std::optional<Timestamp> finished_at{};

  /// The declared children in order; unstarted sequential steps carry the execution id "dummy".
  std::optional<std::vector<TaskExecutionSummary>> children{};
  /// Children not yet closed (SPEC.md §3.11).
  std::int32_t active_children_count = 0;
  /// The children-processing sub-state of a parent (SPEC.md §2.4).
  OnChildrenFinishedProcessingStatus on_children_finished_processing_status =
      OnChildrenFinishedProcessingStatus::idle;
  /// The lease deadline while the children outcome is `processing`.
  std::optional<Timestamp> on_children_finished_processing_expires_at{};
  /// When the children outcome was written.
  std::optional<Timestamp> on_children_finished_processing_finished_at{};

  /// The finalize execution of a parent, once enqueued.
  std::optional<TaskExecutionSummary> finalize{};

  /// The close sub-state (SPEC.md §2.4).
  CloseStatus close_status = CloseStatus::idle;
  /// The lease deadline while `closing`.
  std::optional<Timestamp> close_expires_at{};
  /// When closing completed.
  std::optional<Timestamp> closed_at{};

  /// Set by a cancellation until the executor running it has stopped the run.
  bool needs_promise_cancellation = false;

  /// When the execution was inserted.
  Timestamp created_at{};
  /// The time of the latest update.
  Timestamp updated_at{};

  /**
   * How many times the lease of this execution's runs expired (T14: the executor that ran it
   * died or stalled). Not a retry attempt; past the executor's `max_lease_expirations` the
   * execution fails as abandoned repeatedly (a run that crashes its process every time).
   */
  std::int32_t lease_expirations = 0;

  /// Equal when every field is equal.
  friend bool operator==(const TaskExecutionRecord&, const TaskExecutionRecord&) = default;
};

/** @brief What a new record is made from; see make_task_execution_record. */
struct NewTaskExecution {
  /// See TaskExecutionRecord::root.
  std::optional<TaskExecutionSummary> root{};
  /// See TaskExecutionRecord::parent.
  std::optional<ParentTaskExecutionSummary> parent{};
  /// See TaskExecutionRecord::task_id.
  std::string task_id{};
  /// See TaskExecutionRecord::execution_id.
  std::string execution_id{};
  /// See TaskExecutionRecord::is_sleeping_task.
  bool is_sleeping_task = false;
  /// See TaskExecutionRecord::sleeping_task_unique_id.
  std::optional<std::string> sleeping_task_unique_id{};
  /// See TaskExecutionRecord::retry_options.
  RetryOptions retry_options{};
  /// See TaskExecutionRecord::sleep_before_run.
  std::chrono::milliseconds sleep_before_run{0};
  /// See TaskExecutionRecord::timeout.
  std::chrono::milliseconds timeout{0};
  /// See TaskExecutionRecord::are_children_sequential.
  bool are_children_sequential = false;
  /// See TaskExecutionRecord::input.
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
  /// Matches TaskExecutionRecord::is_sleeping_task.
  std::optional<bool> is_sleeping_task{};
  /// Matches TaskExecutionRecord::status.
  std::optional<TaskExecutionStatus> status{};
  /// Matches TaskExecutionRecord::is_finished.
  std::optional<bool> is_finished{};

  /// Whether `r` passes every set filter.
  [[nodiscard]] bool matches(const TaskExecutionRecord& r) const noexcept {
    return (!is_sleeping_task || *is_sleeping_task == r.is_sleeping_task) &&
           (!status || *status == r.status) && (!is_finished || *is_finished == r.is_finished);
  }
  /// Equal when every field is equal.
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
  /// Sets TaskExecutionRecord::executor_id.
  std::optional<std::string> executor_id{};
  /// Sets TaskExecutionRecord::status.
  std::optional<TaskExecutionStatus> status{};
  /// Sets TaskExecutionRecord::run_output.
  std::optional<std::string> run_output{};
  /// Sets TaskExecutionRecord::output.
  std::optional<std::string> output{};
  /// Sets TaskExecutionRecord::error.
  std::optional<StoredError> error{};
  /// Sets TaskExecutionRecord::retry_attempts.
  std::optional<std::int32_t> retry_attempts{};
  /// Sets TaskExecutionRecord::start_at.
  std::optional<Timestamp> start_at{};
  /// Sets TaskExecutionRecord::started_at.
  std::optional<Timestamp> started_at{};
  /// Sets TaskExecutionRecord::expires_at.
  std::optional<Timestamp> expires_at{};

  /// Sets TaskExecutionRecord::children.
  std::optional<std::vector<TaskExecutionSummary>> children{};
  /// Sets TaskExecutionRecord::active_children_count.
  std::optional<std::int32_t> active_children_count{};
  /// Sets TaskExecutionRecord::on_children_finished_processing_status.
  std::optional<OnChildrenFinishedProcessingStatus> on_children_finished_processing_status{};
  /// Sets TaskExecutionRecord::on_children_finished_processing_expires_at.
  std::optional<Timestamp> on_children_finished_processing_expires_at{};
  /// Sets TaskExecutionRecord::on_children_finished_processing_finished_at.
  std::optional<Timestamp> on_children_finished_processing_finished_at{};

  /// Sets TaskExecutionRecord::finalize.
  std::optional<TaskExecutionSummary> finalize{};

  /// Sets TaskExecutionRecord::close_status.
  std::optional<CloseStatus> close_status{};
  /// Sets TaskExecutionRecord::close_expires_at.
  std::optional<Timestamp> close_expires_at{};
  /// Sets TaskExecutionRecord::closed_at.
  std::optional<Timestamp> closed_at{};

  /// Sets TaskExecutionRecord::needs_promise_cancellation.
  std::optional<bool> needs_promise_cancellation{};

  /// Clears TaskExecutionRecord::executor_id (directive).
  bool unset_executor_id = false;
  /// Sets TaskExecutionRecord::is_finished (directive).
  std::optional<bool> is_finished{};
  /// Clears TaskExecutionRecord::run_output (directive).
  bool unset_run_output = false;
  /// Clears TaskExecutionRecord::error (directive).
  bool unset_error = false;
  /// Clears TaskExecutionRecord::expires_at (directive).
  bool unset_expires_at = false;
  /// Sets TaskExecutionRecord::finished_at (directive).
  std::optional<Timestamp> finished_at{};
  /// Clears TaskExecutionRecord::on_children_finished_processing_expires_at (directive).
  bool unset_on_children_finished_processing_expires_at = false;
  /// Clears TaskExecutionRecord::close_expires_at (directive).
  bool unset_close_expires_at = false;
  /// Sets TaskExecutionRecord::updated_at (always written).
  Timestamp updated_at{};

  /** Adds one to `lease_expirations` (the lease-expiry step). */
  bool increment_lease_expirations = false;

  /// Equal when every field is equal.
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

/// @name JSON forms
///@{

/// nlohmann::json conversions (found by ADL): camelCase keys, timestamps and durations as
/// integer milliseconds.
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
///@}

/**
 * @brief A new execution id: "te_" + 24 characters of a 56-letter alphabet (0-9, A-Z, a-z without
 * I, L, O, i, l, o). The first 8 characters encode the creation time in milliseconds, so ids
 * sort by creation time and inserts land at the right edge of a B-tree; 16 random ones follow.
 * @note Thread safety: thread-safe.
 */
[[nodiscard]] DURABLE_EXECUTION_EXPORT std::string generate_execution_id();

}  // namespace durable_execution
