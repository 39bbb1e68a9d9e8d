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
#include "durable_execution/parent_task.hpp"
#include "durable_execution/storage.hpp"
#include "durable_execution/task.hpp"
#include "durable_execution/task_submitter.hpp"

namespace durable_execution {

class DurableExecutor;

namespace detail {

template <class R>
struct ParentRunOutputOf;
template <class O>
struct ParentRunOutputOf<ParentRunResult<O>> {
  using type = O;
};

/** @brief Input (deduced unless given) and output O of a run_parent returning ParentRunResult<O>.
 */
template <class I, class F>
struct ParentSignature {
  using Sig = RunSignature<F>;
  using Input = std::conditional_t<std::is_same_v<I, Deduce>, typename Sig::Input, I>;
  using Output =
      typename ParentRunOutputOf<std::remove_cvref_t<typename Sig::Traits::Result>>::type;
};

template <class T>
struct IsTask : std::false_type {};
template <class I, class O>
struct IsTask<Task<I, O>> : std::true_type {};

/** @brief True when each task's output type is the next one's input type. */
template <class... Ts>
struct ChainsTypes : std::true_type {};
template <class I1, class O1, class I2, class O2, class... Rest>
struct ChainsTypes<Task<I1, O1>, Task<I2, O2>, Rest...>
    : std::bool_constant<std::is_same_v<O1, I2> && ChainsTypes<Task<I2, O2>, Rest...>::value> {};

template <class... Ts>
struct LastOf;
template <class T>
struct LastOf<T> {
  using type = T;
};
template <class T, class... Ts>
struct LastOf<T, Ts...> : LastOf<Ts...> {};

}  // namespace detail

/**
 * @brief The result of DurableExecutor::validate_input(fn): defines tasks whose input is first
 * turned from `Raw` into the run input `I` by `fn` (which throws to reject it).
 *
 * The validation runs when the execution runs, not at enqueue (SPEC.md §1.2): a rejected input
 * makes the execution `failed` with a non-retryable "Invalid input to task <id>: <message>", and
 * the run function never runs.
 *
 * @note Thread safety: as DurableExecutor's task definitions: use it where you define tasks,
 *   before start(); the validator itself runs on worker threads, concurrently.
 */
template <class Raw, class I>
class InputValidatedTaskBuilder {
 public:
  /// @brief Made by DurableExecutor::validate_input(); defines tasks on `executor`, which must
  /// outlive the builder.
  InputValidatedTaskBuilder(DurableExecutor& executor, std::function<I(const Raw&)> validate)
      : executor_(&executor), validate_(std::move(validate)) {}

  /** @brief Like DurableExecutor::task; the task's input type is `Raw`. */
  template <class O = detail::Deduce, class F>
  [[nodiscard]] auto task(const TaskOptions& options, F run);

  /** @brief Like DurableExecutor::parent_task (with an optional finalize); input type `Raw`. */
  template <class F, class... Fin>
  [[nodiscard]] auto parent_task(const TaskOptions& options, F run_parent, Fin... finalize);

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
 * Enqueueing, handles, cancel(execution_id) and sleeping-task wake-ups are TaskSubmitter's calls,
 * the same as a DurableExecutorClient's.
 *
 * Every executor sharing a storage must register the same tasks. Work created by this executor
 * wakes its loops at once; work created by other processes is found by polling every
 * `background_process_intra_batch_sleep` (with back-off while idle).
 *
 * @note Thread safety: thread-safe. Task functions run on the executor's worker threads; finalize
 *   functions on its background thread. The storage must outlive the executor and every handle.
 *   The destructor calls shutdown(): it stops the loops, then waits for running tasks.
 */
class DURABLE_EXECUTION_EXPORT DurableExecutor final : public TaskSubmitter {
 public:
  /** @throws DurableExecutionError "Invalid options: <field> ..." for a bad option. */
  explicit DurableExecutor(TaskExecutionsStorage& storage,
                           const DurableExecutorOptions& options = {});
  DurableExecutor(const DurableExecutor&) = delete;
  DurableExecutor& operator=(const DurableExecutor&) = delete;
  DurableExecutor(DurableExecutor&&) = delete;
  DurableExecutor& operator=(DurableExecutor&&) = delete;
  /**
   * @brief Calls shutdown(). Called from one of this executor's own task or finalize functions
   * (where shutdown() throws), it logs an error and lets the shutdown finish on a thread of its
   * own instead.
   */
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
   * @brief Registers a parent task: `run_parent(ctx, input)` returns a ParentRunResult<O> — its
   * output and the children (built with child()) that run in parallel. The parent completes once
   * every child finished, with output ParentTaskOutput<O> (the run's output and each child's
   * result, in declaration order; failed children do not fail it).
   */
  template <class I = detail::Deduce, class F>
  [[nodiscard]] auto parent_task(const TaskOptions& options, F run_parent) {
    using In = typename detail::ParentSignature<I, F>::Input;
    return register_parent<In, In>(options, {}, std::move(run_parent));
  }

