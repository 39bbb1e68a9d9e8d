// SPEC.md §10 "Tasks" (simple tasks): runs, validation, errors, retries, timeouts, cancellation,
// context, shutdown, size limits, closing.

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using ExecutorTasks = ExecutorTest;

struct Point {
  int x = 0;
  int y = 0;
};
void to_json(nlohmann::json& j, const Point& p) { j = nlohmann::json{{"x", p.x}, {"y", p.y}}; }
void from_json(const nlohmann::json& j, Point& p) {
  p.x = j.at("x").get<int>();
  p.y = j.at("y").get<int>();
}

TEST_P(ExecutorTasks, SimpleTaskRunsOnceAndCompletes) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> runs{0};
  auto t = executor.task({.id = "sum", .timeout = 1s}, [&](TaskRunContext& ctx, const Point& p) {
    ++runs;
    EXPECT_EQ(ctx.task_id(), "sum");
    EXPECT_FALSE(ctx.execution_id().empty());
    return p.x + p.y;
  });
  static_assert(std::is_same_v<decltype(t), Task<Point, int>>);
  executor.start();
  auto h = executor.enqueue_task(t, Point{2, 3});
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, 5);
  EXPECT_FALSE(e.error);
  EXPECT_EQ(e.retry_attempts, 0);
  ASSERT_TRUE(e.started_at && e.finished_at);
  EXPECT_GE(*e.finished_at, *e.started_at);
  EXPECT_GE(*e.started_at, e.created_at);
  EXPECT_EQ(e.task_id, "sum");
  EXPECT_EQ(e.execution_id, h.execution_id());
  EXPECT_EQ(runs.load(), 1);
}

TEST_P(ExecutorTasks, ExplicitTypesAndAllRunShapes) {
  DurableExecutor executor{storage(), fast_options()};
  auto explicit_types = executor.task<int, std::string>(
      {.id = "explicit", .timeout = 1s},
      [](TaskRunContext&, const int& x) { return std::to_string(x); });
  auto no_ctx =
      executor.task({.id = "no_ctx", .timeout = 1s}, [](const std::string& s) { return s + "!"; });
  auto no_input = executor.task({.id = "no_input", .timeout = 1s}, [] { return 7; });
  auto void_out = executor.task({.id = "void_out", .timeout = 1s}, [](const int&) {});
  static_assert(std::is_same_v<decltype(no_input), Task<Empty, int>>);
  static_assert(std::is_same_v<decltype(void_out), Task<int, Empty>>);
  executor.start();
  EXPECT_EQ(executor.enqueue_task(explicit_types, 42)
                .wait_and_get_finished_execution(bounded_wait())
                .output,
            "42");
  EXPECT_EQ(
      executor.enqueue_task(no_ctx, "hi").wait_and_get_finished_execution(bounded_wait()).output,
      "hi!");
  EXPECT_EQ(executor.enqueue_task(no_input).wait_and_get_finished_execution(bounded_wait()).output,
            7);
  EXPECT_EQ(
      executor.enqueue_task(void_out, 1).wait_and_get_finished_execution(bounded_wait()).status,
      TaskExecutionStatus::completed);
}

TEST_P(ExecutorTasks, ValidatedInputTransformsOrFailsWithoutRunning) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> runs{0};
  auto t = executor
               .validate_input([](const std::string& raw) {
                 if (raw.empty()) throw std::invalid_argument("empty");
                 return static_cast<int>(raw.size());
               })
               .task({.id = "test", .timeout = 1s}, [&](const int& n) {
                 ++runs;
                 return n * 2;
               });
  static_assert(std::is_same_v<decltype(t), Task<std::string, int>>);
  executor.start();
  auto ok = executor.enqueue_task(t, "abc").wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(ok.output, 6);
  auto bad = executor.enqueue_task(t, "").wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(bad.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(bad.error);
  EXPECT_EQ(bad.error->message, "Invalid input to task test: empty");
  EXPECT_FALSE(bad.error->is_retryable);
  EXPECT_EQ(runs.load(), 1);
}

