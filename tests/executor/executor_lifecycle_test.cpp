// SPEC.md §10 "Executor": options, lifecycle, registration, not-found, logging, stats, faults.

#include <string_view>

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using ExecutorLifecycle = ExecutorTest;

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const DurableExecutionError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST_P(ExecutorLifecycle, InvalidOptionsThrowNamingTheField) {
  auto bad = [&](auto mutate, std::string_view field) {
    auto o = fast_options();
    mutate(o);
    const auto msg = error_of([&] { DurableExecutor e{storage(), o}; });
    EXPECT_NE(msg.find("Invalid options"), std::string::npos) << msg;
    EXPECT_NE(msg.find(field), std::string::npos) << msg;
  };
  bad([](auto& o) { o.max_concurrent_task_executions = 0; }, "max_concurrent_task_executions");
  bad([](auto& o) { o.max_task_executions_per_batch = -1; }, "max_task_executions_per_batch");
  bad([](auto& o) { o.close_finished_task_executions_batch_size = 101; },
      "close_finished_task_executions_batch_size");
  bad([](auto& o) { o.mark_finished_task_executions_as_close_status_ready_batch_size = 201; },
      "mark_finished_task_executions_as_close_status_ready_batch_size");
  bad([](auto& o) { o.max_children_per_task_execution = 1001; }, "max_children_per_task_execution");
  bad([](auto& o) { o.max_serialized_input_data_size = 1'048'577; },
      "max_serialized_input_data_size");
  bad([](auto& o) { o.max_serialized_output_data_size = 1023; }, "max_serialized_output_data_size");
  bad([](auto& o) { o.storage_max_retry_attempts = 11; }, "storage_max_retry_attempts");
  bad([](auto& o) { o.background_process_intra_batch_sleep = 0ms; },
      "background_process_intra_batch_sleep");
  bad([](auto& o) { o.expire_leeway = -1ms; }, "expire_leeway");
  bad([](auto& o) { o.min_worker_threads = -1; }, "min_worker_threads");
  bad(
      [](auto& o) {
        o.max_concurrent_task_executions = 4;
        o.min_worker_threads = 5;
      },
      "min_worker_threads");
}

TEST_P(ExecutorLifecycle, ShutdownIsIdempotentAndBlocksRegistrationAndEnqueue) {
  DurableExecutor executor{storage(), fast_options()};
  auto t = executor.task({.id = "t", .timeout = 1s}, [](const int& x) { return x; });
  executor.start();
  executor.start();  // idempotent
  auto handle = executor.enqueue_task(t, 1);
  ASSERT_EQ(handle.wait_and_get_finished_execution(bounded_wait()).status,
            TaskExecutionStatus::completed);
  executor.shutdown();
  executor.shutdown();
  EXPECT_TRUE(executor.is_shutdown());
  EXPECT_EQ(error_of([&] { (void)executor.task({.id = "u", .timeout = 1s}, [] {}); }),
            "Durable executor shutdown");
  EXPECT_EQ(error_of([&] { (void)executor.enqueue_task(t, 2); }), "Durable executor shutdown");
  EXPECT_THROW(executor.start(), DurableExecutionError);
  // Handles keep working after shutdown: they read the storage.
  EXPECT_EQ(handle.get_execution().output, 1);
  EXPECT_NO_THROW((void)executor.get_task_execution_handle(t, handle.execution_id()));
}

