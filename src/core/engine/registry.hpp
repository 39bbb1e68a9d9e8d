#pragma once

// The task registry: the definitions this engine knows, by task id. Entered by the application's
// threads (register, enqueue, handles) and by every engine thread (lookups); a shared mutex makes
// lookups cheap. Definitions are immutable once registered and shared by pointer.

#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "durable_execution/detail/engine.hpp"

namespace durable_execution::detail {

/** @brief The descriptor of a definition: the one place where it is built. */
[[nodiscard]] TaskDescriptor describe(const TaskDefinition& definition);

class TaskRegistry {
 public:
  /**
   * @brief Validates and adds a definition (a sleeping task's retry and delay are cleared).
   * @throws DurableExecutionError for bad options, a duplicate id, both finalize kinds, or an
   * unknown finalize task.
   */
  TaskDescriptor add(TaskDefinition definition);
  /** @brief The definition of `id`, or null. */
  [[nodiscard]] std::shared_ptr<const TaskDefinition> find(const std::string& id) const;
  [[nodiscard]] std::size_t size() const;

 private:
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const TaskDefinition>> tasks_;
};

}  // namespace durable_execution::detail