TEST_P(ExecutorTasks, AValidatorThrowingANonStandardExceptionRejectsTheInputForGood) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> validations{0};
  auto t = executor
               .validate_input([&](const int& x) {
                 ++validations;
                 if (x < 0) throw "negative";  // not a std::exception
                 return x;
               })
               .task({.id = "test", .timeout = 1s, .retry = {.max_attempts = 3}},
                     [](const int& x) { return x; });
  executor.start();
  auto bad = executor.enqueue_task(t, -1).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(bad.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(bad.error);
  EXPECT_EQ(bad.error->message, "Invalid input to task test: Unknown error");
  EXPECT_FALSE(bad.error->is_retryable);
  EXPECT_EQ(validations.load(), 1);
}

TEST_P(ExecutorTasks, AnErrorMessageThatIsNotUtf8IsStoredTheSameOnEveryBackend) {
  DurableExecutor executor{storage(), fast_options()};
  auto t = executor.task({.id = "t", .timeout = 1s}, []() -> int {
    throw DurableExecutionError::non_retryable("bad \xff\xfe message");
  });
  auto hook = executor.sleeping_task<int>({.id = "hook", .timeout = 10s});
  executor.start();
  // Each invalid byte becomes U+FFFD, as JSON carries it (PostgreSQL could not store it raw).
  const std::string replaced = "bad \xEF\xBF\xBD\xEF\xBF\xBD message";
  auto e = executor.enqueue_task(t).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(e.error);
  EXPECT_EQ(e.error->message, replaced);
  auto h = executor.enqueue_task(hook, "h1");
  (void)executor.fail_sleeping_task_execution(hook, "h1", "bad \xff\xfe message");
  auto f = h.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(f.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(f.error);
  EXPECT_EQ(f.error->message, replaced);
}

TEST_P(ExecutorTasks, AHugeErrorMessageIsStoredTruncated) {
  DurableExecutor executor{storage(), fast_options()};
  // 200 KiB of two-byte characters: the cut must not split one.
  std::string huge;
  for (int i = 0; i < 100 * 1024; ++i) huge += "\xC3\xA9";
  auto t = executor.task({.id = "t", .timeout = 10s},
                         [&]() -> int { throw DurableExecutionError::non_retryable(huge); });
  executor.start();
  auto e = executor.enqueue_task(t).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(e.error);
  const auto& m = e.error->message;
  EXPECT_LE(m.size(), max_error_message_size + 64);
  EXPECT_EQ(m.compare(0, 1000, huge, 0, 1000), 0);
  EXPECT_NE(m.find("bytes truncated]"), std::string::npos);
  EXPECT_NO_THROW((void)nlohmann::json(m).dump());  // still valid UTF-8 (dump throws if not)
}

TEST_P(ExecutorTasks, AReferenceOfTheWrongKindIsRefusedAtEnqueue) {
  DurableExecutor executor{storage(), fast_options()};
  auto sleepy = executor.sleeping_task<std::string>({.id = "sleepy", .timeout = 10s});
  auto plain =
      executor.task({.id = "plain", .timeout = 1s}, [](const std::string& s) { return s; });
  executor.start();
  const auto plain_ref =
      Task<std::string, std::string>::reference({.id = "sleepy", .timeout = 10s});
  const auto sleeping_ref =
      Task<std::string, std::string>::sleeping_reference({.id = "plain", .timeout = 1s});
  EXPECT_THROW((void)executor.enqueue_task(plain_ref, "uid"), DurableExecutionError);
  EXPECT_THROW((void)executor.enqueue_task(sleeping_ref, "x"), DurableExecutionError);
  try {
    (void)executor.enqueue_task(plain_ref, "uid");
  } catch (const DurableExecutionError& e) {
    EXPECT_NE(std::string{e.what()}.find("sleeping task"), std::string::npos) << e.what();
    EXPECT_FALSE(e.is_retryable());
  }
  // Nothing was written: the unique id is free, the matching kinds work.
  auto h = executor.enqueue_task(
      Task<std::string, std::string>::sleeping_reference({.id = "sleepy", .timeout = 10s}), "uid");
  EXPECT_EQ(executor.wakeup_sleeping_task_execution(sleepy, "uid", "done").output, "done");
  EXPECT_EQ(h.get_execution().status, TaskExecutionStatus::completed);
  EXPECT_EQ(
      executor.enqueue_task(plain, "p").wait_and_get_finished_execution(bounded_wait()).output,
      "p");
  // An unset Task (no id) names the problem.
  try {
    (void)executor.enqueue_task(Task<std::string, std::string>{}, "x");
    ADD_FAILURE() << "an unset task was enqueued";
  } catch (const DurableExecutionNotFoundError& e) {
    EXPECT_NE(std::string{e.what()}.find("unset"), std::string::npos) << e.what();
  }
}

TEST_P(ExecutorTasks, PlainErrorFailsWithRetryableGenericError) {
  DurableExecutor executor{storage(), fast_options()};
  auto t = executor.task({.id = "t", .timeout = 1s},
                         []() -> int { throw std::runtime_error("Test error"); });
  executor.start();
  auto e = executor.enqueue_task(t).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(e.error);
  EXPECT_EQ(e.error->message, "Test error");
  EXPECT_EQ(e.error->error_type, ErrorType::generic);
  EXPECT_TRUE(e.error->is_retryable);
  EXPECT_FALSE(e.output);
}

TEST_P(ExecutorTasks, RetriesWithMaxAttemptsOne) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> flaky_runs{0};
  std::atomic<int> failing_runs{0};
  std::atomic<int> fatal_runs{0};
  auto flaky = executor.task({.id = "flaky", .timeout = 1s, .retry = {.max_attempts = 1}},
                             [&](TaskRunContext& ctx) {
                               ++flaky_runs;
                               if (ctx.attempt() == 0) throw std::runtime_error("Test error");
                               return std::string{"ok"};
                             });
  auto failing =
      executor.task({.id = "failing", .timeout = 1s, .retry = {.max_attempts = 1}},
                    [&](TaskRunContext& ctx) -> int {
                      ++failing_runs;
                      throw std::runtime_error("Test error " + std::to_string(ctx.attempt()));
                    });
  auto fatal =
      executor.task({.id = "fatal", .timeout = 1s, .retry = {.max_attempts = 1}}, [&]() -> int {
        ++fatal_runs;
        throw DurableExecutionError::non_retryable("fatal");
      });
  executor.start();
  auto a = executor.enqueue_task(flaky).wait_and_get_finished_execution(bounded_wait());
  auto b = executor.enqueue_task(failing).wait_and_get_finished_execution(bounded_wait());
  auto c = executor.enqueue_task(fatal).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(a.status, TaskExecutionStatus::completed);
  EXPECT_EQ(a.retry_attempts, 1);
  EXPECT_EQ(flaky_runs.load(), 2);
  EXPECT_EQ(b.status, TaskExecutionStatus::failed);
  EXPECT_EQ(b.error->message, "Test error 1");
  EXPECT_EQ(failing_runs.load(), 2);
  EXPECT_EQ(c.status, TaskExecutionStatus::failed);
  EXPECT_FALSE(c.error->is_retryable);
  EXPECT_EQ(fatal_runs.load(), 1);
}

