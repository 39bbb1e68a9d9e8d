// DurableExecutorClient offers the executor's typed calls (TaskSubmitter) with the same names
// and types: enqueue with and without input and with options, handles, cancel by id, and
// typed sleeping-task wake-ups and failures, on a client that runs nothing (issue 14, item 1).

#include <type_traits>

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using ExecutorClient = ExecutorTest;

// Both are one TaskSubmitter: the calls are the same by construction, not by convention.
static_assert(std::is_base_of_v<TaskSubmitter, DurableExecutor>);
static_assert(std::is_base_of_v<TaskSubmitter, DurableExecutorClient>);

TEST_P(ExecutorClient, EnqueuesWithAndWithoutInputAndWithOptions) {
  auto doubled = Task<int, int>::reference({.id = "double", .timeout = 1s});
  auto tick = Task<Empty, std::string>::reference({.id = "tick", .timeout = 1s});
  DurableExecutorClient client{storage(), {doubled.descriptor(), tick.descriptor()}};
  auto plain = client.enqueue_task(doubled, 21);
  auto with_options = client.enqueue_task(doubled, 4, {.timeout = 3s});
  auto no_input = client.enqueue_task(tick);
  auto no_input_with_options =
      client.enqueue_task(tick, {.retry = RetryOptions{.max_attempts = 2}, .timeout = 4s});
  // The client runs nothing: all four wait, with the overrides stored.
  EXPECT_EQ(plain.get_execution().status, TaskExecutionStatus::ready);
  EXPECT_EQ(plain.get_execution().timeout, 1s);
  EXPECT_EQ(with_options.get_execution().timeout, 3s);
  EXPECT_EQ(no_input.get_execution().input, "null");
  EXPECT_EQ(no_input_with_options.get_execution().timeout, 4s);
  EXPECT_EQ(no_input_with_options.get_execution().retry_options.max_attempts, 2);

  DurableExecutor executor{storage(), fast_options()};
  (void)executor.task({.id = "double", .timeout = 1s}, [](const int& x) { return 2 * x; });
  (void)executor.task({.id = "tick", .timeout = 1s}, [] { return "tock"; });
  executor.start();
  EXPECT_EQ(plain.wait_and_get_finished_execution(bounded_wait()).output, 42);
  EXPECT_EQ(with_options.wait_and_get_finished_execution(bounded_wait()).output, 8);
  EXPECT_EQ(no_input.wait_and_get_finished_execution(bounded_wait()).output, "tock");
  EXPECT_EQ(no_input_with_options.wait_and_get_finished_execution(bounded_wait()).output, "tock");
  // A handle rebuilt by the client reads the same typed view.
  auto again = client.get_task_execution_handle(doubled, plain.execution_id());
  EXPECT_EQ(again.get_execution().output, 42);
}

