#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>

#include "durable_execution/errors.hpp"
#include "durable_execution/task_execution.hpp"

namespace durable_execution {

/** @brief Why a run's stop token fired. */
enum class StopReason : std::uint8_t { none, timed_out, cancelled, shutdown };

/**
 * @brief What the engine hands a run; see TaskRunContext. Not for direct use. The run reads the
 * engine's own copy of its execution (no per-run copies of ids).
 */
struct TaskRunContextData {
  /// The engine's record of the execution being run; valid during the run.
  const TaskExecutionRecord* execution = nullptr;
  /// Fires on timeout, cancellation or shutdown.
  std::stop_token stop_token{};
  /// Why the token fired; null when it cannot fire.
  const std::atomic<StopReason>* stop_reason = nullptr;
};

/**
 * @brief What a run sees of its execution: ids, the attempt number (0 on the first run), the
 * previous attempt's error, and a stop token.
 *
 * The stop token fires when the run times out, when its execution is cancelled (from any
 * process), and when the executor shuts down; stop_reason() tells which. The engine records a
 * timeout or cancellation at once and discards whatever the callable returns afterwards, so a
 * long-running callable should poll the token and return early. On shutdown the result of the
 * run is still recorded.
 *
 * @note Thread safety: owned by the worker thread running the task; valid only during the run.
 */
class TaskRunContext {
 public:
  /// @brief Made by the engine for each run.
  explicit TaskRunContext(TaskRunContextData data) : data_(std::move(data)) {}

  /// @brief The id of the task being run.
  [[nodiscard]] const std::string& task_id() const noexcept { return data_.execution->task_id; }
  /// @brief The id of the execution being run.
  [[nodiscard]] const std::string& execution_id() const noexcept {
    return data_.execution->execution_id;
  }
  /** @brief The top-level execution of the tree, unset for a top-level execution. */
  [[nodiscard]] const std::optional<TaskExecutionSummary>& root() const noexcept {
    return data_.execution->root;
  }
  /** @brief The parent execution, set on children and finalize executions. */
  [[nodiscard]] const std::optional<ParentTaskExecutionSummary>& parent() const noexcept {
    return data_.execution->parent;
  }
  /** @brief 0 on the first run, then the number of retries so far. */
  [[nodiscard]] std::int32_t attempt() const noexcept { return data_.execution->retry_attempts; }
  /** @brief The previous attempt's error (also "Task execution expired" after a lost lease). */
  [[nodiscard]] const std::optional<StoredError>& prev_error() const noexcept {
    return data_.execution->error;
  }
  /// @brief Fires when the run times out, its execution is cancelled, or the executor shuts down.
  [[nodiscard]] std::stop_token stop_token() const noexcept { return data_.stop_token; }
  /// @brief Whether the stop token has fired: a long run polls this and returns early.
  [[nodiscard]] bool stop_requested() const noexcept { return data_.stop_token.stop_requested(); }
  /// @brief Why the stop token fired; StopReason::none while it has not.
  [[nodiscard]] StopReason stop_reason() const noexcept {
    return data_.stop_reason != nullptr ? data_.stop_reason->load(std::memory_order_acquire)
                                        : StopReason::none;
  }

 private:
  TaskRunContextData data_;
};

}  // namespace durable_execution
