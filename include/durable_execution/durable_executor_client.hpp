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
#include "durable_execution/task_submitter.hpp"

namespace durable_execution {

/**
 * @brief Submits work without running any: the executor's typed calls (TaskSubmitter:
 * enqueue_task, get_task_execution_handle, cancel, wakeup_sleeping_task_execution,
 * fail_sleeping_task_execution), with the same names and types, over the same storage as the
 * executors, with no worker threads and no background processes (for API servers that only
 * submit work).
 *
 * The client knows the tasks it is given (typically `Task<I, O>::reference(options)`,
 * `Task<std::string, O>::sleeping_reference(options)` for sleeping tasks, or the
 * descriptors of an executor's tasks); enqueues and handles of any other task throw not-found.
 * Unlike the reference engine's client, handles are looked up in this task list, so
 * get_task_execution_handle works.
 *
 * @code
 * auto add_one = de::Task<int, int>::reference({.id = "add_one", .timeout = 5s});
 * auto webhook = de::Task<std::string, int>::sleeping_reference({.id = "webhook", .timeout = 1h});
 * de::DurableExecutorClient client{storage, {add_one.descriptor(), webhook.descriptor()}};
 * auto handle = client.enqueue_task(add_one, 41);   // an executor elsewhere runs it
 * (void)client.enqueue_task(webhook, "order_42");
 * // A TaskExecution<int>; an output of another type does not compile.
 * auto woken = client.wakeup_sleeping_task_execution(webhook, "order_42", 7);
 * @endcode
 *
 * @note Thread safety: thread-safe. The storage must outlive the client and its handles.
 */
class DURABLE_EXECUTION_EXPORT DurableExecutorClient final : public TaskSubmitter {
 public:
  /** @throws DurableExecutionError for invalid options or task descriptors. */
  DurableExecutorClient(TaskExecutionsStorage& storage, const std::vector<TaskDescriptor>& tasks,
                        const DurableExecutorClientOptions& options = {});
  DurableExecutorClient(const DurableExecutorClient&) = delete;
  DurableExecutorClient& operator=(const DurableExecutorClient&) = delete;
  DurableExecutorClient(DurableExecutorClient&&) = delete;
  DurableExecutorClient& operator=(DurableExecutorClient&&) = delete;
  ~DurableExecutorClient();

  /** @brief Stops accepting calls. Idempotent; the destructor calls it. */
  void shutdown() noexcept;
};

}  // namespace durable_execution
