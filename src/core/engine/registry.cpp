#include "registry.hpp"

#include <fmt/format.h>

#include <mutex>

#include "../executor_validation.hpp"

namespace durable_execution::detail {

TaskDescriptor describe(const TaskDefinition& d) {
  return TaskDescriptor{d.options.id,      d.is_sleeping_task,
                        d.options.retry,   d.options.sleep_before_run,
                        d.options.timeout, d.are_children_sequential};
}

TaskDescriptor TaskRegistry::add(TaskDefinition def) {
  if (def.is_sleeping_task) {
    validate_task_id(def.options.id);
    validate_timeout(def.options.id, def.options.timeout);
    def.options.retry = RetryOptions{};
    def.options.sleep_before_run = std::chrono::milliseconds{0};
  } else {
    validate_task_options(def.options);
  }
  if (def.finalize_function && def.finalize_task_id) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Task {} has both a finalize function and a finalize task", def.options.id));
  }
  auto descriptor = describe(def);
  std::unique_lock lock(mutex_);
  if (def.finalize_task_id && !tasks_.contains(*def.finalize_task_id)) {
    throw DurableExecutionNotFoundError(
        fmt::format("Finalize task {} not found", *def.finalize_task_id));
  }
  if (tasks_.contains(def.options.id)) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Task {} already exists. Use unique ids for tasks", def.options.id));
  }
  auto id = def.options.id;
  tasks_.emplace(std::move(id), std::make_shared<const TaskDefinition>(std::move(def)));
  return descriptor;
}

std::shared_ptr<const TaskDefinition> TaskRegistry::find(const std::string& id) const {
  std::shared_lock lock(mutex_);
  auto it = tasks_.find(id);
  return it == tasks_.end() ? nullptr : it->second;
}

std::size_t TaskRegistry::size() const {
  std::shared_lock lock(mutex_);
  return tasks_.size();
}

}  // namespace durable_execution::detail
