// SPEC.md §10 "Back-pressure", "Concurrency", "Crash recovery", and store faults.

#include <set>

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using ExecutorConcurrency = ExecutorTest;

/** Tracks how many runs are inside a section at once. */
struct ConcurrencyMeter {
  std::atomic<int> current{0};
  std::atomic<int> max_seen{0};
  void enter() {
    const int now = ++current;
    int prev = max_seen.load();
    while (prev < now && !max_seen.compare_exchange_weak(prev, now)) {
    }
  }
  void leave() { --current; }
};

TEST_P(ExecutorConcurrency, LimitThreeBatchTwoFiveBlockingTasks) {
  auto o = fast_options();
  o.max_concurrent_task_executions = 3;
  o.max_task_executions_per_batch = 2;
  DurableExecutor executor{storage(), o};
  ConcurrencyMeter meter;
  Permits permits;
  std::atomic<int> started{0};
  auto t = executor.task({.id = "t", .timeout = 20s}, [&] {
    meter.enter();
    ++started;
    const bool ok = permits.acquire();
    meter.leave();
    return ok;
  });
  executor.start();
  std::vector<TaskExecutionHandle<bool>> handles;
  for (int i = 0; i < 5; ++i) handles.push_back(executor.enqueue_task(t));
  ASSERT_TRUE(wait_until([&] { return started.load() == 3; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(started.load(), 3);
  EXPECT_EQ(executor.stats().curr_concurrent_task_executions, 3);
  permits.release(2);
  ASSERT_TRUE(wait_until([&] { return started.load() == 5; }));
  permits.release(3);
  for (auto& h : handles) {
    EXPECT_EQ(h.wait_and_get_finished_execution(bounded_wait()).output, true);
  }
  EXPECT_EQ(meter.max_seen.load(), 3);
  ASSERT_TRUE(wait_until([&] { return executor.running_execution_ids().empty(); }));
}

TEST_P(ExecutorConcurrency, TenQuickTasksNeverExceedTheLimit) {
  auto o = fast_options();
  o.max_concurrent_task_executions = 3;
  DurableExecutor executor{storage(), o};
  ConcurrencyMeter meter;
  auto t = executor.task({.id = "t", .timeout = 5s}, [&](const int& i) {
    meter.enter();
    // Stays until a second task is in (or 1 s): overlap is shown even on a loaded machine.
    const auto until = std::chrono::steady_clock::now() + 1s;
    while (meter.max_seen.load() < 2 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(1ms);
    }
    std::this_thread::sleep_for(5ms);
    meter.leave();
    return i;
  });
  executor.start();
  std::vector<TaskExecutionHandle<int>> handles;
  for (int i = 0; i < 10; ++i) handles.push_back(executor.enqueue_task(t, i));
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(
        handles[static_cast<std::size_t>(i)].wait_and_get_finished_execution(bounded_wait()).output,
        i);
  }
  EXPECT_LE(meter.max_seen.load(), 3);
  EXPECT_GE(meter.max_seen.load(), 2);
}

TEST_P(ExecutorConcurrency, FreedSlotStartsTheNextTaskPromptly) {
  auto o = fast_options();
  o.max_concurrent_task_executions = 2;
  o.background_process_intra_batch_sleep = 200ms;  // prove the wake-up is not a poll
  DurableExecutor executor{storage(), o};
  Permits permits;
  std::atomic<int> started{0};
  auto t = executor.task({.id = "t", .timeout = 20s}, [&] {
    ++started;
    return permits.acquire();
  });
  executor.start();
  std::vector<TaskExecutionHandle<bool>> handles;
  for (int i = 0; i < 3; ++i) handles.push_back(executor.enqueue_task(t));
  ASSERT_TRUE(wait_until([&] { return started.load() == 2; }));
  const auto released = std::chrono::steady_clock::now();
  permits.release(1);
  ASSERT_TRUE(wait_until([&] { return started.load() == 3; }, 500ms));
  EXPECT_LT(std::chrono::steady_clock::now() - released, 100ms);
  permits.release(2);
  for (auto& h : handles) (void)h.wait_and_get_finished_execution(bounded_wait());
}

TEST_P(ExecutorConcurrency, LimitFiveBatchThreeGrowsWithMoreEnqueues) {
  auto o = fast_options();
  o.max_concurrent_task_executions = 5;
  o.max_task_executions_per_batch = 3;
  DurableExecutor executor{storage(), o};
  Permits permits;
  std::atomic<int> started{0};
  auto t = executor.task({.id = "t", .timeout = 20s}, [&] {
    ++started;
    return permits.acquire();
  });
  executor.start();
  std::vector<TaskExecutionHandle<bool>> handles;
  for (int i = 0; i < 3; ++i) handles.push_back(executor.enqueue_task(t));
  ASSERT_TRUE(wait_until([&] { return started.load() == 3; }));
  for (int i = 0; i < 4; ++i) handles.push_back(executor.enqueue_task(t));
  ASSERT_TRUE(wait_until([&] { return started.load() == 5; }));
  std::this_thread::sleep_for(80ms);
  EXPECT_EQ(started.load(), 5);
  EXPECT_EQ(executor.stats().curr_concurrent_task_executions, 5);
  permits.release(7);
  for (auto& h : handles) (void)h.wait_and_get_finished_execution(bounded_wait());
  ASSERT_TRUE(wait_until([&] { return executor.stats().curr_concurrent_task_executions == 0; }));
}

TEST_P(ExecutorConcurrency, WorkerThreadsAreReused) {
  auto o = fast_options();
  o.max_concurrent_task_executions = 4;
  DurableExecutor executor{storage(), o};
  auto t = executor.task({.id = "t", .timeout = 5s}, [](const int& i) { return i; });
  executor.start();
  for (int round = 0; round < 5; ++round) {
    std::vector<TaskExecutionHandle<int>> handles;
    for (int i = 0; i < 20; ++i) handles.push_back(executor.enqueue_task(t, i));
    for (auto& h : handles) (void)h.wait_and_get_finished_execution(bounded_wait());
  }
  EXPECT_LE(executor.stats().worker_threads, 4);
}

// Long computations keep every core busy; runs queued behind them still get workers of their own
// (the pool's CPU brake is for runs that wait, not for tasks that compute).
TEST_P(ExecutorConcurrency, LongComputationsDoNotHoldBackQueuedRuns) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<bool> release{false};
  std::atomic<int> spinning{0};
  const auto cores = std::max(2U, std::thread::hardware_concurrency());
  auto spin = executor.task({.id = "spin", .timeout = 30s}, [&] {
    ++spinning;
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (!release.load() && std::chrono::steady_clock::now() < give_up) {
    }
    return release.load();
  });
  auto quick = executor.task({.id = "quick", .timeout = 30s}, [](const int& i) { return i; });
  executor.start();
  // More computations than cores, so that the pool checks run (and measure a busy CPU) while
  // some of them still queue.
  const auto n_spinners = static_cast<int>(4 * cores);
  std::vector<TaskExecutionHandle<bool>> spinners;
  for (int i = 0; i < n_spinners; ++i) spinners.push_back(executor.enqueue_task(spin));
  ASSERT_TRUE(wait_until([&] { return spinning.load() >= static_cast<int>(cores); }));
  std::this_thread::sleep_for(20ms);
  std::vector<TaskExecutionHandle<int>> quick_ones;
  for (int i = 0; i < 5; ++i) quick_ones.push_back(executor.enqueue_task(quick, i));
  for (int i = 0; i < 5; ++i) {
    auto e =
        quick_ones[static_cast<std::size_t>(i)].wait_and_get_finished_execution(bounded_wait(8s));
    EXPECT_EQ(e.status, TaskExecutionStatus::completed);
    EXPECT_EQ(e.output, i);
  }
  EXPECT_FALSE(release.load());  // the quick runs finished while every core was computing
  release = true;
  for (auto& h : spinners) {
    EXPECT_EQ(h.wait_and_get_finished_execution(bounded_wait()).output, true);
  }
}

/** Runs `n_executors` executors on one store; every task must run exactly once. */
void run_many_executors(TaskExecutionsStorage& storage, int n_executors, int n_tasks) {
  std::mutex m;
  std::map<int, int> runs;
  std::atomic<int> concurrent_same{0};
  std::set<int> running;
  auto body = [&](const int& i) {
    {
      std::lock_guard lock(m);
      if (!running.insert(i).second) ++concurrent_same;
      ++runs[i];
    }
    std::this_thread::sleep_for(std::chrono::microseconds{200});
    {
      std::lock_guard lock(m);
      running.erase(i);
    }
    return i * 10;
  };
  std::vector<std::unique_ptr<DurableExecutor>> executors;
  std::vector<Task<int, int>> tasks;
  for (int e = 0; e < n_executors; ++e) {
    auto o = fast_options();
    o.max_concurrent_task_executions = 8;
    o.max_task_executions_per_batch = 5;
    executors.push_back(std::make_unique<DurableExecutor>(storage, o));
    tasks.push_back(executors.back()->task({.id = "work", .timeout = 5s}, body));
  }
  for (auto& e : executors) e->start();
  std::vector<TaskExecutionHandle<int>> handles;
  for (int i = 0; i < n_tasks; ++i) {
    auto idx = static_cast<std::size_t>(i % n_executors);
    handles.push_back(executors[idx]->enqueue_task(tasks[idx], i));
  }
  for (int i = 0; i < n_tasks; ++i) {
    auto e =
        handles[static_cast<std::size_t>(i)].wait_and_get_finished_execution(bounded_wait(20s));
    EXPECT_EQ(e.status, TaskExecutionStatus::completed);
    EXPECT_EQ(e.output, i * 10);
  }
  for (auto& e : executors) e->shutdown();
  std::lock_guard lock(m);
  EXPECT_EQ(runs.size(), static_cast<std::size_t>(n_tasks));
  for (const auto& [i, count] : runs) EXPECT_EQ(count, 1) << "task " << i;
  EXPECT_EQ(concurrent_same.load(), 0);
}

TEST_P(ExecutorConcurrency, TwoExecutorsRunEachTaskExactlyOnce) {
  run_many_executors(storage(), 2, 200);
}

TEST_P(ExecutorConcurrency, ThreeExecutorsRunEachTaskExactlyOnce) {
  run_many_executors(storage(), 3, 300);
}

TEST_P(ExecutorConcurrency, TwoExecutorsMixedEnqueues) {
  auto o = fast_options();
  DurableExecutor e1{storage(), o};
  DurableExecutor e2{storage(), o};
  auto t1a = e1.task({.id = "t1", .timeout = 1s}, [] { return std::string{"result1"}; });
  auto t2a = e1.task({.id = "t2", .timeout = 1s}, [] { return std::string{"result2"}; });
  (void)e2.task({.id = "t1", .timeout = 1s}, [] { return std::string{"result1"}; });
  (void)e2.task({.id = "t2", .timeout = 1s}, [] { return std::string{"result2"}; });
  e1.start();
  e2.start();
  std::vector<TaskExecutionHandle<std::string>> hs{e1.enqueue_task(t1a), e1.enqueue_task(t2a),
                                                   e1.enqueue_task(t1a), e1.enqueue_task(t2a),
                                                   e1.enqueue_task(t1a)};
  int r1 = 0;
  int r2 = 0;
  for (auto& h : hs) {
    auto out = h.wait_and_get_finished_execution(bounded_wait()).output;
    r1 += out == "result1" ? 1 : 0;
    r2 += out == "result2" ? 1 : 0;
  }
  EXPECT_EQ(r1, 3);
  EXPECT_EQ(r2, 2);
}

TEST_P(ExecutorConcurrency, ExecutorWithoutTheTaskFailsTheExecution) {
  DurableExecutor other{storage(), fast_options()};
  auto t = other.task({.id = "only_elsewhere", .timeout = 1s}, [] { return 1; });
  auto h = other.enqueue_task(t);  // `other` never starts
  DurableExecutor executor{storage(), fast_options()};
  executor.start();
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(e.error);
  EXPECT_EQ(e.error->error_type, ErrorType::not_found);
  EXPECT_NE(e.error->message.find("Task only_elsewhere not found"), std::string::npos);
}

TEST_P(ExecutorConcurrency, CancellationReachesTheExecutorRunningTheTask) {
  DurableExecutor runner{storage(), fast_options()};
  Gate started;
  std::atomic<bool> saw_cancel{false};
  auto body = [&](TaskRunContext& ctx) {
    started.open();
    Gate never;
    (void)never.wait(ctx.stop_token(), 5s);
    saw_cancel = ctx.stop_reason() == StopReason::cancelled;
    return 1;
  };
  auto t = runner.task({.id = "t", .timeout = 10s}, body);
  runner.start();
  // A client that runs nothing submits and cancels.
  DurableExecutorClient client{storage(), {t.descriptor()}};
  auto h = client.enqueue_task(t, Empty{});
  ASSERT_TRUE(started.wait());
  client.cancel(h.execution_id());
  EXPECT_EQ(h.wait_and_get_finished_execution(bounded_wait()).status,
            TaskExecutionStatus::cancelled);
  ASSERT_TRUE(wait_until([&] { return saw_cancel.load(); }, 2500ms));
  ASSERT_TRUE(wait_until([&] { return runner.running_execution_ids().empty(); }, 2500ms));
}

TEST_P(ExecutorConcurrency, ClientSubmitsAndFindsHandlesThroughItsTaskList) {
  auto ref = Task<int, int>::reference({.id = "double", .timeout = 1s});
  DurableExecutorClient client{storage(), {ref.descriptor()}};
  auto h = client.enqueue_task(ref, 21);
  EXPECT_NO_THROW((void)client.get_task_execution_handle(ref, h.execution_id()));
  auto unknown = Task<int, int>::reference({.id = "unknown", .timeout = 1s});
  EXPECT_THROW((void)client.enqueue_task(unknown, 1), DurableExecutionNotFoundError);
  EXPECT_THROW((void)client.get_task_execution_handle(unknown, h.execution_id()),
               DurableExecutionNotFoundError);
  EXPECT_EQ(h.get_execution().status, TaskExecutionStatus::ready);  // the client runs nothing
  DurableExecutor executor{storage(), fast_options()};
  (void)executor.task({.id = "double", .timeout = 1s}, [](const int& x) { return 2 * x; });
  executor.start();
  EXPECT_EQ(h.wait_and_get_finished_execution(bounded_wait()).output, 42);
  client.shutdown();
  EXPECT_THROW((void)client.enqueue_task(ref, 1), DurableExecutionError);
}

// SPEC.md §10 "Crash recovery" (port, deterministic): an executor claims an execution and dies
// before recording anything (here: the claim is made directly on the store, as the dead
// executor's last act). Once its lease lapses, another executor runs it exactly once.
TEST_P(ExecutorConcurrency, ExpiredLeaseReturnsTheExecutionToReadyAndItRunsOnceMore) {
  std::atomic<int> runs{0};
  std::mutex m;
  std::optional<StoredError> prev;
  auto body = [&](TaskRunContext& ctx, const int& x) {
    ++runs;
    std::lock_guard lock(m);
    prev = ctx.prev_error();
    return x + 1;
  };
  // Time moves only when the test advances it: the lease lapses exactly when it should.
  auto clock = std::make_shared<ManualClock>();
  auto o = fast_options();
  o.clock = clock;
  DurableExecutor submitter{storage(), o};
  auto t = submitter.task({.id = "t", .timeout = 1h}, body);
  auto h = submitter.enqueue_task(t, 1);
  // The dead executor's claim: running, owned by "de_dead", lease = now + 1 h + leeway.
  const auto now = clock->now();
  TaskExecutionUpdate claim;
  claim.status = TaskExecutionStatus::running;
  claim.executor_id = "de_dead";
  claim.started_at = now;
  auto claimed = storage().update_by_status_and_start_at_less_than_and_return(
      {.status = TaskExecutionStatus::ready,
       .start_at_less_than = now + 1ms,
       .update = normalize_update(now, claim),
       .update_expires_at_with_started_at = now + o.expire_leeway,
       .limit = 10});
  ASSERT_EQ(claimed.size(), 1U);
  EXPECT_EQ(h.get_execution().status, TaskExecutionStatus::running);

  DurableExecutor survivor{storage(), o};
  (void)survivor.task({.id = "t", .timeout = 1h}, body);
  survivor.start();
  clock->advance(1h + o.expire_leeway - 1ms);
  std::this_thread::sleep_for(300ms);  // more than one expiry pass: the lease still holds
  EXPECT_EQ(h.get_execution().status, TaskExecutionStatus::running);
  EXPECT_EQ(runs.load(), 0);
  clock->advance(2ms);  // past the lease (expires_at < now)
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, 2);
  EXPECT_EQ(e.retry_attempts, 0);  // expiry consumes no retry
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(runs.load(), 1);
  std::lock_guard lock(m);
  ASSERT_TRUE(prev);
  EXPECT_EQ(prev->message, "Task execution expired");
  EXPECT_FALSE(prev->is_retryable);
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorConcurrency,
                         ::testing::ValuesIn(all_storage_factories()), factory_name);

}  // namespace
}  // namespace durable_execution::testing
