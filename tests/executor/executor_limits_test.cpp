// Issue 10 ("No poison"), the limits: crash loops are bounded, leases follow their options, the
// concurrency cap counts abandoned runs, shutdown is bounded and re-entrant calls throw, slow
// storage never delays timers, and waiters are woken for their own execution only.

#include <iostream>
#include <map>
#include <set>

#include "durable_execution/forwarding_storage.hpp"
#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using ExecutorLimits = ExecutorTest;

/** Claims every ready execution as a dead executor would have: running, lease `now + timeout`. */
std::vector<TaskExecutionRecord> claim_as_dead_executor(TaskExecutionsStorage& storage) {
  const auto now = now_timestamp();
  TaskExecutionUpdate claim;
  claim.status = TaskExecutionStatus::running;
  claim.executor_id = "de_dead";
  claim.started_at = now;
  return storage.update_by_status_and_start_at_less_than_and_return(
      {.status = TaskExecutionStatus::ready,
       .start_at_less_than = now + 1ms,
       .update = normalize_update(now, claim),
       .update_expires_at_with_started_at = now,
       .limit = 100});
}

/** Records `n` earlier lease expirations of an execution (as n crashed executors would have). */
void add_lease_expirations(TaskExecutionsStorage& storage, const std::string& id, int n) {
  for (int i = 0; i < n; ++i) {
    TaskExecutionUpdate u;
    u.increment_lease_expirations = true;
    storage.update_many_by_id({{id, {}, normalize_update(now_timestamp(), u)}});
  }
}