TEST_P(ExecutorTasks, ContextSeesAttemptAndPreviousErrorAndBackoffDelay) {
  // Time moves only when the test advances it: the retry waits exactly its back-off.
  auto clock = std::make_shared<ManualClock>();
  auto options = fast_options();
  options.clock = clock;
  DurableExecutor executor{storage(), options};
  std::mutex m;
  std::vector<std::pair<int, std::optional<std::string>>> seen;
  auto t = executor.task(
      {.id = "t", .timeout = 1s, .retry = {.max_attempts = 1, .base_delay = 1h}},
      [&](TaskRunContext& ctx) {
        std::lock_guard lock(m);
        seen.emplace_back(ctx.attempt(), ctx.prev_error()
                                             ? std::optional<std::string>{ctx.prev_error()->message}
                                             : std::nullopt);
        if (ctx.attempt() == 0) throw std::runtime_error("Test error");
        return 1;
      });
  executor.start();
  auto h = executor.enqueue_task(t);
  const auto enqueued_at = clock->now();
  // The first attempt fails and the execution waits for its retry (ready, retry_attempts 1).
  ASSERT_TRUE(wait_until([&] {
    const auto e = h.get_execution();
    return e.status == TaskExecutionStatus::ready && e.retry_attempts == 1;
  }));
  clock->advance(1h - 1ms);
  std::this_thread::sleep_for(50ms);  // several dispatcher passes: still not due
  {
    std::lock_guard lock(m);
    EXPECT_EQ(seen.size(), 1U);
  }
  clock->advance(1ms);  // due now: the timer wakes the dispatcher
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::completed);
  ASSERT_TRUE(e.started_at);
  EXPECT_EQ(*e.started_at, enqueued_at + 1h);
  std::lock_guard lock(m);
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[0].first, 0);
  EXPECT_FALSE(seen[0].second);
  EXPECT_EQ(seen[1].first, 1);
  EXPECT_EQ(seen[1].second, "Test error");
}

