#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "durable_execution/detail/engine.hpp"
#include "durable_execution/export.hpp"
#include "durable_execution/options.hpp"
#include "durable_execution/storage.hpp"
#include "durable_execution/task.hpp"

namespace durable_execution {

/**
 * @brief Submits work without running any: enqueue, handles, cancel and sleeping-task wake-up
 * over the same storage as the executors, with no worker threads and no background processes
 * (for API servers that only submit work).
 *
 * The client knows the tasks it is given (typically `Task<I, O>::reference(options)` or the
 * descriptors of an executor's tasks); enqueues and handles of any other task throw not-found.
 * Unlike the reference engine's client, handles are looked up in this task list, so
 * get_task_execution_handle works.
 *
 * @code
 * auto add_one = de::Task<int, int>::reference({.id = "add_one", .timeout = 5s});
 * de::DurableExecutorClient client{storage, {add_one.descriptor()}};
 * auto handle = client.enqueue_task(add_one, 41);   // an executor elsewhere runs it
 * @endcode
 *
 * @note Thread safety: thread-safe. The storage must outlive the client and its handles.
 */
class DURABLE_EXECUTION_EXPORT DurableExecutorClient {
 public:
  /** @throws DurableExecutionError for invalid options or task descriptors. */
  DurableExecutorClient(TaskExecutionsStorage& storage, const std::vector<TaskDescriptor>& tasks,
                        const DurableExecutorClientOptions& options = {});
  DurableExecutorClient(const DurableExecutorClient&) = delete;
  DurableExecutorClient& operator=(const DurableExecutorClient&) = delete;
  DurableExecutorClient(DurableExecutorClient&&) = delete;
  DurableExecutorClient& operator=(DurableExecutorClient&&) = delete;
  ~DurableExecutorClient();

  /** @brief As DurableExecutor::enqueue_task; the task must be in the client's list. */
  template <class I, class O, class V>
  requires InputFor<V, I>
  [[nodiscard]] TaskExecutionHandle<O> enqueue_task(const Task<I, O>& task, V&& input,
                                                    const EnqueueOptions& options = {}) {
    return detail::enqueue_typed(engine_, task, std::forward<V>(input), options);
  }

  /// @brief As DurableExecutor::get_task_execution_handle: a handle on an existing execution.
  /// @throws DurableExecutionNotFoundError for a task not in the client's list or an unknown
  /// execution.
  template <class I, class O>
  [[nodiscard]] TaskExecutionHandle<O> get_task_execution_handle(const Task<I, O>& task,
                                                                 const std::string& execution_id) {
    engine_->check_handle(task.id(), execution_id);
    return TaskExecutionHandle<O>{engine_, task.id(), execution_id};
  }

  /** @brief Cancels an execution by id (no-op if finished or missing). */
  void cancel(const std::string& execution_id);

  /**
   * @brief Wakes the sleeping execution with `unique_id` as completed with `output` (SPEC.md
   * §3.7) and returns its finished record; waking a finished one returns it unchanged.
   */
  template <class O>
  TaskExecutionRecord wakeup_sleeping_task_execution_completed(const TaskDescriptor& task,
                                                               const std::string& unique_id,
                                                               const O& output) {
    return engine_->wakeup_sleeping(task, unique_id, TaskExecutionStatus::completed,
                                    detail::serialize_value(output));
  }

  /** @brief Stops accepting calls. Idempotent; the destructor calls it. */
  void shutdown() noexcept;

 private:
  std::shared_ptr<detail::Engine> engine_;
};

}  // namespace durable_execution
