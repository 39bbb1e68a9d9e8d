#pragma once

// The untyped engine behind DurableExecutor and DurableExecutorClient (DESIGN.md, layer 2). It
// sees task ids, serialized strings and records only; the typed front (task.hpp) converts
// values. Not API: names in durable_execution::detail may change without notice.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "durable_execution/export.hpp"
#include "durable_execution/options.hpp"
#include "durable_execution/storage.hpp"
#include "durable_execution/task_context.hpp"
#include "durable_execution/task_descriptor.hpp"
#include "durable_execution/task_execution.hpp"

namespace durable_execution::detail {

/**
 * @brief What a run returns: its serialized output and the children it declares. A typed parent's
 * ParentRunResult<O> becomes one in detail::to_run_result (parent_task.hpp).
 */
struct RunParentResult {
  std::string output{};
  std::vector<ChildTask> children{};
};

/**
 * @brief A run function: serialized input in, result out. Exceptions follow SPEC.md §3.4
 * (DurableExecutionError passes through, other exceptions are retryable generic errors).
 */
using RunFunction = std::function<RunParentResult(TaskRunContext& ctx, const std::string& input)>;

/**
 * @brief One child's result as a finalize function sees it. The views point into the engine's
 * records and stay valid for the duration of the call only.
 */
struct ChildResultView {
  std::string_view task_id{};
  std::string_view execution_id{};
  TaskExecutionStatus status = TaskExecutionStatus::completed;
  /** The serialized output (JSON text; "null" if none was stored); set when completed. */
  std::optional<std::string_view> output{};
  /**
   * Set when the child did not complete ("Unknown error" if none was stored). Its message is
   * what JSON carries: invalid UTF-8 replaced by U+FFFD, as in the stored text of the result.
   */
  std::optional<StoredError> error{};
};

/**
 * @brief A parent's result: its run's serialized output and its children's results, in
 * declaration order. Stored as JSON text only where it must be (a parent's output without
 * finalize, a finalize task's input); finalize functions get it as is.
 */
struct ParentResultView {
  /** The run's serialized output ("null" if none). */
  std::string_view output{"null"};
  std::vector<ChildResultView> children{};
};

/**
 * @brief A finalize function: receives its parent's result and returns the parent's serialized
 * output. Runs on an engine thread, with no timeout and no retries; a throw makes the parent
 * `finalize_failed`.
 */
using FinalizeFunction = std::function<std::string(const ParentResultView& parent_result)>;

/** @brief A task as the engine registers it. */
struct TaskDefinition {
  TaskOptions options{};
  bool is_sleeping_task = false;
  bool are_children_sequential = false;
  /** Parent tasks output `{output, children}` when they have no finalize; simple tasks their
   * run output itself. */
  bool is_parent = false;
  RunFunction run{};
  FinalizeFunction finalize_function{};
  /** Id of a registered finalize task (mutually exclusive with finalize_function). */
  std::optional<std::string> finalize_task_id{};
};

/**
 * @brief The untyped engine. In executor mode start() launches the dispatcher, the background
 * processes, the timer and the worker pool; in client mode nothing runs in the background.
 *
 * DurableExecutor and DurableExecutorClient own one each and never hand it out. Only the members
 * the header-only typed front calls (and the destructor, which its handles' shared_ptr needs) are
 * exported; the rest is reached from src/ and the engine's own tests (a static build).
 *
 * @note Thread safety: thread-safe.
 */
class Engine {
 public:
  enum class Mode { executor, client };

  /** @throws DurableExecutionError "Invalid options: ..." naming the bad field. */
  Engine(TaskExecutionsStorage& storage, const DurableExecutorOptions& options, Mode mode);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  Engine(Engine&&) = delete;
  Engine& operator=(Engine&&) = delete;
  DURABLE_EXECUTION_EXPORT ~Engine();

  [[nodiscard]] DURABLE_EXECUTION_EXPORT TaskDescriptor register_task(TaskDefinition definition);
  /** @brief Client mode: makes a task known without a run function. */
  void register_descriptor(const TaskDescriptor& descriptor);

  /** @brief Validates, checks limits and inserts; @return the new execution id. */
  [[nodiscard]] DURABLE_EXECUTION_EXPORT std::string enqueue(const TaskDescriptor& task,
                                                             std::string input,
                                                             const EnqueueOptions& options);
  /** @brief Throws not-found unless the task is known and the execution belongs to it. */
  DURABLE_EXECUTION_EXPORT void check_handle(const std::string& task_id,
                                             const std::string& execution_id);
  [[nodiscard]] DURABLE_EXECUTION_EXPORT TaskExecutionRecord
  get_execution(const std::string& task_id, const std::string& execution_id);
  [[nodiscard]] DURABLE_EXECUTION_EXPORT TaskExecutionRecord wait_finished(
      const std::string& task_id, const std::string& execution_id, const WaitOptions& options);
  DURABLE_EXECUTION_EXPORT void cancel(const std::string& execution_id);
  /** @brief SPEC.md §3.7. `completed`: payload is the serialized output; `failed`: the message. */
  [[nodiscard]] DURABLE_EXECUTION_EXPORT TaskExecutionRecord
  wakeup_sleeping(const TaskDescriptor& task, const std::string& unique_id,
                  TaskExecutionStatus status, std::string payload);

  /** @brief The descriptor of a registered task. @throws DurableExecutionNotFoundError. */
  [[nodiscard]] DURABLE_EXECUTION_EXPORT TaskDescriptor
  find_descriptor(const std::string& task_id) const;

  /**
   * @brief Registers the three tasks of a polling task (SPEC.md §3.9): `<id>_inner_finalize`,
   * `<id>_inner` and `<id>`. @throws DurableExecutionError for max_attempts <= 0.
   */
  DURABLE_EXECUTION_EXPORT void register_polling_task(
      const std::string& id, const std::string& poll_task_id, std::int32_t max_attempts,
      std::function<std::chrono::milliseconds(std::int32_t)> sleep);
  /**
   * @brief Registers a sequential chain (SPEC.md §3.8): a parent `<id>` whose children are the
   * tasks `step_ids`, run one at a time, each output being the next input. Its output is the last
   * step's; if step k fails it ends `finalize_failed` with "Task at index k failed: <message>".
   * @return its descriptor. @throws DurableExecutionError for a bad id or no steps.
   */
  [[nodiscard]] DURABLE_EXECUTION_EXPORT TaskDescriptor
  register_sequential_task(const std::string& id, const std::vector<std::string>& step_ids);

  void start();
  /** @throws DurableExecutionError when called from one of this engine's task functions. */
  void shutdown();
  /** @brief For destructors: shutdown(), or, on one of this engine's threads, a deferred one. */
  void shutdown_or_defer() noexcept;
  [[nodiscard]] bool is_shutdown() const noexcept;
  [[nodiscard]] ExecutorStats stats() const;
  [[nodiscard]] std::vector<std::string> running_execution_ids() const;
  [[nodiscard]] std::string executor_id() const;

 private:
  struct Impl;
  // Shared with the engine's threads: one that a bounded shutdown left behind (a task function
  // that ignores its stop token) keeps the engine alive until it returns.
  std::shared_ptr<Impl> impl_{};
};

/** @brief Validates task options; throws DurableExecutionError naming the field. */
DURABLE_EXECUTION_EXPORT void validate_task_options(const TaskOptions& options);

}  // namespace durable_execution::detail