  /**
   * @brief A parent task with a finalize step, which sees ParentTaskOutput<O> and decides the
   * parent's outcome. `finalize` is either a function `(const ParentTaskOutput<O>&) -> R`, run on
   * the engine's background thread with no timeout and no retries (a throw makes the parent
   * `finalize_failed`), or a registered Task<ParentTaskOutput<O>, R> that runs as a child (its
   * failure makes the parent `finalize_failed`). The parent's output type is R.
   */
  template <class I = detail::Deduce, class F, class Fin>
  [[nodiscard]] auto parent_task(const TaskOptions& options, F run_parent, Fin finalize) {
    using In = typename detail::ParentSignature<I, F>::Input;
    return register_parent<In, In>(options, {}, std::move(run_parent), std::move(finalize));
  }

  /**
   * @brief A chain t1 → t2 → ... → tn run one at a time, each output being the next input
   * (checked at compile time). Its output is tn's; if step k fails the chain ends
   * `finalize_failed` with "Task at index k failed: <message>" and later steps never run.
   */
  template <class I1, class O1, class... Rest>
  [[nodiscard]] auto sequential_tasks(const std::string& id, const Task<I1, O1>& first,
                                      const Rest&... rest) {
    static_assert((detail::IsTask<Rest>::value && ...), "sequential_tasks takes tasks");
    static_assert(detail::ChainsTypes<Task<I1, O1>, Rest...>::value,
                  "each task's output type must be the next task's input type");
    using Last = typename detail::LastOf<Task<I1, O1>, Rest...>::type;
    return Task<I1, typename Last::OutputType>{
        engine_->register_sequential_task(id, {first.id(), rest.id()...})};
  }

  /**
   * @brief Polls `poll` until it reports done, at most `max_attempts` times, sleeping
   * `sleep(attempt)` before each poll (unset: the poll task's own sleep_before_run). Output:
   * PollingResult<O>, `{is_success = false}` when no poll succeeded; a poll error makes it
   * `finalize_failed` with "Poll task <id> failed: <message>". Registers `<id>`, `<id>_inner`
   * and `<id>_inner_finalize`.
   */
  template <class I, class O>
  [[nodiscard]] Task<I, PollingResult<O>> polling_task(
      const std::string& id, const Task<I, PollResult<O>>& poll, std::int32_t max_attempts,
      std::function<std::chrono::milliseconds(std::int32_t attempt)> sleep = {}) {
    engine_->register_polling_task(id, poll.id(), max_attempts, std::move(sleep));
    return Task<I, PollingResult<O>>{engine_->find_descriptor(id)};
  }

  /** @brief As above, with the same sleep before every poll. */
  template <class I, class O>
  [[nodiscard]] Task<I, PollingResult<O>> polling_task(const std::string& id,
                                                       const Task<I, PollResult<O>>& poll,
                                                       std::int32_t max_attempts,
                                                       std::chrono::milliseconds sleep) {
    return polling_task(id, poll, max_attempts,
                        [sleep](std::int32_t /*attempt*/) { return sleep; });
  }

  /**
   * @brief A sleeping task: no function; its input is a unique id string. An execution stays
   * `running` until woken by that id (wakeup_sleeping_task_execution or
   * fail_sleeping_task_execution, here or on a client) or until its timeout,
   * when it becomes `timed_out`. Its output type is O.
   */
  template <class O>
  [[nodiscard]] Task<std::string, O> sleeping_task(const SleepingTaskOptions& options) {
    detail::TaskDefinition def;
    def.options = TaskOptions{.id = options.id, .timeout = options.timeout};
    def.is_sleeping_task = true;
    return Task<std::string, O>{engine_->register_task(std::move(def))};
  }

