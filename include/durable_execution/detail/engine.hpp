#pragma once

// The untyped engine behind DurableExecutor and DurableExecutorClient (DESIGN.md, layer 2). It
// sees task ids, serialized strings and records only; the typed front (task.hpp) converts
// values. Not API: names in durable_execution::detail may change without notice.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "durable_execution/export.hpp"
#include "durable_execution/options.hpp"
#include "durable_execution/storage.hpp"
#include "durable_execution/task_context.hpp"
#include "durable_execution/task_execution.hpp"

namespace durable_execution {

/**
 * @brief What enqueues, child declarations and the client need to know of a registered task:
 * its id, kind and effective default options (SPEC.md §1.2).
 */
struct TaskDescriptor {
  std::string id{};
  bool is_sleeping_task = false;
  RetryOptions retry{};
  std::chrono::milliseconds sleep_before_run{0};
  std::chrono::milliseconds timeout{0};
  bool are_children_sequential = false;

  friend bool operator==(const TaskDescriptor&, const TaskDescriptor&) = default;
};

namespace detail {

/** @brief One child declared by a parent run. */
struct ChildSpec {
  std::string task_id{};
  /** Serialized input (for a sleeping child: its unique id, verbatim). */
  std::string input{};
  /** Per-child overrides laid over the child task's registered options. */
  EnqueueOptions options{};
};

/** @brief What a run returns: its serialized output and the children it declares. */
struct RunParentResult {
  std::string output{};
  std::vector<ChildSpec> children{};
};

/**
 * @brief A run function: serialized input in, result out. Exceptions follow SPEC.md §3.4
 * (DurableExecutionError passes through, other exceptions are retryable generic errors).
 */
using RunFunction = std::function<RunParentResult(TaskRunContext& ctx, const std::string& input)>;

/**
 * @brief A finalize function: receives the serialized `{"output": .., "children": [..]}` of its
 * parent and returns the parent's serialized output. Runs on an engine thread, with no timeout
 * and no retries; a throw makes the parent `finalize_failed`.
 */
using FinalizeFunction = std::function<std::string(const std::string& parent_result)>;

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
 * @note Thread safety: thread-safe.
 */
class DURABLE_EXECUTION_EXPORT Engine {
 public:
  enum class Mode { executor, client };

  /** @throws DurableExecutionError "Invalid options: ..." naming the bad field. */
  Engine(TaskExecutionsStorage& storage, const DurableExecutorOptions& options, Mode mode);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  Engine(Engine&&) = delete;
  Engine& operator=(Engine&&) = delete;
  ~Engine();

  [[nodiscard]] TaskDescriptor register_task(TaskDefinition definition);
  /** @brief Client mode: makes a task known without a run function. */
  void register_descriptor(const TaskDescriptor& descriptor);

  /** @brief Validates, checks limits and inserts; @return the new execution id. */
  [[nodiscard]] std::string enqueue(const TaskDescriptor& task, std::string input,
                                    const EnqueueOptions& options);
  /** @brief Throws not-found unless the task is known and the execution belongs to it. */
  void check_handle(const std::string& task_id, const std::string& execution_id);
  [[nodiscard]] TaskExecutionRecord get_execution(const std::string& task_id,
                                                  const std::string& execution_id);
  [[nodiscard]] TaskExecutionRecord wait_finished(const std::string& task_id,
                                                  const std::string& execution_id,
                                                  const WaitOptions& options);
  void cancel(const std::string& execution_id);
  /** @brief SPEC.md §3.7. `completed`: payload is the serialized output; `failed`: the message. */
  [[nodiscard]] TaskExecutionRecord wakeup_sleeping(const TaskDescriptor& task,
                                                    const std::string& unique_id,
                                                    TaskExecutionStatus status,
                                                    std::string payload);

  /** @brief The descriptor of a registered task. @throws DurableExecutionNotFoundError. */
  [[nodiscard]] TaskDescriptor find_descriptor(const std::string& task_id) const;

  /**
   * @brief Registers the three tasks of a polling task (SPEC.md §3.9): `<id>_inner_finalize`,
   * `<id>_inner` and `<id>`. @throws DurableExecutionError for max_attempts <= 0.
   */
  void register_polling_task(const std::string& id, const std::string& poll_task_id,
                             std::int32_t max_attempts,
                             std::function<std::chrono::milliseconds(std::int32_t)> sleep);

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

/**
 * @brief The finalize function of a sequential chain of `count` tasks: the last step's output,
 * or a non-retryable "Task at index n-1 failed: <message>".
 */
[[nodiscard]] DURABLE_EXECUTION_EXPORT FinalizeFunction sequential_finalize(std::size_t count);

/** @brief Validates task options; throws DurableExecutionError naming the field. */
DURABLE_EXECUTION_EXPORT void validate_task_options(const TaskOptions& options);

}  // namespace detail
}  // namespace durable_execution