TEST_P(ExecutorLifecycle, RegistrationRejectsBadDefinitionsAndDuplicates) {
  DurableExecutor executor{storage(), fast_options()};
  auto noop = [] {};
  EXPECT_EQ(error_of([&] { (void)executor.task({.id = "", .timeout = 1s}, noop); }),
            "Task id cannot be empty");
  EXPECT_NE(error_of([&] {
              (void)executor.task({.id = "a-b", .timeout = 1s}, noop);
            }).find("alphanumeric"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              (void)executor.task({.id = std::string(256, 'a'), .timeout = 1s}, noop);
            }).find("255"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              (void)executor.task({.id = "a", .timeout = -1ms}, noop);
            }).find("Invalid timeout value for task a"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              (void)executor.task({.id = "a", .timeout = 0ms}, noop);
            }).find("Invalid timeout value"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              (void)executor.task({.id = "a", .timeout = 1s, .sleep_before_run = -1ms}, noop);
            }).find("Invalid sleep ms before run for task a"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              (void)executor.task({.id = "a", .timeout = 1s, .retry = {.max_attempts = -1}}, noop);
            }).find("Invalid retry options for task a"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              (void)executor.task(
                  {.id = "a", .timeout = 1s, .retry = {.max_attempts = 1, .delay_multiplier = 20}},
                  noop);
            }).find("delay_multiplier"),
            std::string::npos);
  (void)executor.task({.id = "a", .timeout = 1s}, noop);
  EXPECT_EQ(error_of([&] { (void)executor.task({.id = "a", .timeout = 1s}, noop); }),
            "Task a already exists. Use unique ids for tasks");
  EXPECT_EQ(executor.stats().registered_tasks_count, 1);
}

TEST_P(ExecutorLifecycle, NotFoundErrors) {
  DurableExecutor old_executor{storage(), fast_options()};
  auto old_task = old_executor.task({.id = "test", .timeout = 1s}, [](const int& x) { return x; });
  old_executor.shutdown();

  DurableExecutor executor{storage(), fast_options()};
  // A descriptor from another executor that this one never registered.
  try {
    (void)executor.enqueue_task(old_task, 1);
    FAIL() << "expected not found";
  } catch (const DurableExecutionNotFoundError& e) {
    EXPECT_NE(std::string{e.what()}.find("Task test not found"), std::string::npos);
    EXPECT_FALSE(e.is_retryable());
  }
  auto a = executor.task({.id = "a", .timeout = 1s}, [](const int& x) { return x; });
  auto b = executor.task({.id = "b", .timeout = 1s}, [](const int& x) { return x; });
  EXPECT_THROW((void)executor.get_task_execution_handle(old_task, "te_missing"),
               DurableExecutionNotFoundError);
  EXPECT_THROW((void)executor.get_task_execution_handle(a, "te_missing"),
               DurableExecutionNotFoundError);
  auto h = executor.enqueue_task(a, 1);
  EXPECT_THROW((void)executor.get_task_execution_handle(b, h.execution_id()),
               DurableExecutionNotFoundError);
  EXPECT_NO_THROW((void)executor.get_task_execution_handle(a, h.execution_id()));
  // A deleted record: get and wait raise not-found.
  storage().delete_by_id({h.execution_id()});
  EXPECT_THROW((void)h.get_execution(), DurableExecutionNotFoundError);
  EXPECT_THROW((void)h.wait_and_get_finished_execution(bounded_wait(1s)),
               DurableExecutionNotFoundError);
}

TEST_P(ExecutorLifecycle, NothingIsWrittenForBadEnqueues) {
  auto o = fast_options();
  o.max_serialized_input_data_size = 1000;
  DurableExecutor executor{storage(), o};
  auto t = executor.task({.id = "t", .timeout = 1s}, [](const std::string& s) { return s.size(); });
  EXPECT_NE(error_of([&] {
              (void)executor.enqueue_task(t, std::string(2000, 'x'));
            }).find("exceeds maximum allowed size"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              (void)executor.enqueue_task(t, "x", EnqueueOptions{.timeout = 0ms});
            }).find("Invalid timeout value"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              (void)executor.enqueue_task(
                  t, "x", EnqueueOptions{.retry = RetryOptions{.max_attempts = 101}});
            }).find("Invalid retry options"),
            std::string::npos);
  // Nothing reached the storage: the ready claim finds nothing.
  auto rows = storage().update_by_status_and_start_at_less_than_and_return(
      {.status = TaskExecutionStatus::ready,
       .start_at_less_than = now_timestamp() + 1h,
       .update = normalize_update(now_timestamp(), TaskExecutionUpdate{}),
       .update_expires_at_with_started_at = now_timestamp(),
       .limit = 100});
  EXPECT_TRUE(rows.empty());
}

TEST_P(ExecutorLifecycle, InputOverOneMegabyteIsRejectedAtEnqueue) {
  DurableExecutor executor{storage(), fast_options()};
  auto t = executor.task({.id = "t", .timeout = 1s}, [](const std::string& s) { return s.size(); });
  EXPECT_THROW((void)executor.enqueue_task(t, std::string(1024 * 1024 + 1000, 'x')),
               DurableExecutionError);
}

