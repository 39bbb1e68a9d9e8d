#pragma once

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "durable_execution/detail/engine.hpp"
#include "durable_execution/export.hpp"
#include "durable_execution/options.hpp"
#include "durable_execution/storage.hpp"
#include "durable_execution/task.hpp"

namespace durable_execution {

class DurableExecutor;

/**
 * @brief The result of DurableExecutor::validate_input(fn): defines tasks whose input is first
 * turned from `Raw` into the run input `I` by `fn` (which throws to reject it).
 *
 * The validation runs when the execution runs, not at enqueue (SPEC.md §1.2): a rejected input
 * makes the execution `failed` with a non-retryable "Invalid input to task <id>: <message>", and
 * the run function never runs.
 */
template <class Raw, class I>
class InputValidatedTaskBuilder {
 public:
  InputValidatedTaskBuilder(DurableExecutor& executor, std::function<I(const Raw&)> validate)
      : executor_(&executor), validate_(std::move(validate)) {}

  /** @brief Like DurableExecutor::task; the task's input type is `Raw`. */
  template <class O = detail::Deduce, class F>
  [[nodiscard]] auto task(const TaskOptions& options, F run);

 private:
  DurableExecutor* executor_;
  std::function<I(const Raw&)> validate_;
};

/**
 * @brief Runs tasks durably over a TaskExecutionsStorage: typed tasks, a bounded pool of reused
 * worker threads, retries, timeouts, cancellation and crash recovery (SPEC.md §3, §5, §6).
 *
 * @code
 * namespace de = durable_execution;
 * de::InMemoryTaskExecutionsStorage storage;
 * de::DurableExecutor executor{storage, {.max_concurrent_task_executions = 64}};
 * auto add_one = executor.task({.id = "add_one", .timeout = std::chrono::seconds{5}},
 *                              [](de::TaskRunContext&, const int& x) { return x + 1; });
 * executor.start();
 * auto handle = executor.enqueue_task(add_one, 41);
 * auto done = handle.wait_and_get_finished_execution();  // done.output == 42
 * executor.shutdown();
 * @endcode
 *
 * Every executor sharing a storage must register the same tasks. Work created by this executor
 * wakes its loops at once; work created by other processes is found by polling every
 * `background_process_intra_batch_sleep` (with back-off while idle).
 *
 * @note Thread safety: thread-safe. Task functions run on the executor's worker threads; finalize
 *   functions on its background thread. The storage must outlive the executor and every handle.
 *   The destructor calls shutdown(): it stops the loops, then waits for running tasks.
 */
class DURABLE_EXECUTION_EXPORT DurableExecutor {
 public:
  /** @throws DurableExecutionError "Invalid options: <field> ..." for a bad option. */
  explicit DurableExecutor(TaskExecutionsStorage& storage,
                           const DurableExecutorOptions& options = {});
  DurableExecutor(const DurableExecutor&) = delete;
  DurableExecutor& operator=(const DurableExecutor&) = delete;
  DurableExecutor(DurableExecutor&&) = delete;
  DurableExecutor& operator=(DurableExecutor&&) = delete;
  /** @brief Calls shutdown(). */
  ~DurableExecutor();

  /**
   * @brief Registers a simple task. Input and output are deduced from `run`, which may be
   * `run(ctx, input)`, `run(input)`, `run(ctx)` or `run()` (input Empty; a void result gives
   * output Empty), or given explicitly: `task<int, std::string>(...)`.
   *
   * @throws DurableExecutionError for invalid options, a duplicate id, or after shutdown.
   */
  template <class I = detail::Deduce, class O = detail::Deduce, class F>
  [[nodiscard]] auto task(const TaskOptions& options, F run) {
    using Sig = detail::RunSignature<F>;
    using In = std::conditional_t<std::is_same_v<I, detail::Deduce>, typename Sig::Input, I>;
    using Out = std::conditional_t<std::is_same_v<O, detail::Deduce>, typename Sig::Output, O>;
    return register_simple<In, In, Out>(options, {}, std::move(run));
  }

  /**
   * @brief Adds a validation step: `fn(const Raw&) -> I`, throwing to reject. Returns a builder
   * whose task() registers tasks that take `Raw`.
   */
  template <class F>
  [[nodiscard]] auto validate_input(F fn) {
    using Traits = detail::CallableTraits<std::decay_t<F>>;
    using Raw = std::remove_cvref_t<std::tuple_element_t<0, typename Traits::Args>>;
    using In = std::remove_cvref_t<typename Traits::Result>;
    return InputValidatedTaskBuilder<Raw, In>{*this, std::function<In(const Raw&)>(std::move(fn))};
  }

  /**
   * @brief Enqueues an execution of `task`. `input` must be of the task's input type (or convert
   * to it without narrowing); anything else does not compile.
   *
   * @throws DurableExecutionNotFoundError for a task not registered here; DurableExecutionError
   *   for invalid options, an input over the size limit, after shutdown, or a storage failure.
   *   Nothing is written when it throws.
   */
  template <class I, class O, class V>
    requires InputFor<V, I>
  [[nodiscard]] TaskExecutionHandle<O> enqueue_task(const Task<I, O>& task, V&& input,
                                                    const EnqueueOptions& options = {}) {
    return detail::enqueue_typed(engine_, task, std::forward<V>(input), options);
  }

  /** @brief Enqueues a task whose input is Empty. */
  template <class O>
  [[nodiscard]] TaskExecutionHandle<O> enqueue_task(const Task<Empty, O>& task) {
    return detail::enqueue_typed(engine_, task, Empty{}, EnqueueOptions{});
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

  /** @brief Starts the worker pool, the timer and the background processes. Idempotent.
   * @throws DurableExecutionError after shutdown. */
  void start();

  /**
   * @brief Stops enqueuing, stops the background processes, then waits for running tasks (their
   * stop token fires with StopReason::shutdown; their results are recorded). Idempotent.
   */
  void shutdown() noexcept;

  [[nodiscard]] bool is_shutdown() const noexcept;
  [[nodiscard]] ExecutorStats stats() const;
  /** @brief Ids of the executions running in this executor now. */
  [[nodiscard]] std::vector<std::string> running_execution_ids() const;
  /** @brief "de_" + 8 random characters; recorded on the executions this executor claims. */
  [[nodiscard]] std::string executor_id() const;

  /** @brief The untyped engine, for the typed front and extensions. Not API. */
  [[nodiscard]] const std::shared_ptr<detail::Engine>& engine() const noexcept { return engine_; }

 private:
  template <class Raw, class I>
  friend class InputValidatedTaskBuilder;

  template <class Raw, class I, class O, class F>
  Task<Raw, O> register_simple(const TaskOptions& options, std::function<I(const Raw&)> validate,
                               F run) {
    detail::TaskDefinition def;
    def.options = options;
    def.run = detail::make_simple_run<Raw, I, O>(options.id, std::move(validate), std::move(run));
    return Task<Raw, O>{engine_->register_task(std::move(def))};
  }

  std::shared_ptr<detail::Engine> engine_;
};

template <class Raw, class I>
template <class O, class F>
auto InputValidatedTaskBuilder<Raw, I>::task(const TaskOptions& options, F run) {
  using Sig = detail::RunSignature<F>;
  using Out = std::conditional_t<std::is_same_v<O, detail::Deduce>, typename Sig::Output, O>;
  return executor_->template register_simple<Raw, I, Out>(options, validate_, std::move(run));
}

}  // namespace durable_execution