TEST_P(ExecutorTasks, SleepBeforeRunDelaysStart) {
  auto clock = std::make_shared<ManualClock>();
  auto options = fast_options();
  options.clock = clock;
  DurableExecutor executor{storage(), options};
  auto t = executor.task({.id = "t", .timeout = 1s, .sleep_before_run = 250ms}, [] { return 1; });
  executor.start();
  auto h = executor.enqueue_task(t);
  std::this_thread::sleep_for(50ms);  // several dispatcher passes: not due yet
  EXPECT_EQ(h.get_execution().status, TaskExecutionStatus::ready);
  clock->advance(250ms);
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::completed);
  ASSERT_TRUE(e.started_at);
  EXPECT_EQ(*e.started_at - e.created_at, 250ms);
}

TEST_P(ExecutorTasks, TimeoutIsRecordedAtTheDeadlineEvenIfTheTaskIgnoresItsStopToken) {
  auto clock = std::make_shared<ManualClock>();
  auto options = fast_options();
  options.clock = clock;
  DurableExecutor executor{storage(), options};
  std::atomic<bool> started{false};
  std::atomic<bool> returned{false};
  Gate gate;
  auto t = executor.task({.id = "t", .timeout = 10s}, [&] {
    started = true;
    (void)gate.wait();  // ignores the stop token
    returned = true;
    return std::string{"late"};
  });
  executor.start();
  auto h = executor.enqueue_task(t);
  ASSERT_TRUE(wait_until([&] { return started.load(); }));
  clock->advance(10s);
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::timed_out);
  ASSERT_TRUE(e.error);
  EXPECT_EQ(e.error->message, "Task execution timed out");
  EXPECT_EQ(e.error->error_type, ErrorType::timed_out);
  EXPECT_TRUE(e.error->is_retryable);
  EXPECT_FALSE(returned.load());  // recorded before the callable returned
  ASSERT_TRUE(e.finished_at && e.started_at);
  EXPECT_EQ(*e.finished_at - *e.started_at, 10s);         // at the deadline, not later
  EXPECT_TRUE(executor.running_execution_ids().empty());  // the slot is free
  gate.open();
  ASSERT_TRUE(wait_until([&] { return returned.load(); }));
  executor.shutdown();  // waits for the abandoned callable; its late result is not written
  auto after = h.get_execution();
  EXPECT_EQ(after.status, TaskExecutionStatus::timed_out);  // the late result was discarded
  EXPECT_FALSE(after.output);
}

TEST_P(ExecutorTasks, ShortTimeoutsStartedAfterALongOneFireOnTime) {
  DurableExecutor executor{storage(), fast_options()};
  Gate release;
  auto slow = executor.task({.id = "slow", .timeout = 10s}, [&](TaskRunContext& ctx) {
    (void)release.wait(ctx.stop_token(), 5s);
    return std::string{"slow"};
  });
  auto quick = executor.task({.id = "quick", .timeout = 30ms}, [](TaskRunContext& ctx) {
    Gate never;
    (void)never.wait(ctx.stop_token(), 5s);
    return std::string{"never"};
  });
  executor.start();
  auto long_running = executor.enqueue_task(slow);
  ASSERT_TRUE(wait_until([&] { return executor.running_execution_ids().size() == 1; }));
  std::vector<TaskExecutionHandle<std::string>> short_ones;
  for (int i = 0; i < 3; ++i) short_ones.push_back(executor.enqueue_task(quick));
  for (auto& h : short_ones) {
    auto e = h.wait_and_get_finished_execution(bounded_wait());
    EXPECT_EQ(e.status, TaskExecutionStatus::timed_out);
    ASSERT_TRUE(e.finished_at && e.started_at);
    EXPECT_LT(*e.finished_at - *e.started_at, 2s);  // not the long run's 10 s deadline
  }
  release.open();
  auto e = long_running.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, "slow");
}

