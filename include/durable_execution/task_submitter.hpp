#pragma once

// The typed calls that submit and steer work, shared by DurableExecutor and
// DurableExecutorClient: one definition, so the two offer the same names and types.

#include <memory>
#include <string>
#include <utility>

#include "durable_execution/detail/engine.hpp"
#include "durable_execution/options.hpp"
#include "durable_execution/task.hpp"

namespace durable_execution {

/**
 * @brief Enqueue, handles, cancel and sleeping-task wake-ups: the calls DurableExecutor and
 * DurableExecutorClient both offer (each is one), with the same names and types. Code that only
 * submits work can take a `TaskSubmitter&` and be given either.
 *
 * Types are checked at compile time: an input that is not the task's input type (or a value
 * converting to it without narrowing), a sleeping task's output of another type, or a handle of
 * another output type does not compile.
 *
 * @code
 * void submit(de::TaskSubmitter& submitter, const de::Task<int, int>& add_one) {
 *   auto handle = submitter.enqueue_task(add_one, 41, {.timeout = std::chrono::seconds{2}});
 *   submitter.cancel(handle.execution_id());
 * }
 * @endcode
 *
 * @note Thread safety: thread-safe. Not created on its own, nor destroyed through this type; the
 * engine it holds is out of reach (the two classes that derive from it are final).
 */
class TaskSubmitter {
 public:
  /**
   * @brief Enqueues an execution of `task`. `input` must be of the task's input type (or convert
   * to it without narrowing); anything else does not compile. `options` override the task's
   * registered retry, sleep_before_run and timeout for this execution.
   *
   * @throws DurableExecutionNotFoundError for a task not registered here (on a client: not in
   *   its task list); DurableExecutionError for invalid options, an input over the size limit,
   *   after shutdown, or a storage failure. Nothing is written when it throws.
   */
  template <class I, class O, class V>
  requires InputFor<V, I>
  [[nodiscard]] TaskExecutionHandle<O> enqueue_task(const Task<I, O>& task, V&& input,
                                                    const EnqueueOptions& options = {}) {
    return detail::enqueue_typed(engine_, task, std::forward<V>(input), options);
  }

  /** @brief Enqueues a task without input (its input type is Empty), with optional overrides. */
  template <class O>
  [[nodiscard]] TaskExecutionHandle<O> enqueue_task(const Task<Empty, O>& task,
                                                    const EnqueueOptions& options = {}) {
    return detail::enqueue_typed(engine_, task, Empty{}, options);
  }

  /**
   * @brief A handle on an existing execution.
   * @throws DurableExecutionNotFoundError for an unknown task or execution, or an execution of
   *   another task.
   */
  template <class I, class O>
  [[nodiscard]] TaskExecutionHandle<O> get_task_execution_handle(const Task<I, O>& task,
                                                                 const std::string& execution_id) {
    engine_->check_handle(task.id(), execution_id);
    return TaskExecutionHandle<O>{engine_, task.id(), execution_id};
  }

  /**
   * @brief Cancels an execution by id, as TaskExecutionHandle::cancel does (a no-op if it is
   * finished or missing). An executor running it sees its stop token fire.
   */
  void cancel(const std::string& execution_id) { engine_->cancel(execution_id); }

  /**
   * @brief Completes the sleeping execution with `unique_id` with `output` (of the task's output
   * type, or converting to it without narrowing) and returns its view; an already finished
   * execution is returned unchanged.
   * @throws DurableExecutionNotFoundError for an unknown unique id or one of another task.
   */
  template <class O, class V>
  requires InputFor<V, O> TaskExecution<O> wakeup_sleeping_task_execution(
      const Task<std::string, O>& task, const std::string& unique_id, V&& output) {
    return TaskExecution<O>::from_record(
        engine_->wakeup_sleeping(task.descriptor(), unique_id, TaskExecutionStatus::completed,
                                 detail::serialize_as<O>(std::forward<V>(output))));
  }

  /**
   * @brief Fails the sleeping execution with `unique_id` (non-retryable, `message`) and returns
   * its view; an already finished execution is returned unchanged.
   * @throws DurableExecutionNotFoundError for an unknown unique id or one of another task.
   */
  template <class O>
  TaskExecution<O> fail_sleeping_task_execution(const Task<std::string, O>& task,
                                                const std::string& unique_id,
                                                const std::string& message) {
    return TaskExecution<O>::from_record(engine_->wakeup_sleeping(
        task.descriptor(), unique_id, TaskExecutionStatus::failed, message));
  }

 protected:
  /// @cond INTERNAL
  // The engine is the implementation's; only DurableExecutor and DurableExecutorClient make one.
  explicit TaskSubmitter(std::shared_ptr<detail::Engine> engine) : engine_(std::move(engine)) {}
  TaskSubmitter(const TaskSubmitter&) = delete;
  TaskSubmitter& operator=(const TaskSubmitter&) = delete;
  TaskSubmitter(TaskSubmitter&&) = delete;
  TaskSubmitter& operator=(TaskSubmitter&&) = delete;
  ~TaskSubmitter() = default;

  std::shared_ptr<detail::Engine> engine_;  // NOLINT(*-non-private-member-variables-in-classes)
  /// @endcond
};

}  // namespace durable_execution