TEST_P(ExecutorClient, WakesAndFailsSleepingExecutionsTyped) {
  DurableExecutor executor{storage(), fast_options()};
  auto webhook = executor.sleeping_task<int>({.id = "webhook", .timeout = 1h});
  executor.start();
  // A client names the sleeping task with the same options the executor registered.
  auto ref = Task<std::string, int>::sleeping_reference({.id = "webhook", .timeout = 1h});
  EXPECT_EQ(ref.descriptor(), webhook.descriptor());
  DurableExecutorClient client{storage(), {ref.descriptor()}};

  auto paid = client.enqueue_task(ref, "order_1");
  auto declined = client.enqueue_task(ref, "order_2");
  auto from_executor = executor.enqueue_task(webhook, "order_3");
  EXPECT_EQ(paid.get_execution().status, TaskExecutionStatus::running);

  TaskExecution<int> woken = client.wakeup_sleeping_task_execution(ref, "order_1", 7);
  EXPECT_EQ(woken.status, TaskExecutionStatus::completed);
  EXPECT_EQ(woken.output, 7);
  EXPECT_EQ(woken.input_as<std::string>(), "order_1");
  TaskExecution<int> failed = client.fail_sleeping_task_execution(ref, "order_2", "declined");
  EXPECT_EQ(failed.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(failed.error.has_value());
  EXPECT_EQ(failed.error->message, "declined");
  EXPECT_FALSE(failed.error->is_retryable);
  // The client wakes what the executor enqueued, and the executor what the client enqueued.
  EXPECT_EQ(client.wakeup_sleeping_task_execution(ref, "order_3", 3).output, 3);
  auto by_client = client.enqueue_task(ref, "order_4");
  EXPECT_EQ(executor.wakeup_sleeping_task_execution(webhook, "order_4", 4).output, 4);

  EXPECT_EQ(paid.wait_and_get_finished_execution(bounded_wait()).output, 7);
  EXPECT_EQ(declined.wait_and_get_finished_execution(bounded_wait()).status,
            TaskExecutionStatus::failed);
  EXPECT_EQ(from_executor.wait_and_get_finished_execution(bounded_wait()).output, 3);
  EXPECT_EQ(by_client.wait_and_get_finished_execution(bounded_wait()).output, 4);
  // A finished execution is returned unchanged; an unknown unique id is not found.
  EXPECT_EQ(client.wakeup_sleeping_task_execution(ref, "order_1", 8).output, 7);
  EXPECT_EQ(client.fail_sleeping_task_execution(ref, "order_1", "late").status,
            TaskExecutionStatus::completed);
  EXPECT_THROW((void)client.wakeup_sleeping_task_execution(ref, "order_9", 9),
               DurableExecutionNotFoundError);
}

TEST_P(ExecutorClient, ClientAndExecutorCancelById) {
  DurableExecutor executor{storage(), fast_options()};
  Permits started;
  std::atomic<int> saw_cancel{0};
  auto blocking = executor.task({.id = "blocking", .timeout = 10s}, [&](TaskRunContext& ctx) {
    started.release(1);
    Gate never;
    (void)never.wait(ctx.stop_token(), 5s);
    if (ctx.stop_reason() == StopReason::cancelled) ++saw_cancel;
  });
  DurableExecutorClient client{storage(), {blocking.descriptor()}};
  // Cancelled while ready: it never runs.
  auto queued = client.enqueue_task(blocking);
  executor.cancel(queued.execution_id());
  EXPECT_EQ(queued.get_execution().status, TaskExecutionStatus::cancelled);
  executor.start();
  // Cancelled while running, once through each of the two.
  auto first = client.enqueue_task(blocking);
  ASSERT_TRUE(started.acquire());
  executor.cancel(first.execution_id());
  EXPECT_EQ(first.wait_and_get_finished_execution(bounded_wait()).status,
            TaskExecutionStatus::cancelled);
  auto second = executor.enqueue_task(blocking);
  ASSERT_TRUE(started.acquire());
  client.cancel(second.execution_id());
  EXPECT_EQ(second.wait_and_get_finished_execution(bounded_wait()).status,
            TaskExecutionStatus::cancelled);
  ASSERT_TRUE(wait_until([&] { return saw_cancel.load() == 2; }));
  // Finished or unknown: a no-op.
  EXPECT_NO_THROW(executor.cancel(first.execution_id()));
  EXPECT_NO_THROW(client.cancel("te_000000000000000000000000"));
  EXPECT_EQ(first.get_execution().status, TaskExecutionStatus::cancelled);
}

/** Code that only submits work takes a TaskSubmitter and is given an executor or a client. */
std::string submit_and_cancel(TaskSubmitter& submitter, const Task<int, int>& task) {
  auto handle = submitter.enqueue_task(task, 1, {.sleep_before_run = 1h});
  submitter.cancel(handle.execution_id());
  return handle.execution_id();
}

TEST_P(ExecutorClient, CodeTakingATaskSubmitterRunsOnEither) {
  DurableExecutor executor{storage(), fast_options()};
  auto doubled = executor.task({.id = "double", .timeout = 1s}, [](const int& x) { return 2 * x; });
  DurableExecutorClient client{storage(), {doubled.descriptor()}};
  for (TaskSubmitter* submitter :
       {static_cast<TaskSubmitter*>(&executor), static_cast<TaskSubmitter*>(&client)}) {
    const auto id = submit_and_cancel(*submitter, doubled);
    EXPECT_EQ(executor.get_task_execution_handle(doubled, id).get_execution().status,
              TaskExecutionStatus::cancelled);
  }
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorClient, ::testing::ValuesIn(all_storage_factories()),
                         factory_name);

}  // namespace
}  // namespace durable_execution::testing