TEST_P(ExecutorTasks, TimeoutFiresTheStopTokenAndRetriesWhileAttemptsRemain) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> runs{0};
  std::atomic<int> saw_timeout{0};
  auto t = executor.task({.id = "t", .timeout = 20ms, .retry = {.max_attempts = 1}},
                         [&](TaskRunContext& ctx) {
                           ++runs;
                           Gate never;
                           (void)never.wait(ctx.stop_token(), 5s);
                           if (ctx.stop_reason() == StopReason::timed_out) ++saw_timeout;
                           return 0;
                         });
  executor.start();
  auto e = executor.enqueue_task(t).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::timed_out);
  EXPECT_EQ(e.retry_attempts, 1);
  EXPECT_EQ(runs.load(), 2);
  ASSERT_TRUE(wait_until([&] { return saw_timeout.load() == 2; }));
}

TEST_P(ExecutorTasks, EnqueueTimeoutOverrideLetsASlowTaskComplete) {
  DurableExecutor executor{storage(), fast_options()};
  auto t = executor.task({.id = "t", .timeout = 10ms}, [] {
    std::this_thread::sleep_for(50ms);
    return 1;
  });
  executor.start();
  auto e = executor.enqueue_task(t, Empty{}, EnqueueOptions{.timeout = 1000ms})
               .wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.timeout, 1000ms);
}

TEST_P(ExecutorTasks, CancelBeforeStart) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> runs{0};
  auto t = executor.task({.id = "t", .timeout = 1s}, [&] { return ++runs; });
  auto h = executor.enqueue_task(t);
  h.cancel();
  executor.start();
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::cancelled);
  ASSERT_TRUE(e.error);
  EXPECT_EQ(e.error->error_type, ErrorType::cancelled);
  EXPECT_FALSE(e.error->is_retryable);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(runs.load(), 0);
}

TEST_P(ExecutorTasks, CancelWhileRunningFiresTheStopTokenAndFreesTheSlot) {
  DurableExecutor executor{storage(), fast_options()};
  Gate started;
  std::atomic<bool> saw_cancel{false};
  auto t = executor.task({.id = "t", .timeout = 10s}, [&](TaskRunContext& ctx) {
    started.open();
    Gate never;
    (void)never.wait(ctx.stop_token(), 5s);
    saw_cancel = ctx.stop_reason() == StopReason::cancelled;
    return 1;
  });
  executor.start();
  auto h = executor.enqueue_task(t);
  ASSERT_TRUE(started.wait());
  h.cancel();
  h.cancel();
  h.cancel();  // a triple cancel behaves like one
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::cancelled);
  ASSERT_TRUE(wait_until([&] { return executor.running_execution_ids().empty(); }, 2500ms));
  ASSERT_TRUE(wait_until([&] { return saw_cancel.load(); }));
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(h.get_execution().status, TaskExecutionStatus::cancelled);
  EXPECT_FALSE(h.get_execution().output);
}

TEST_P(ExecutorTasks, ShutdownLetsARunningTaskFinishAndRecordsItsResult) {
  DurableExecutor executor{storage(), fast_options()};
  Gate started;
  std::atomic<int> runs{0};
  auto t = executor.task({.id = "t", .timeout = 10s}, [&](TaskRunContext& ctx) {
    ++runs;
    started.open();
    Gate never;
    (void)never.wait(ctx.stop_token(), 5s);
    return std::string{ctx.stop_reason() == StopReason::shutdown ? "test cancelled" : "?"};
  });
  executor.start();
  auto h = executor.enqueue_task(t);
  ASSERT_TRUE(started.wait());
  executor.shutdown();
  auto e = h.get_execution();
  EXPECT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, "test cancelled");
  EXPECT_EQ(runs.load(), 1);
}

