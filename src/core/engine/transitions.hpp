#pragma once

// The state machine of SPEC.md §3 as pure planning: given records, task definitions, options and
// the time, each function returns the storage writes a transition makes, and reads or writes
// nothing itself. The engine's threads carry the plans out (completion_writer, background,
// dispatcher). Entered by any engine thread and by the application's threads (enqueue, cancel,
// wake-ups); stateless, so thread-safe. The one exception to "pure": planning a parent's outcome
// calls its finalize function (user code), as the reference engine does.

#include <optional>
#include <string>
#include <vector>

#include "durable_execution/detail/engine.hpp"
#include "durable_execution/storage.hpp"
#include "registry.hpp"

namespace durable_execution::detail {

/** @brief The stored form of the exception `ep` (SPEC.md §3.4: unknown ones are retryable). */
[[nodiscard]] StoredError to_stored_error(std::exception_ptr ep);
/** @brief The message of the exception `ep` ("Unknown error" if it has none). */
[[nodiscard]] std::string error_message(std::exception_ptr ep);
/** @brief What JSON carries of a message: invalid UTF-8 replaced by U+FFFD, as nlohmann writes
 * it, and at most max_error_message_size bytes (plus the truncation note); every stored error
 * message goes through it, so each backend stores the same text. */
[[nodiscard]] std::string json_safe_message(std::string message);
/** @brief The string a JSON text holds (a sleeping step's unique id: the chain's input or the
 * previous step's output), if it holds one. */
[[nodiscard]] std::optional<std::string> unique_id_from_output(const std::string& output);
/** @brief At most the first 100 bytes of `text`, printable (others as \xNN), for messages. */
[[nodiscard]] std::string abbreviated(std::string_view text);

/** @brief A run's result write (T4-T10; a parent's children or finalize child, T12). */
struct RunWrite {
  std::optional<UpdateByIdRequest> update;
  std::optional<UpdateByIdAndInsertChildrenRequest> update_with_children;
  /** A retry's start: the dispatcher claims it then. */
  std::optional<Timestamp> wake_at;
  /** The parent a finalize child's update settles (update->parent_update), for its waiters. */
  std::string settled_parent_id{};
  /**
   * What a failure is planned from if storage rejects this write (Transitions::write_rejected):
   * the run's place under its parent. Not the run itself: holding runs until their batch is
   * written made the writer free them all, contended, and cost ~20% of no-op throughput.
   */
  bool has_parent = false;
  bool is_finalize_of_parent = false;
};

/** @brief The writes of one children step, gathered so that the whole batch costs two calls. */
struct ParentWrites {
  std::vector<UpdateByIdRequest> updates;
  std::vector<UpdateByIdAndInsertChildrenRequest> with_children;
};

/** @brief The writes of one close step (T19-T21, T11). */
struct CloseWrites {
  /** T20: finalize children settling their parents. */
  std::vector<UpdateByIdRequest> parent_updates;
  /** T11: the unfinished children of parents that did not complete, cancelled. */
  std::vector<UpdateByParentExecutionIdAndIsFinishedRequest> cancel_children;
  /** The claimed executions, closed. */
  std::vector<UpdateByIdRequest> closes;
};

/** @brief The four requests of the expiry step (T14, T13, processing reset, T22). */
struct ExpiryRequests {
  UpdateByIsSleepingTaskAndExpiresAtLessThanRequest running;
  UpdateByIsSleepingTaskAndExpiresAtLessThanRequest sleeping;
  UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest processing;
  UpdateByCloseExpiresAtLessThanRequest close;
};

/**
 * @brief The stored text of a parent's result, `{"children":[...],"output":...}`: a parent's
 * output without finalize, a finalize task's input. Exactly what nlohmann::json::dump() writes
 * for the same value; the outputs, stored JSON already, are spliced in verbatim (a wide parent's
 * are never parsed). The one writer of this text.
 */
[[nodiscard]] std::string parent_result_json(const ParentResultView& result);

class Transitions {
 public:
  Transitions(const TaskRegistry& registry, const DurableExecutorOptions& options)
      : registry_(registry), options_(options) {}

  // ---- new executions ---------------------------------------------------------------------

  /**
   * @brief A new execution of `def`: its registered options with `overrides` laid over them,
   * validated by enqueue's rules, and its input checked (a sleeping task's input is its unique
   * id). The one place where enqueues, children, finalize children and sequential steps get their
   * options and input. `check_input_size` is off only for a sequential step, whose input is the
   * previous step's output, verbatim (SPEC.md §3.8).
   * @throws DurableExecutionError naming the bad option or input.
   */
  [[nodiscard]] NewTaskExecution new_execution(const TaskDefinition& def, std::string input,
                                               const EnqueueOptions& overrides,
                                               bool check_input_size = true) const;

