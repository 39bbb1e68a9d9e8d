#pragma once

// The untyped names of work (SPEC.md §1.2): a registered task's descriptor, which a
// DurableExecutorClient is given, and a child declared by a parent run.

#include <chrono>
#include <string>

#include "durable_execution/options.hpp"

namespace durable_execution {

/**
 * @brief What enqueues, child declarations and a client need to know of a registered task: its
 * id, kind and effective default options (SPEC.md §1.2).
 *
 * Every Task<I, O> carries one (Task::descriptor()); a DurableExecutorClient is built from the
 * descriptors of the tasks it may enqueue:
 * @code
 * auto add_one = de::Task<int, int>::reference({.id = "add_one", .timeout = 5s});
 * de::DurableExecutorClient client{storage, {add_one.descriptor()}};
 * @endcode
 *
 * @note Thread safety: a plain value; immutable once built.
 */
struct TaskDescriptor {
  /// The task id, unique per executor (TaskOptions::id).
  std::string id{};
  /** Sleeping tasks take a unique id string as input and have no retries or delay. */
  bool is_sleeping_task = false;
  /// The retry policy (TaskOptions::retry).
  RetryOptions retry{};
  /// The delay before the first run (TaskOptions::sleep_before_run).
  std::chrono::milliseconds sleep_before_run{0};
  /// The timeout of one run (TaskOptions::timeout).
  std::chrono::milliseconds timeout{0};
  /** Sequential chains (DurableExecutor::sequential_tasks) run their children one at a time. */
  bool are_children_sequential = false;

  /// Equal when every field is equal.
  friend bool operator==(const TaskDescriptor&, const TaskDescriptor&) = default;
};

/**
 * @brief One child declared by a parent run; build it with child() (parent_task.hpp), which
 * type-checks the input against the child task.
 *
 * @note Thread safety: a plain value.
 */
struct ChildTask {
  /// The child task's id.
  std::string task_id{};
  /** Serialized input (a sleeping child's unique id, verbatim). */
  std::string input{};
  /** Per-child overrides laid over the child task's registered options. */
  EnqueueOptions options{};
};

}  // namespace durable_execution