  /** @brief Starts the worker pool, the timer and the background processes. Idempotent.
   * @throws DurableExecutionError after shutdown. */
  void start();

  /**
   * @brief Stops enqueuing, stops the background processes, then waits for running tasks (their
   * stop token fires with StopReason::shutdown; their results are recorded). Idempotent.
   *
   * Bounded: after `shutdown_timeout` it stops waiting for task functions that ignore their
   * stop token, logs them and returns; their results are dropped (their leases expire and
   * another executor runs them again). Nothing of this executor touches the storage after it
   * returns (storage calls already in progress are waited for).
   *
   * @throws DurableExecutionError when called from a task function or finalize function of this
   *   executor (it would wait for its own thread).
   */
  void shutdown();

  /// @brief Whether shutdown() has been called.
  [[nodiscard]] bool is_shutdown() const noexcept;
  /// @brief A snapshot of the executor's settings and counters (ExecutorStats).
  [[nodiscard]] ExecutorStats stats() const;
  /** @brief Ids of the executions running in this executor now. */
  [[nodiscard]] std::vector<std::string> running_execution_ids() const;
  /** @brief "de_" + 8 random characters; recorded on the executions this executor claims. */
  [[nodiscard]] std::string executor_id() const;

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

  template <class Raw, class In, class F, class... Fin>
  auto register_parent(const TaskOptions& options, std::function<In(const Raw&)> validate,
                       F run_parent, Fin... finalize) {
    static_assert(sizeof...(Fin) <= 1);
    using O = typename detail::ParentSignature<In, F>::Output;
    detail::TaskDefinition def;
    def.options = options;
    def.is_parent = true;
    def.run = [task_id = options.id, validate = std::move(validate), run = std::move(run_parent)](
                  TaskRunContext& ctx, const std::string& text) mutable {
      auto input = detail::read_input<Raw, In>(task_id, validate, text);
      return detail::to_run_result(detail::invoke_run<In>(run, ctx, input));
    };
    if constexpr (sizeof...(Fin) == 0) {
      return Task<Raw, ParentTaskOutput<O>>{engine_->register_task(std::move(def))};
    } else {
      return with_finalize<Raw, O>(std::move(def), std::move(finalize)...);
    }
  }

  template <class Raw, class O, class Fin>
  auto with_finalize(detail::TaskDefinition def, Fin finalize) {
    if constexpr (detail::IsTask<Fin>::value) {
      static_assert(std::is_same_v<typename Fin::InputType, ParentTaskOutput<O>>,
                    "a finalize task must take the parent's ParentTaskOutput<O>");
      def.finalize_task_id = finalize.id();
      return Task<Raw, typename Fin::OutputType>{engine_->register_task(std::move(def))};
    } else {
      using Result = std::invoke_result_t<Fin&, const ParentTaskOutput<O>&>;
      using R = detail::OutputOfResult<Result>;
      def.finalize_function =
          [fin = std::move(finalize)](const detail::ParentResultView& result) mutable {
            auto parent_output = detail::to_parent_task_output<O>(result);
            if constexpr (std::is_void_v<Result>) {
              fin(parent_output);
              return detail::serialize_value(Empty{});
            } else {
              return detail::serialize_value(R(fin(parent_output)));
            }
          };
      return Task<Raw, R>{engine_->register_task(std::move(def))};
    }
  }
};

template <class Raw, class I>
template <class O, class F>
auto InputValidatedTaskBuilder<Raw, I>::task(const TaskOptions& options, F run) {
  using Sig = detail::RunSignature<F>;
  using Out = std::conditional_t<std::is_same_v<O, detail::Deduce>, typename Sig::Output, O>;
  return executor_->template register_simple<Raw, I, Out>(options, validate_, std::move(run));
}

template <class Raw, class I>
template <class F, class... Fin>
auto InputValidatedTaskBuilder<Raw, I>::parent_task(const TaskOptions& options, F run_parent,
                                                    Fin... finalize) {
  return executor_->template register_parent<Raw, I>(options, validate_, std::move(run_parent),
                                                     std::move(finalize)...);
}

}  // namespace durable_execution