TEST_P(ExecutorTasks, ATaskThatThrowsCancelledOnShutdownEndsCancelled) {
  DurableExecutor executor{storage(), fast_options()};
  Gate started;
  auto t = executor.task({.id = "t", .timeout = 10s}, [&](TaskRunContext& ctx) -> int {
    started.open();
    Gate never;
    (void)never.wait(ctx.stop_token(), 5s);
    throw DurableExecutionCancelledError{};
  });
  executor.start();
  auto h = executor.enqueue_task(t);
  ASSERT_TRUE(started.wait());
  executor.shutdown();
  EXPECT_EQ(h.get_execution().status, TaskExecutionStatus::cancelled);
}

TEST_P(ExecutorTasks, OversizeOutputFails) {
  DurableExecutor executor{storage(), fast_options()};
  // Serializing 10 MiB takes seconds under sanitizers: the timeout must not win the race.
  auto t =
      executor.task({.id = "t", .timeout = 60s}, [] { return std::string(10 * 1024 * 1024, 'x'); });
  executor.start();
  auto e = executor.enqueue_task(t).wait_and_get_finished_execution(bounded_wait(60s));
  EXPECT_EQ(e.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(e.error);
  EXPECT_NE(e.error->message.find("size"), std::string::npos);
}

TEST_P(ExecutorTasks, FinishedExecutionsReachClosed) {
  DurableExecutor executor{storage(), fast_options()};
  auto ok = executor.task({.id = "ok", .timeout = 1s}, [] { return 1; });
  auto bad = executor.task({.id = "bad", .timeout = 1s},
                           []() -> int { throw DurableExecutionError::non_retryable("no"); });
  executor.start();
  auto a = executor.enqueue_task(ok);
  auto b = executor.enqueue_task(bad);
  ASSERT_TRUE(wait_until([&] {
    return a.get_execution().close_status == CloseStatus::closed &&
           b.get_execution().close_status == CloseStatus::closed;
  }));
  auto e = a.get_execution();
  ASSERT_TRUE(e.closed_at && e.finished_at);
  EXPECT_GE(*e.closed_at, *e.finished_at);
}

TEST_P(ExecutorTasks, WaitHonoursItsDeadlineAndStopToken) {
  DurableExecutor executor{storage(), fast_options()};
  auto t = executor.task({.id = "t", .timeout = 1s}, [] { return 1; });
  auto h = executor.enqueue_task(t);  // never started: stays ready
  EXPECT_THROW((void)h.wait_and_get_finished_execution(bounded_wait(50ms)),
               DurableExecutionTimedOutError);
  std::stop_source stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(30ms);
    stop.request_stop();
  });
  EXPECT_THROW((void)h.wait_and_get_finished_execution(
                   {.polling_interval = 1s, .timeout = 5s, .stop_token = stop.get_token()}),
               DurableExecutionCancelledError);
  stopper.join();
}

TEST_P(ExecutorTasks, AWaitWithANonPositivePollingIntervalPollsAtTheDefault) {
  // The client's handle is not woken by the executor (another engine, as another process): it
  // re-reads every polling_interval; 0 means the default 100 ms, not the reference's 2.5 s.
  DurableExecutor executor{storage(), fast_options()};
  Gate release;
  auto t = executor.task({.id = "t", .timeout = 10s}, [&] {
    (void)release.wait();
    return 1;
  });
  DurableExecutorClient client{storage(), {t.descriptor()}};
  executor.start();
  auto h = client.enqueue_task(t);
  std::thread opener([&] {
    std::this_thread::sleep_for(50ms);
    release.open();
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto e = h.wait_and_get_finished_execution({.polling_interval = 0ms, .timeout = 10s});
  const auto waited = std::chrono::steady_clock::now() - t0;
  opener.join();
  EXPECT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_LT(waited, 2s);
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorTasks, ::testing::ValuesIn(all_storage_factories()),
                         factory_name);

}  // namespace
}  // namespace durable_execution::testing
