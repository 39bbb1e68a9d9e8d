// The executor on a ManualClock (DurableExecutorOptions::clock), as a user tests with it: what
// SPEC.md gives a time follows the clock — stored timestamps, sleeping tasks' expiry, polling
// sleeps, enqueue overrides, the client's stamps — and nothing due runs before the clock says so.

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using ExecutorClock = ExecutorTest;

/** fast_options() reading time from `clock`. */
DurableExecutorOptions on(const std::shared_ptr<ManualClock>& clock) {
  auto o = fast_options();
  o.clock = clock;
  return o;
}

TEST_P(ExecutorClock, StoredTimestampsAreTheClocksTime) {
  const Timestamp start{std::chrono::milliseconds{1'577'836'800'000}};  // 2020-01-01T00:00:00Z
  auto clock = std::make_shared<ManualClock>(start);
  DurableExecutor executor{storage(), on(clock)};
  auto t = executor.task({.id = "t", .timeout = 1s}, [](const int& x) { return x; });
  executor.start();
  auto e = executor.enqueue_task(t, 1).wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.created_at, start);
  EXPECT_EQ(e.started_at, start);
  EXPECT_EQ(e.finished_at, start);
}

TEST_P(ExecutorClock, ASleepingTaskTimesOutOnlyWhenTheClockPassesItsTimeout) {
  auto clock = std::make_shared<ManualClock>();
  DurableExecutor executor{storage(), on(clock)};
  auto webhook = executor.sleeping_task<std::string>({.id = "webhook", .timeout = 1h});
  executor.start();
  auto h = executor.enqueue_task(webhook, "order_1");
  std::this_thread::sleep_for(100ms);  // expiry passes run: the hour has not passed
  EXPECT_EQ(h.get_execution().status, TaskExecutionStatus::running);
  clock->advance(1h + 1ms);
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::timed_out);
  // Another one is still woken normally.
  auto other = executor.enqueue_task(webhook, "order_2");
  (void)executor.wakeup_sleeping_task_execution(webhook, "order_2", "paid");
  auto woken = other.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(woken.status, TaskExecutionStatus::completed);
  EXPECT_EQ(woken.output, "paid");
}

/** Executions of task `task_id` below `root` in storage (a breadth-first walk of children). */
int stored_descendants_of_task(TaskExecutionsStorage& storage, const std::string& root,
                               const std::string& task_id) {
  int found = 0;
  std::vector<std::string> level{root};
  while (!level.empty()) {
    std::vector<GetByParentExecutionIdRequest> reqs;
    for (const auto& id : level) reqs.push_back({id});
    std::vector<std::string> next;
    for (const auto& children : storage.get_many_by_parent_execution_id(reqs)) {
      for (const auto& c : children) {
        if (c.task_id == task_id) ++found;
        next.push_back(c.execution_id);
      }
    }
    level = std::move(next);
  }
  return found;
}

TEST_P(ExecutorClock, APollingTaskSleepsBetweenPollsOnTheClock) {
  auto clock = std::make_shared<ManualClock>();
  DurableExecutor executor{storage(), on(clock)};
  std::atomic<int> polls{0};
  auto poll = executor.task({.id = "poll", .timeout = 1s}, [&] {
    const int n = ++polls;
    return n >= 3 ? PollResult<int>{true, n} : PollResult<int>{};
  });
  auto wait_job = executor.polling_task("wait_job", poll, 5, 1h);
  executor.start();
  auto h = executor.enqueue_task(wait_job);
  for (int expected = 1; expected <= 3; ++expected) {
    // Each poll waits its hour, from when its attempt stored it (so the clock moves only after
    // that); none runs early.
    ASSERT_TRUE(wait_until([&] {
      return stored_descendants_of_task(storage(), h.execution_id(), "poll") == expected;
    })) << expected;
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(polls.load(), expected - 1);
    clock->advance(1h);
    ASSERT_TRUE(wait_until([&] { return polls.load() == expected; })) << expected;
  }
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_TRUE(e.output->is_success);
  EXPECT_EQ(e.output->output, 3);
}

TEST_P(ExecutorClock, AnEnqueueOverrideOfTheDelayFollowsTheClock) {
  auto clock = std::make_shared<ManualClock>();
  DurableExecutor executor{storage(), on(clock)};
  auto t = executor.task({.id = "t", .timeout = 1s}, [] { return 7; });
  executor.start();
  auto h = executor.enqueue_task(t, Empty{}, {.sleep_before_run = 24h});
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(h.get_execution().status, TaskExecutionStatus::ready);
  clock->advance(24h);
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(*e.started_at - e.created_at, 24h);
}

TEST_P(ExecutorClock, AClientStampsTheClocksTimeAndAnExecutorRunsItWhenDue) {
  const Timestamp start{std::chrono::milliseconds{1'700'000'000'000}};
  auto clock = std::make_shared<ManualClock>(start);
  DurableExecutor executor{storage(), on(clock)};
  auto t = executor.task({.id = "t", .timeout = 1s, .sleep_before_run = 1h},
                         [](const int& x) { return x * 2; });
  DurableExecutorClient client{storage(), {t.descriptor()}, {.clock = clock}};
  executor.start();
  auto h = client.enqueue_task(t, 21);
  EXPECT_EQ(h.get_execution().created_at, start);
  clock->advance(1h);
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, 42);
  EXPECT_EQ(e.started_at, start + 1h);
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorClock, ::testing::ValuesIn(all_storage_factories()),
                         factory_name);

}  // namespace
}  // namespace durable_execution::testing
