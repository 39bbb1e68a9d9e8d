// Issue 10 on every storage: inputs and outputs nested too deep are refused without recursing on
// them (item 4a), extreme durations are refused at validation and saturate everywhere else (item
// 6), non-finite outputs fail the run and undecodable outputs keep the status readable (item 7).
// Run under the asan preset, the extreme-value tests are the UBSan test: any overflow aborts.

#include <atomic>
#include <cmath>
#include <limits>

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using ExecutorPoisonValues = ExecutorTest;
using nlohmann::json;

std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}
json deep_value(std::size_t depth) { return json::parse(nested_arrays(depth)); }

std::size_t depth_of(const json& j) {
  std::size_t depth = 0;
  const json* p = &j;
  while (p->is_array() && !p->empty()) {
    ++depth;
    p = &(*p)[0];
  }
  return depth + (p->is_array() ? 1 : 0);
}

/** Counts the writes that reach the wrapped storage (rejected calls must make none). */
class InsertCountingStorage final : public ForwardingTaskExecutionsStorage {
 public:
  using ForwardingTaskExecutionsStorage::ForwardingTaskExecutionsStorage;
  void insert_many(const std::vector<TaskExecutionRecord>& executions) override {
    inserts_ += static_cast<int>(executions.size());
    ForwardingTaskExecutionsStorage::insert_many(executions);
  }
  [[nodiscard]] int inserts() const { return inserts_.load(); }

 private:
  std::atomic<int> inserts_{0};
};

/** Inserts a record as another program (or an older version) would have written it. */
TaskExecutionRecord insert_raw(TaskExecutionsStorage& storage, const std::string& task_id,
                               std::string input, std::chrono::milliseconds timeout = 5s,
                               RetryOptions retry = {}) {
  NewTaskExecution n;
  n.task_id = task_id;
  n.execution_id = generate_execution_id();
  n.timeout = timeout;
  n.retry_options = retry;
  n.input = std::move(input);
  auto r = make_task_execution_record(now_timestamp(), std::move(n));
  storage.insert_many({r});
  return r;
}

// ---- item 4a: nesting ---------------------------------------------------------------------------