  // ---- a run's outcome (§3.2-§3.4) --------------------------------------------------------

  /**
   * @brief T4/T12: the write of a run that returned `result`: completed, or waiting for its
   * children or finalize child (a finalize function runs here).
   * @throws DurableExecutionError when the result breaks a limit or names an unknown task.
   */
  [[nodiscard]] RunWrite run_succeeded(const TaskExecutionRecord& rec, const TaskDefinition& def,
                                       RunParentResult result, Timestamp now) const;
  /** @brief T5-T10: the write of a run that failed with `error`: a retry or its final status. */
  [[nodiscard]] RunWrite run_failed(const TaskExecutionRecord& rec, StoredError error,
                                    Timestamp now) const;
  /**
   * @brief The run behind `write` fails with `error` (non-retryable) because storage rejected
   * its write: written like any failed run. Depends only on the execution's id and its place
   * under its parent.
   */
  [[nodiscard]] std::optional<UpdateByIdRequest> write_rejected(const RunWrite& write,
                                                                std::string execution_id,
                                                                const StoredError& error,
                                                                Timestamp now) const;

  // ---- parents (§3.8, §3.10) --------------------------------------------------------------

  /**
   * @brief The children step for one parent whose children all finished (T15-T17): its outcome,
   * its finalize child, or its next sequential step, appended to `writes`.
   * @throws std::exception only for errors that would repeat at every attempt.
   */
  void plan_parent(const TaskExecutionRecord& parent,
                   const std::vector<TaskExecutionRecord>& children, Timestamp now,
                   ParentWrites& writes) const;
  /** @brief The parent ends with `status` and `error` (guarded by waiting_for_children). */
  void fail_parent(const TaskExecutionRecord& parent, TaskExecutionStatus status, StoredError error,
                   Timestamp now, ParentWrites& writes) const;

  /** @brief The close step for claimed executions (T19-T21, T11). */
  [[nodiscard]] CloseWrites plan_close(const std::vector<TaskExecutionRecord>& rows,
                                       Timestamp now) const;

  // ---- claims and the background steps' requests -------------------------------------------

  /** @brief T3: claim up to `limit` ready executions due by `now` for `executor_id`. */
  [[nodiscard]] UpdateByStatusAndStartAtLessThanRequest claim_ready(const std::string& executor_id,
                                                                    std::int64_t limit,
                                                                    Timestamp now) const;
  /** @brief Claimed executions back to `ready`, untouched otherwise (no attempt counted). */
  [[nodiscard]] static std::vector<UpdateByIdRequest> release(
      const std::vector<TaskExecutionRecord>& rows, Timestamp now);
  /** @brief T18: finished executions to close_status ready, parents' counts decremented. */
  [[nodiscard]] UpdateAndDecrementParentActiveChildrenCountRequest mark_finished(
      Timestamp now) const;
  [[nodiscard]] UpdateByCloseStatusRequest claim_close(Timestamp now) const;
  [[nodiscard]] UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest claim_children_finished(
      Timestamp now) const;
  /** @brief T23: this executor's runs whose executions were cancelled. */
  [[nodiscard]] UpdateByExecutorIdAndNeedsPromiseCancellationRequest claim_cancellations(
      const std::string& executor_id, Timestamp now) const;
  [[nodiscard]] ExpiryRequests expire(Timestamp now) const;

  // ---- the application's requests ---------------------------------------------------------

  /** @brief T23: cancel an unfinished execution. */
  [[nodiscard]] static UpdateByIdRequest cancel(const std::string& execution_id, Timestamp now);
  /**
   * @brief §3.7: wake a sleeping execution: `completed` with `payload` as output, or `failed`
   * with it as message. @throws DurableExecutionError for another status.
   */
  [[nodiscard]] static UpdateByIdRequest wake_sleeping(const std::string& execution_id,
                                                       TaskExecutionStatus status,
                                                       std::string payload, Timestamp now);

 private:
  [[nodiscard]] TaskExecutionRecord child_record(const TaskExecutionRecord& parent,
                                                 const TaskDefinition& child_def, std::string input,
                                                 const EnqueueOptions& overrides,
                                                 ParentTaskExecutionSummary parent_summary,
                                                 Timestamp now, bool check_input_size = true) const;
  void advance_sequence(const TaskExecutionRecord& parent,
                        std::vector<TaskExecutionSummary> declared, std::size_t j,
                        const TaskExecutionRecord* prev, Timestamp now, ParentWrites& writes) const;

  const TaskRegistry& registry_;
  const DurableExecutorOptions& options_;
};

}  // namespace durable_execution::detail