TEST_P(ExecutorLifecycle, LogLevelsFilterAndDebugLogsRegistration) {
  std::mutex m;
  std::vector<std::pair<LogLevel, std::string>> logs;
  auto sink = [&](LogLevel level, std::string_view msg) {
    std::lock_guard lock(m);
    logs.emplace_back(level, std::string{msg});
  };
  {
    auto o = fast_options();
    o.log_level = LogLevel::info;
    o.log_sink = sink;
    DurableExecutor executor{storage(), o};
    (void)executor.task({.id = "t", .timeout = 1s}, [] {});
  }
  {
    std::lock_guard lock(m);
    for (const auto& [level, msg] : logs) EXPECT_NE(level, LogLevel::debug) << msg;
    logs.clear();
  }
  {
    auto o = fast_options();
    o.log_level = LogLevel::debug;
    o.log_sink = sink;
    DurableExecutor executor{storage(), o};
    (void)executor.task({.id = "t2", .timeout = 1s}, [] {});
  }
  std::lock_guard lock(m);
  bool registered = false;
  for (const auto& [level, msg] : logs) {
    registered = registered || (level == LogLevel::debug && msg.find("t2") != std::string::npos);
  }
  EXPECT_TRUE(registered);
}

TEST_P(ExecutorLifecycle, StatsMatchConfigurationAndCountStorageCalls) {
  auto o = fast_options();
  o.max_concurrent_task_executions = 7;
  o.max_task_executions_per_batch = 3;
  DurableExecutor executor{storage(), o};
  auto t = executor.task({.id = "t", .timeout = 1s}, [] { return 1; });
  executor.start();
  auto h = executor.enqueue_task(t);
  ASSERT_EQ(h.wait_and_get_finished_execution(bounded_wait()).status,
            TaskExecutionStatus::completed);
  // A process records its batch after handing the work on, so the waiter may see the task
  // finished a moment before the stats do.
  ASSERT_TRUE(wait_until([&] {
    auto st = executor.stats();
    return st.processes.at("ready").items >= 1 && st.processes.at("complete").items >= 1;
  }));
  auto s = executor.stats();
  EXPECT_EQ(s.expire_leeway, 300'000ms);
  EXPECT_EQ(s.max_concurrent_task_executions, 7);
  EXPECT_EQ(s.max_task_executions_per_batch, 3);
  EXPECT_EQ(s.max_children_per_task_execution, 1000);
  EXPECT_EQ(s.max_serialized_input_data_size, 1'048'576);
  EXPECT_EQ(s.max_serialized_output_data_size, 1'048'576);
  EXPECT_EQ(s.registered_tasks_count, 1);
  EXPECT_FALSE(s.is_shutdown);
  EXPECT_FALSE(s.storage_calls.empty());
  EXPECT_FALSE(s.storage_calls_per_second.empty());
  EXPECT_GE(s.processes.at("ready").items, 1);
  EXPECT_GE(s.processes.at("complete").items, 1);
  EXPECT_GE(s.worker_threads, 1);
  executor.shutdown();
  EXPECT_TRUE(executor.stats().is_shutdown);
}

TEST_P(ExecutorLifecycle, DestructorShutsDownWithTasksRunning) {
  Gate started;
  auto h = [&] {
    DurableExecutor executor{storage(), fast_options()};
    auto t = executor.task({.id = "t", .timeout = 10s}, [&](TaskRunContext& ctx) {
      started.open();
      Gate never;
      (void)never.wait(ctx.stop_token(), 5s);
      return ctx.stop_reason() == StopReason::shutdown ? std::string{"stopped"}
                                                       : std::string{"other"};
    });
    executor.start();
    auto handle = executor.enqueue_task(t);
    EXPECT_TRUE(started.wait());
    return handle;
  }();  // ~DurableExecutor: stop loops, stop token fires, result recorded
  auto e = h.get_execution();
  EXPECT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, "stopped");
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorLifecycle, ::testing::ValuesIn(all_storage_factories()),
                         factory_name);

}  // namespace
}  // namespace durable_execution::testing