TEST_P(ExecutorLimits, ExecutionAbandonedMoreThanTheBoundFailsAndOthersRun) {
  std::atomic<int> runs{0};
  auto body = [&](const int& x) {
    ++runs;
    return x + 1;
  };
  DurableExecutor submitter{storage(), fast_options()};
  auto t = submitter.task({.id = "t", .timeout = 50ms}, body);
  auto poisoned = submitter.enqueue_task(t, 1);
  auto survivor_run = submitter.enqueue_task(t, 2);
  ASSERT_EQ(claim_as_dead_executor(storage()).size(), 2U);
  // Three earlier crashes of the first; two of the second: this expiry is its third.
  add_lease_expirations(storage(), poisoned.execution_id(), 3);
  add_lease_expirations(storage(), survivor_run.execution_id(), 2);

  auto o = fast_options();
  o.expire_leeway = 0ms;
  ASSERT_EQ(o.max_lease_expirations, 3);  // the documented default
  DurableExecutor survivor{storage(), o};
  (void)survivor.task({.id = "t", .timeout = 50ms}, body);
  survivor.start();
  auto failed = poisoned.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(failed.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(failed.error);
  EXPECT_NE(failed.error->message.find("abandoned repeatedly"), std::string::npos)
      << failed.error->message;
  EXPECT_FALSE(failed.error->is_retryable);
  EXPECT_EQ(failed.retry_attempts, 0);
  auto done = survivor_run.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(done.status, TaskExecutionStatus::completed);
  EXPECT_EQ(done.output, 3);
  EXPECT_EQ(done.retry_attempts, 0);  // a crash below the bound is not a retry attempt
  EXPECT_EQ(runs.load(), 1);          // the abandoned one never ran again
  auto stored = storage().get_many_by_id({{poisoned.execution_id(), {}}});
  ASSERT_TRUE(stored.front());
  EXPECT_EQ(stored.front()->lease_expirations, 4);
  // It is closed like any finished execution.
  EXPECT_TRUE(wait_until([&] {
    auto r = storage().get_many_by_id({{poisoned.execution_id(), {}}});
    return r.front() && r.front()->close_status == CloseStatus::closed;
  }));
}

TEST_P(ExecutorLimits, ExecutionsWhoseLeaseExpiredRunAloneSoACrashCountsOnlyAgainstTheCulprit) {
  std::mutex m;
  int running = 0;
  int suspects_sharing = 0;  // a recovered execution that ran while anything else ran
  int runs = 0;
  auto body = [&](TaskRunContext& ctx, const int& x) {
    const bool suspect = ctx.prev_error() && ctx.prev_error()->message == "Task execution expired";
    {
      std::lock_guard lock(m);
      ++running;
      ++runs;
      if (suspect && running > 1) ++suspects_sharing;
    }
    std::this_thread::sleep_for(20ms);
    {
      std::lock_guard lock(m);
      if (suspect && running > 1) ++suspects_sharing;
      --running;
    }
    return x;
  };
  DurableExecutor submitter{storage(), fast_options()};
  auto t = submitter.task({.id = "t", .timeout = 50ms}, body);
  std::vector<TaskExecutionHandle<int>> handles;
  for (int i = 0; i < 6; ++i) handles.push_back(submitter.enqueue_task(t, i));
  // A dead executor had all six: their leases expire together, and they come back together.
  ASSERT_EQ(claim_as_dead_executor(storage()).size(), 6U);
  for (int i = 6; i < 12; ++i) handles.push_back(submitter.enqueue_task(t, i));  // fresh work

  auto o = fast_options();
  o.expire_leeway = 0ms;
  DurableExecutor survivor{storage(), o};
  (void)survivor.task({.id = "t", .timeout = 50ms}, body);
  survivor.start();
  for (std::size_t i = 0; i < handles.size(); ++i) {
    auto e = handles[i].wait_and_get_finished_execution(bounded_wait());
    EXPECT_EQ(e.status, TaskExecutionStatus::completed);
    EXPECT_EQ(e.output, static_cast<int>(i));
    EXPECT_EQ(e.retry_attempts, 0);
  }
  std::lock_guard lock(m);
  EXPECT_EQ(runs, 12);
  EXPECT_EQ(suspects_sharing, 0);  // before: the six ran together in one batch
}

TEST_P(ExecutorLimits, ALongOrAStuckRunDoesNotStopClaimingWhileRecoveredExecutionsWaitToRunAlone) {
  Gate release;  // the long run and the stuck one return when it opens (at the end)
  auto quick_body = [](const int& x) { return x; };
  DurableExecutor submitter{storage(), fast_options()};
  auto quick = submitter.task({.id = "quick", .timeout = 200ms}, quick_body);
  std::vector<TaskExecutionHandle<int>> recovered;
  for (int i = 0; i < 2; ++i) recovered.push_back(submitter.enqueue_task(quick, i));
  ASSERT_EQ(claim_as_dead_executor(storage()).size(), 2U);  // their leases expire in 200 ms

  auto o = fast_options();
  o.expire_leeway = 0ms;
  DurableExecutor survivor{storage(), o};
  (void)survivor.task({.id = "quick", .timeout = 200ms}, quick_body);
  auto long_run = survivor.task({.id = "long", .timeout = 60s}, [&] {
    (void)release.wait({}, 30s);
    return 1;
  });
  auto stuck = survivor.task({.id = "stuck", .timeout = 50ms}, [&] {  // ignores its stop token
    (void)release.wait({}, 30s);
    return 2;
  });
  survivor.start();
  auto l = survivor.enqueue_task(long_run);
  auto s = survivor.enqueue_task(stuck);
  EXPECT_EQ(s.wait_and_get_finished_execution(bounded_wait()).status,
            TaskExecutionStatus::timed_out);  // abandoned: its callable still runs
  // The recovered executions wait for this process to be alone, but not for ever: the long run
  // is in flight for 30 s and the stuck callable never returns before the gate opens.
  for (std::size_t i = 0; i < recovered.size(); ++i) {
    auto e = recovered[i].wait_and_get_finished_execution(bounded_wait());
    EXPECT_EQ(e.status, TaskExecutionStatus::completed);
    EXPECT_EQ(e.output, static_cast<int>(i));
  }
  auto fresh = survivor.enqueue_task(quick, 7).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(fresh.output, 7);
  EXPECT_EQ(l.get_execution().status, TaskExecutionStatus::running);
  release.open();
  EXPECT_EQ(l.wait_and_get_finished_execution(bounded_wait()).output, 1);
}

TEST_P(ExecutorLimits, ChildrenStepAndCloseLeasesFollowTheirOptions) {
  auto o = fast_options();
  o.expire_leeway = 0ms;
  o.children_step_lease = 50ms;
  o.close_step_lease = 50ms;
  DurableExecutor executor{storage(), o};
  auto child = executor.task({.id = "child", .timeout = 1s}, [](const int& x) { return x; });
  auto parent = executor.parent_task({.id = "parent", .timeout = 1s}, [&](const int& n) {
    ParentRunResult<int> r{n, {}};
    r.children.push_back(durable_execution::child(child, n));
    return r;
  });
  (void)parent;
  // A parent whose children step died mid-way (processing, lease 50 ms) and an execution whose
  // close step died (closing, lease 50 ms): both are picked up again within a second, not after
  // the fixed 120 s of before.
  const auto now = now_timestamp();
  NewTaskExecution n;
  n.task_id = "parent";
  n.execution_id = generate_execution_id();
  n.timeout = 1s;
  n.input = "1";
  auto p = make_task_execution_record(now, n);
  p.status = TaskExecutionStatus::waiting_for_children;
  p.run_output = "1";
  p.children = std::vector<TaskExecutionSummary>{};
  p.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::processing;
  p.on_children_finished_processing_expires_at = now + o.children_step_lease + o.expire_leeway;
  n.task_id = "child";
  n.execution_id = generate_execution_id();
  auto c = make_task_execution_record(now, n);
  c.status = TaskExecutionStatus::completed;
  c.is_finished = true;
  c.finished_at = now;
  c.output = "1";
  c.close_status = CloseStatus::closing;
  c.close_expires_at = now + o.close_step_lease + o.expire_leeway;
  storage().insert_many({p, c});
  const auto start = std::chrono::steady_clock::now();
  executor.start();
  auto h = executor.get_task_execution_handle(parent, p.execution_id);
  auto e = h.wait_and_get_finished_execution(bounded_wait(5s));
  EXPECT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_TRUE(wait_until(
      [&] {
        auto r = storage().get_many_by_id({{c.execution_id, {}}});
        return r.front() && r.front()->close_status == CloseStatus::closed;
      },
      5s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

/**
 * Counts the engine's storage calls while `counting` is set, and makes result writes
 * (update_many_by_id) take `slow_update` while it is non-zero.
 */
class ObservedStorage : public ForwardingTaskExecutionsStorage {
 public:
  using ForwardingTaskExecutionsStorage::ForwardingTaskExecutionsStorage;
  std::atomic<bool> counting{false};
  std::atomic<int> calls{0};
  std::atomic<std::int64_t> slow_update_ms{0};

  void insert_many(const std::vector<TaskExecutionRecord>& e) override {
    note();
    ForwardingTaskExecutionsStorage::insert_many(e);
  }
  std::vector<std::optional<TaskExecutionRecord>> get_many_by_id(
      const std::vector<GetByIdRequest>& r) override {
    note();
    return ForwardingTaskExecutionsStorage::get_many_by_id(r);
  }
  void update_many_by_id(const std::vector<UpdateByIdRequest>& r) override {
    note();
    if (const auto ms = slow_update_ms.load(); ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds{ms});
    }
    ForwardingTaskExecutionsStorage::update_many_by_id(r);
  }
  void update_many_by_id_and_insert_children_if_updated(
      const std::vector<UpdateByIdAndInsertChildrenRequest>& r) override {
    note();
    ForwardingTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(r);
  }
  std::vector<TaskExecutionRecord> update_by_status_and_start_at_less_than_and_return(
      const UpdateByStatusAndStartAtLessThanRequest& r) override {
    note();
    return ForwardingTaskExecutionsStorage::update_by_status_and_start_at_less_than_and_return(r);
  }
  std::vector<TaskExecutionRecord> update_by_close_status_and_return(
      const UpdateByCloseStatusRequest& r) override {
    note();
    return ForwardingTaskExecutionsStorage::update_by_close_status_and_return(r);
  }
  std::int64_t update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
      const UpdateAndDecrementParentActiveChildrenCountRequest& r) override {
    note();
    return ForwardingTaskExecutionsStorage::
        update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(r);
  }
  std::int64_t update_by_is_sleeping_task_and_expires_at_less_than(
      const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& r) override {
    note();
    return ForwardingTaskExecutionsStorage::update_by_is_sleeping_task_and_expires_at_less_than(r);
  }

 private:
  void note() {
    if (counting.load()) ++calls;
  }
};

/** Tracks how many task functions are alive at once. */
struct AliveMeter {
  std::atomic<int> current{0};
  std::atomic<int> max_seen{0};
  std::atomic<int> entered{0};
  void enter() {
    ++entered;
    const int now = ++current;
    int prev = max_seen.load();
    while (prev < now && !max_seen.compare_exchange_weak(prev, now)) {
    }
  }
  void leave() { --current; }
};

TEST_P(ExecutorLimits, AbandonedRunsCountAgainstTheCapAndARetryWaitsForItsPreviousAttempt) {
  auto o = fast_options();
  o.max_concurrent_task_executions = 2;
  DurableExecutor executor{storage(), o};
  AliveMeter alive;
  // Ignores its stop token: every attempt times out at 50 ms and keeps running 150 ms.
  auto stubborn = executor.task({.id = "stubborn", .timeout = 50ms, .retry = {.max_attempts = 5}},
                                [&](const int& x) {
                                  alive.enter();
                                  std::this_thread::sleep_for(150ms);
                                  alive.leave();
                                  return x;
                                });
  executor.start();
  std::vector<TaskExecutionHandle<int>> handles;
  for (int i = 0; i < 3; ++i) handles.push_back(executor.enqueue_task(stubborn, i));
  for (auto& h : handles) {
    auto e = h.wait_and_get_finished_execution(bounded_wait(30s));
    EXPECT_EQ(e.status, TaskExecutionStatus::timed_out);
    EXPECT_EQ(e.retry_attempts, 5);
  }
  EXPECT_TRUE(wait_until([&] { return alive.current.load() == 0; }));
  std::cout << "task functions alive at most: " << alive.max_seen.load()
            << ", worker threads: " << executor.stats().worker_threads << std::endl;
  EXPECT_LE(alive.max_seen.load(), 2);  // today: 3 executions x 6 attempts alive at once
  EXPECT_GE(alive.entered.load(), 3);
  const auto st = executor.stats();
  EXPECT_LE(st.worker_threads, 2);
  EXPECT_TRUE(wait_until([&] { return executor.stats().abandoned_task_executions == 0; }));
}

TEST_P(ExecutorLimits, IdleWorkersRetire) {
  auto o = fast_options();
  o.worker_idle_timeout = 100ms;
  DurableExecutor executor{storage(), o};
  auto nap = executor.task({.id = "nap", .timeout = 5s}, [](const int& x) {
    std::this_thread::sleep_for(50ms);
    return x;
  });
  executor.start();
  std::vector<TaskExecutionHandle<int>> handles;
  for (int i = 0; i < 32; ++i) handles.push_back(executor.enqueue_task(nap, i));
  for (auto& h : handles) {
    EXPECT_EQ(h.wait_and_get_finished_execution(bounded_wait()).status,
              TaskExecutionStatus::completed);
  }
  const auto cores = static_cast<std::int32_t>(std::max(2U, std::thread::hardware_concurrency()));
  EXPECT_GT(executor.stats().worker_threads, cores);  // the burst got workers of its own
  EXPECT_TRUE(wait_until([&] { return executor.stats().worker_threads <= cores; }, 5s))
      << executor.stats().worker_threads;
  // Retired workers are replaced on demand.
  EXPECT_EQ(executor.enqueue_task(nap, 7).wait_and_get_finished_execution(bounded_wait()).output,
            7);
}

TEST_P(ExecutorLimits, ShutdownIsBoundedAndNothingTouchesTheStorageAfterIt) {
  ObservedStorage observed{storage()};
  auto o = fast_options();
  o.shutdown_timeout = 200ms;
  o.log_level = LogLevel::error;
  std::mutex log_mutex;
  std::string log;
  o.log_sink = [&](LogLevel, std::string_view m) {
    std::lock_guard lock(log_mutex);
    log += m;
    log += '\n';
  };
  Gate gate;
  std::atomic<bool> started{false};
  std::atomic<bool> returned{false};
  std::string id;
  {
    DurableExecutor executor{observed, o};
    auto stubborn = executor.task({.id = "stubborn", .timeout = 10s}, [&](const int& x) {
      started = true;
      (void)gate.wait({}, 5s);  // ignores its stop token
      returned = true;
      return x;
    });
    executor.start();
    auto h = executor.enqueue_task(stubborn, 1);
    id = h.execution_id();
    ASSERT_TRUE(wait_until([&] { return started.load(); }));
    const auto t0 = std::chrono::steady_clock::now();
    executor.shutdown();
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(took, 2s);  // today: until the task function returns (5 s here)
    EXPECT_GE(took, 150ms);
    observed.counting = true;
  }
  {
    std::lock_guard lock(log_mutex);
    EXPECT_NE(log.find("stopped waiting"), std::string::npos) << log;
    EXPECT_NE(log.find(id), std::string::npos) << log;
  }
  gate.open();
  ASSERT_TRUE(wait_until([&] { return returned.load(); }));
  std::this_thread::sleep_for(100ms);  // the late result would be written now
  EXPECT_EQ(observed.calls.load(), 0);
  observed.counting = false;
  auto rec = storage().get_many_by_id({{id, {}}});
  ASSERT_TRUE(rec.front());
  EXPECT_EQ(rec.front()->status, TaskExecutionStatus::running);  // its lease will expire
}

TEST_P(ExecutorLimits, ReentrantShutdownAndWaitsThrowAClearError) {
  DurableExecutor executor{storage(), fast_options()};
  std::mutex m;
  std::vector<std::string> errors;
  auto record = [&](auto&& fn) {
    try {
      fn();
      std::lock_guard lock(m);
      errors.emplace_back("no error");
    } catch (const DurableExecutionError& e) {
      std::lock_guard lock(m);
      errors.emplace_back(e.what());
    }
  };
  auto other = executor.task({.id = "other", .timeout = 1s}, [](const int& x) { return x; });
  auto h_other = executor.enqueue_task(other, 5);
  auto calls_shutdown = executor.task({.id = "calls_shutdown", .timeout = 5s}, [&](const int& x) {
    record([&] { executor.shutdown(); });
    record([&] { (void)h_other.wait_and_get_finished_execution(bounded_wait(1s)); });
    return x;
  });
  auto parent = executor.parent_task(
      {.id = "parent", .timeout = 5s},
      [&](const int& x) {
        return ParentRunResult<int>{x, {}};
      },
      [&](const ParentTaskOutput<int>& p) {
        record([&] { executor.shutdown(); });
        return p.output;
      });
  executor.start();
  auto h = executor.enqueue_task(calls_shutdown, 1);
  EXPECT_EQ(h.wait_and_get_finished_execution(bounded_wait()).output, 1);
  auto hp = executor.enqueue_task(parent, 2);
  EXPECT_EQ(hp.wait_and_get_finished_execution(bounded_wait()).output, 2);
  EXPECT_FALSE(executor.is_shutdown());
  std::lock_guard lock(m);
  ASSERT_EQ(errors.size(), 3U);
  for (const auto& e : errors) {
    EXPECT_NE(e.find("called from a task function or finalize function"), std::string::npos) << e;
  }
}

TEST_P(ExecutorLimits, DestroyingTheExecutorFromItsOwnTaskDoesNotTerminate) {
  auto executor = std::make_unique<DurableExecutor>(storage(), fast_options());
  std::atomic<bool> destroyed{false};
  auto t = executor->task({.id = "t", .timeout = 5s}, [&](const int& x) {
    executor.reset();  // the destructor cannot throw: it defers the shutdown
    destroyed = true;
    return x;
  });
  executor->start();
  auto h = executor->enqueue_task(t, 3);
  auto id = h.execution_id();
  ASSERT_TRUE(wait_until([&] { return destroyed.load(); }));
  // The run's result is still recorded, by the deferred shutdown.
  EXPECT_TRUE(wait_until([&] {
    auto r = storage().get_many_by_id({{id, {}}});
    return r.front() && r.front()->status == TaskExecutionStatus::completed;
  }));
  EXPECT_EQ(h.wait_and_get_finished_execution(bounded_wait()).output, 3);
  std::this_thread::sleep_for(100ms);  // lets the shutdown thread finish before the storage goes
}

TEST_P(ExecutorLimits, SlowResultWritesDoNotDelayOtherTimeouts) {
  ObservedStorage observed{storage()};
  DurableExecutor executor{observed, fast_options()};
  std::mutex m;
  std::map<int, std::chrono::steady_clock::time_point> fired;
  auto body = [&](TaskRunContext& ctx, const int& x) {
    std::mutex wm;
    std::condition_variable cv;
    std::stop_callback cb(ctx.stop_token(), [&] {
      std::lock_guard l(wm);
      cv.notify_all();
    });
    {
      std::unique_lock l(wm);
      cv.wait_for(l, 10s, [&] { return ctx.stop_token().stop_requested(); });
    }
    std::lock_guard lock(m);
    fired[x] = std::chrono::steady_clock::now();
    return x;
  };
  auto quick = executor.task({.id = "quick", .timeout = 50ms}, body);
  auto later = executor.task({.id = "later", .timeout = 300ms}, body);
  executor.start();
  observed.slow_update_ms = 1500;  // every result write takes 1.5 s
  const auto t0 = std::chrono::steady_clock::now();
  auto h1 = executor.enqueue_task(quick, 1);
  auto h2 = executor.enqueue_task(later, 2);
  EXPECT_TRUE(wait_until(
      [&] {
        std::lock_guard lock(m);
        return fired.size() == 2;
      },
      10s));
  {
    std::lock_guard lock(m);
    ASSERT_EQ(fired.size(), 2U);
    // Today the timer thread writes the first timeout itself and the second fires after it.
    std::cout << "300 ms timeout fired after "
              << std::chrono::duration_cast<std::chrono::milliseconds>(fired[2] - t0).count()
              << " ms with 1.5 s result writes" << std::endl;
    EXPECT_LT(fired[2] - t0, 1000ms);
    EXPECT_GE(fired[2] - t0, 290ms);
  }
  EXPECT_EQ(h2.wait_and_get_finished_execution(bounded_wait()).status,
            TaskExecutionStatus::timed_out);
  observed.slow_update_ms = 0;
  EXPECT_EQ(h1.wait_and_get_finished_execution(bounded_wait()).status,
            TaskExecutionStatus::timed_out);
}

TEST_P(ExecutorLimits, WaitersAreWokenForTheirOwnExecutionOnly) {
  DurableExecutor executor{storage(), fast_options()};
  auto t = executor.task({.id = "t", .timeout = 5s}, [](const int& x) {
    std::this_thread::sleep_for(std::chrono::milliseconds{x % 20});
    return x;
  });
  executor.start();
  constexpr int kWaiters = 200;
  std::vector<TaskExecutionHandle<int>> handles;
  for (int i = 0; i < kWaiters; ++i) handles.push_back(executor.enqueue_task(t, i));
  const auto before = executor.stats().storage_calls["get_many_by_id"].count;
  std::atomic<int> ok{0};
  {
    std::vector<std::jthread> waiters;
    for (int i = 0; i < kWaiters; ++i) {
      waiters.emplace_back([&, i] {
        // No polling within the test: only wake-ups read the store.
        auto e = handles[static_cast<std::size_t>(i)].wait_and_get_finished_execution(
            {.polling_interval = 60s, .timeout = 30s});
        if (e.output == i) ++ok;
      });
    }
  }
  EXPECT_EQ(ok.load(), kWaiters);
  const auto reads = executor.stats().storage_calls["get_many_by_id"].count - before;
  std::cout << kWaiters << " waiters: " << reads << " reads" << std::endl;
  // A look, a wake-up check and the final read each: O(1) per waiter (today ~50 per waiter).
  EXPECT_LE(reads, 4 * kWaiters) << reads;
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorLimits, ::testing::ValuesIn(all_storage_factories()),
                         factory_name);

}  // namespace
}  // namespace durable_execution::testing