TEST_P(ExecutorPoisonValues, InputsNestedTooDeepAreRefusedAtEnqueueAndNothingIsStored) {
  InsertCountingStorage counting{storage()};
  DurableExecutor executor{counting, fast_options()};
  auto size = executor.task({.id = "size", .timeout = 5s},
                            [](const json& j) { return static_cast<int>(j.size()); });
  executor.start();
  for (const std::size_t depth : {std::size_t{513}, std::size_t{100'000}}) {
    // An lvalue: the typed front must not copy it (a recursive copy) before checking it.
    const json input = deep_value(depth);
    try {
      (void)executor.enqueue_task(size, input);
      ADD_FAILURE() << "a " << depth << "-deep input must be refused";
    } catch (const DurableExecutionError& e) {
      EXPECT_FALSE(e.is_retryable());
      EXPECT_NE(std::string{e.what()}.find("nesting depth exceeds the maximum of 512"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(counting.inserts(), 0);
  // A child declared with such an input fails its parent, clearly, and inserts no child.
  auto parent = executor.parent_task({.id = "parent", .timeout = 5s}, [&](const int&) {
    ParentRunResult<int> r{0, {}};
    r.children.push_back(child(size, deep_value(100'000)));
    return r;
  });
  auto h = executor.enqueue_task(parent, 1);
  const auto done = h.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(done.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(done.error.has_value());
  EXPECT_NE(done.error->message.find("Error serializing value: nesting depth"), std::string::npos)
      << done.error->message;
  EXPECT_EQ(counting.inserts(), 1);
}

TEST_P(ExecutorPoisonValues, ValuesAtTheNestingLimitRoundTrip) {
  DurableExecutor executor{storage(), fast_options()};
  auto echo = executor.task({.id = "echo", .timeout = 5s}, [](const json& j) { return j; });
  executor.start();
  const auto value = deep_value(max_serialized_nesting_depth);
  const auto done =
      executor.enqueue_task(echo, value).wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(done.status, TaskExecutionStatus::completed);
  ASSERT_TRUE(done.output.has_value());
  EXPECT_EQ(depth_of(*done.output), max_serialized_nesting_depth);
}

TEST_P(ExecutorPoisonValues, AnOutputNestedTooDeepFailsTheRunWithoutCrashingTheExecutor) {
  DurableExecutor executor{storage(), fast_options()};
  auto deep = executor.task({.id = "deep", .timeout = 5s}, [](const int& depth) {
    return deep_value(static_cast<std::size_t>(depth));
  });
  executor.start();
  for (const int depth : {513, 100'000}) {
    const auto done =
        executor.enqueue_task(deep, depth).wait_and_get_finished_execution(bounded_wait());
    EXPECT_EQ(done.status, TaskExecutionStatus::failed) << depth;
    ASSERT_TRUE(done.error.has_value());
    EXPECT_FALSE(done.error->is_retryable);
    EXPECT_NE(done.error->message.find("Error serializing value: nesting depth exceeds"),
              std::string::npos)
        << done.error->message;
  }
}

TEST_P(ExecutorPoisonValues, AStoredInputNestedTooDeepFailsItsRunAndEveryOtherExecutionRuns) {
  DurableExecutor executor{storage(), fast_options()};
  auto size = executor.task({.id = "size", .timeout = 5s},
                            [](const json& j) { return static_cast<int>(j.size()); });
  // Written by another program: 100,000 levels, which nlohmann's recursive copy cannot take.
  const auto poisoned = insert_raw(storage(), "size", nested_arrays(100'000));
  executor.start();
  auto healthy = executor.enqueue_task(size, json::array({1, 2, 3}));
  const auto h_done = healthy.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(h_done.status, TaskExecutionStatus::completed);
  EXPECT_EQ(h_done.output, 3);
  const auto p_done = executor.get_task_execution_handle(size, poisoned.execution_id)
                          .wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(p_done.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(p_done.error.has_value());
  EXPECT_FALSE(p_done.error->is_retryable);
  EXPECT_NE(p_done.error->message.find("Error deserializing value: nesting depth exceeds"),
            std::string::npos)
      << p_done.error->message;
}

// ---- item 7: outputs that cannot be read back ---------------------------------------------------

TEST_P(ExecutorPoisonValues, NonFiniteOutputsFailTheRunInsteadOfCompletingUnreadably) {
  DurableExecutor executor{storage(), fast_options()};
  auto ratio = executor.task({.id = "ratio", .timeout = 5s}, [](const int& which) {
    switch (which) {
      case 0:
        return std::nan("");
      case 1:
        return std::numeric_limits<double>::infinity();
      case 2:
        return -std::numeric_limits<double>::infinity();
      default:
        return 0.5;
    }
  });
  executor.start();
  for (int which = 0; which < 3; ++which) {
    TaskExecution<double> done;
    ASSERT_NO_THROW(
        done = executor.enqueue_task(ratio, which).wait_and_get_finished_execution(bounded_wait()));
    EXPECT_EQ(done.status, TaskExecutionStatus::failed) << which;
    ASSERT_TRUE(done.error.has_value());
    EXPECT_FALSE(done.error->is_retryable);
    EXPECT_NE(done.error->message.find("Error serializing value: a number is NaN or infinite"),
              std::string::npos)
        << done.error->message;
  }
  EXPECT_EQ(executor.enqueue_task(ratio, 3).wait_and_get_finished_execution(bounded_wait()).output,
            0.5);
  // A non-finite input is refused at enqueue.
  auto half = executor.task({.id = "half", .timeout = 5s}, [](const double& d) { return d / 2; });
  EXPECT_THROW((void)executor.enqueue_task(half, std::nan("")), DurableExecutionError);
}

TEST_P(ExecutorPoisonValues, AStoredOutputThatDoesNotDecodeKeepsTheStatusAndSaysWhy) {
  DurableExecutor executor{storage(), fast_options()};
  auto count = executor.task({.id = "count", .timeout = 5s}, [](const int& x) { return x; });
  // A completed record whose output is not an int (an older version of the task, or a NaN
  // stored as null by an older version of this library).
  for (const char* stored : {"\"abc\"", "null"}) {
    auto r = insert_raw(storage(), "count", "1");
    TaskExecutionUpdate u;
    u.status = TaskExecutionStatus::completed;
    u.output = stored;
    storage().update_many_by_id({{r.execution_id, {}, normalize_update(now_timestamp(), u)}});
    auto handle = executor.get_task_execution_handle(count, r.execution_id);
    TaskExecution<int> view;
    ASSERT_NO_THROW(view = handle.get_execution());
    EXPECT_EQ(view.status, TaskExecutionStatus::completed);
    EXPECT_FALSE(view.output.has_value());
    ASSERT_TRUE(view.output_error.has_value());
    EXPECT_NE(view.output_error->message.find("Error deserializing value"), std::string::npos)
        << view.output_error->message;
    ASSERT_NO_THROW(view = handle.wait_and_get_finished_execution(bounded_wait()));
    EXPECT_EQ(view.status, TaskExecutionStatus::completed);
    EXPECT_TRUE(view.output_error.has_value());
  }
}

// ---- item 6: extreme durations ------------------------------------------------------------------

TEST_P(ExecutorPoisonValues, DurationsBeyondTheDocumentedBoundsAreRefusedAndNothingIsStored) {
  const auto too_long = max_duration + 1ms;
  auto leeway = fast_options();
  leeway.expire_leeway = too_long;
  EXPECT_THROW(DurableExecutor(storage(), leeway), DurableExecutionError);
  auto polling = fast_options();
  polling.background_process_intra_batch_sleep = std::chrono::milliseconds::max();
  EXPECT_THROW(DurableExecutor(storage(), polling), DurableExecutionError);

  InsertCountingStorage counting{storage()};
  DurableExecutor executor{counting, fast_options()};
  EXPECT_THROW(
      (void)executor.task({.id = "t1", .timeout = too_long}, [](const int& x) { return x; }),
      DurableExecutionError);
  EXPECT_THROW((void)executor.task({.id = "t2", .timeout = std::chrono::milliseconds::max()},
                                   [](const int& x) { return x; }),
               DurableExecutionError);
  EXPECT_THROW((void)executor.task({.id = "t3", .timeout = 1s, .sleep_before_run = too_long},
                                   [](const int& x) { return x; }),
               DurableExecutionError);
  auto ok = executor.task({.id = "ok", .timeout = max_duration}, [](const int& x) { return x; });
  executor.start();
  for (const EnqueueOptions& bad :
       {EnqueueOptions{.timeout = std::chrono::milliseconds::max()},
        EnqueueOptions{.sleep_before_run = std::chrono::milliseconds::max()},
        EnqueueOptions{.sleep_before_run = too_long},
        EnqueueOptions{.retry = RetryOptions{1, std::chrono::milliseconds::max(), 2.0, {}}}}) {
    try {
      (void)executor.enqueue_task(ok, 1, bad);
      ADD_FAILURE() << "an override beyond the bounds must be refused";
    } catch (const DurableExecutionError& e) {
      EXPECT_NE(std::string{e.what()}.find("must be"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(counting.inserts(), 0);
  // At the bounds, everything works (a 10-year timeout, lease and sleeping expiry).
  EXPECT_EQ(executor.enqueue_task(ok, 7).wait_and_get_finished_execution(bounded_wait()).output, 7);
}

TEST_P(ExecutorPoisonValues, ExtremeStoredValuesSaturateAndEveryOtherExecutionRuns) {
  auto options = fast_options();
  options.expire_leeway = max_duration;
  DurableExecutor executor{storage(), options};
  std::atomic<int> failing_runs{0};
  auto sleepy = executor.task({.id = "sleepy", .timeout = 5s}, [](const int& ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds{ms});
    return ms;
  });
  auto flaky = executor.task({.id = "flaky", .timeout = 5s}, [&](const int&) -> int {
    ++failing_runs;
    throw std::runtime_error("try again");
  });
  auto webhook = executor.sleeping_task<std::string>({.id = "webhook", .timeout = max_duration});
  // As another program might have written them: a timeout of 2^63 - 1 ms (the run's deadline
  // and lease saturate, so it completes), the smallest timeout (it times out at once), retries
  // whose back-off would be 10^99 hours, and a start 2^63 - 1 ms away (never due).
  const auto forever = insert_raw(storage(), "sleepy", "30", std::chrono::milliseconds::max());
  const auto never = insert_raw(storage(), "sleepy", "0", std::chrono::milliseconds::min());
  const auto backoff =
      insert_raw(storage(), "flaky", "0", 5s,
                 RetryOptions{100, std::chrono::milliseconds{3'600'000}, 10.0, {}});
  {
    TaskExecutionUpdate u;
    u.retry_attempts = 99;
    storage().update_many_by_id({{backoff.execution_id, {}, normalize_update(now_timestamp(), u)}});
  }
  NewTaskExecution far;
  far.task_id = "sleepy";
  far.execution_id = generate_execution_id();
  far.timeout = 5s;
  far.sleep_before_run = std::chrono::milliseconds::max();
  far.input = "1";
  const auto far_record = make_task_execution_record(now_timestamp(), far);
  EXPECT_EQ(to_unix_ms(far_record.start_at), std::numeric_limits<std::int64_t>::max());
  storage().insert_many({far_record});

  executor.start();
  const auto started = now_timestamp();
  auto sleeping = executor.enqueue_task(webhook, "order_1");
  auto healthy = executor.enqueue_task(sleepy, 5);
  EXPECT_EQ(healthy.wait_and_get_finished_execution(bounded_wait()).output, 5);
  const auto f = executor.get_task_execution_handle(sleepy, forever.execution_id)
                     .wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(f.status, TaskExecutionStatus::completed);
  EXPECT_EQ(f.output, 30);
  const auto n = executor.get_task_execution_handle(sleepy, never.execution_id)
                     .wait_and_get_finished_execution(bounded_wait());
  EXPECT_TRUE(n.is_finished());
  ASSERT_TRUE(wait_until([&] { return failing_runs.load() >= 1; }));
  ASSERT_TRUE(wait_until([&] {
    return executor.get_task_execution_handle(flaky, backoff.execution_id).get_execution().status ==
           TaskExecutionStatus::ready;
  }));
  const auto b = executor.get_task_execution_handle(flaky, backoff.execution_id).get_execution();
  EXPECT_EQ(b.retry_attempts, 100);
  auto stored = storage().get_many_by_id({{backoff.execution_id, {}}}).at(0);
  ASSERT_TRUE(stored.has_value());
  // The back-off saturated at the maximum duration (10 years), not at a wrapped-around time.
  EXPECT_GE(stored->start_at, started + max_duration - 1min);
  EXPECT_LE(stored->start_at, now_timestamp() + max_duration);
  EXPECT_EQ(
      executor.get_task_execution_handle(sleepy, far_record.execution_id).get_execution().status,
      TaskExecutionStatus::ready);
  const auto s = sleeping.get_execution();
  EXPECT_EQ(s.status, TaskExecutionStatus::running);
  ASSERT_TRUE(s.expires_at.has_value());
  EXPECT_GE(*s.expires_at, started + max_duration);
  // Waits whose timeout and polling interval are at the limits of milliseconds.
  const auto done = executor.enqueue_task(sleepy, 1).wait_and_get_finished_execution(
      {.polling_interval = std::chrono::milliseconds::max(),
       .timeout = std::chrono::milliseconds::max()});
  EXPECT_EQ(done.output, 1);
  executor.shutdown();
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorPoisonValues,
                         ::testing::ValuesIn(all_storage_factories()), factory_name);

}  // namespace
}  // namespace durable_execution::testing
