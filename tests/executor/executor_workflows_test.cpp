// The typed workflow front (issue 4 on the engine): parent tasks with and without finalize,
// sequential chains, polling tasks, sleeping tasks; SPEC.md §10 "Parent tasks", "Tasks" 10-14
// and "Concurrency".

#include <set>

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using ExecutorWorkflows = ExecutorTest;

TEST_P(ExecutorWorkflows, ParentWithTwoChildrenAndNoFinalize) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> runs{0};
  auto square = executor.task({.id = "square", .timeout = 1s}, [&](const int& x) {
    ++runs;
    return x * x;
  });
  auto parent = executor.parent_task({.id = "parent", .timeout = 1s}, [&](const std::string& s) {
    ++runs;
    return ParentRunResult<std::string>{s + "!", {child(square, 3), child(square, 4)}};
  });
  static_assert(std::is_same_v<decltype(parent), Task<std::string, ParentTaskOutput<std::string>>>);
  auto empty_parent = executor.parent_task({.id = "empty_parent", .timeout = 1s}, [](const int&) {
    return ParentRunResult<int>{7, {}};
  });
  executor.start();
  auto e = executor.enqueue_task(parent, "hi").wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output->output, "hi!");
  ASSERT_EQ(e.output->children.size(), 2U);
  EXPECT_EQ(e.output->children[0].output_as<int>(), 9);
  EXPECT_EQ(e.output->children[1].output_as<int>(), 16);
  EXPECT_EQ(e.output->children[0].task_id, "square");
  EXPECT_FALSE(e.output->children[0].execution_id.empty());
  EXPECT_EQ(runs.load(), 3);
  auto e2 = executor.enqueue_task(empty_parent, 1).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e2.output->output, 7);
  EXPECT_TRUE(e2.output->children.empty());
}

TEST_P(ExecutorWorkflows, FinalizeFunctionAndFinalizeTaskCombineOutputs) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> runs{0};
  auto greet = executor.task({.id = "greet", .timeout = 1s}, [&](const std::string& name) {
    ++runs;
    return "Hello, " + name;
  });
  auto run_parent = [&](const std::string&) {
    ++runs;
    return ParentRunResult<std::string>{"greetings", {child(greet, "A"), child(greet, "B")}};
  };
  auto combine = [](const ParentTaskOutput<std::string>& p) {
    std::string out = p.output + ":";
    for (const auto& c : p.children) out += " " + c.output_as<std::string>();
    return out;
  };
  auto with_fn = executor.parent_task({.id = "with_fn", .timeout = 1s}, run_parent, combine);
  static_assert(std::is_same_v<decltype(with_fn), Task<std::string, std::string>>);
  auto fin_task =
      executor.task({.id = "fin", .timeout = 1s}, [&](const ParentTaskOutput<std::string>& p) {
        ++runs;
        return combine(p);
      });
  auto with_task = executor.parent_task({.id = "with_task", .timeout = 1s}, run_parent, fin_task);
  static_assert(std::is_same_v<decltype(with_task), Task<std::string, std::string>>);
  executor.start();
  auto a = executor.enqueue_task(with_fn, "x").wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(a.output, "greetings: Hello, A Hello, B");
  EXPECT_EQ(runs.load(), 3);
  auto b = executor.enqueue_task(with_task, "x").wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(b.output, "greetings: Hello, A Hello, B");
  EXPECT_EQ(runs.load(), 7);
}

TEST_P(ExecutorWorkflows, FailingFinalizeGivesFinalizeFailedWithTheRightFlags) {
  DurableExecutor executor{storage(), fast_options()};
  auto failing = executor.task({.id = "failing", .timeout = 1s},
                               []() -> int { throw DurableExecutionError::non_retryable("no"); });
  auto run_parent = [&](TaskRunContext&) { return ParentRunResult<Empty>{{}, {child(failing)}}; };
  auto fn_parent = executor.parent_task(
      {.id = "fn_parent", .timeout = 1s}, run_parent, [](const ParentTaskOutput<Empty>& p) -> int {
        if (!p.children[0].is_completed()) {
          throw DurableExecutionError::non_retryable("Children failed");
        }
        return 1;
      });
  auto throwing_fin = executor.task(
      {.id = "throwing_fin", .timeout = 1s},
      [](const ParentTaskOutput<Empty>&) -> int { throw std::runtime_error("Failed"); });
  auto task_parent =
      executor.parent_task({.id = "task_parent", .timeout = 1s}, run_parent, throwing_fin);
  executor.start();
  auto a = executor.enqueue_task(fn_parent).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(a.status, TaskExecutionStatus::finalize_failed);
  EXPECT_EQ(a.error->message, "Children failed");
  EXPECT_FALSE(a.error->is_retryable);
  auto b = executor.enqueue_task(task_parent).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(b.status, TaskExecutionStatus::finalize_failed);
  EXPECT_EQ(b.error->message, "Failed");
  EXPECT_TRUE(b.error->is_retryable);  // a finalize task's error passes through unchanged
}

TEST_P(ExecutorWorkflows, NestedFinalizeParentRunsSevenTimes) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> runs{0};
  auto leaf = executor.task({.id = "leaf", .timeout = 1s}, [&](const std::string& s) {
    ++runs;
    return s;
  });
  auto concat = [](const ParentTaskOutput<std::string>& p) {
    std::string out = p.output;
    for (const auto& c : p.children) out += c.output_as<std::string>();
    return out;
  };
  auto inner_fin = executor.task({.id = "inner_fin", .timeout = 1s},
                                 [&](const ParentTaskOutput<std::string>& p) {
                                   ++runs;
                                   return concat(p);
                                 });
  // The finalize task of the root is itself a parent with children and its own finalize.
  auto fin_parent = executor.parent_task(
      {.id = "fin_parent", .timeout = 1s},
      [&](const ParentTaskOutput<std::string>& p) {
        ++runs;
        return ParentRunResult<std::string>{concat(p), {child(leaf, "c"), child(leaf, "d")}};
      },
      inner_fin);
  auto root = executor.parent_task(
      {.id = "root", .timeout = 1s},
      [&](const std::string& s) {
        ++runs;
        return ParentRunResult<std::string>{s, {child(leaf, "a"), child(leaf, "b")}};
      },
      fin_parent);
  executor.start();
  auto e = executor.enqueue_task(root, "r").wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, "rabcd");
  EXPECT_EQ(runs.load(), 7);
}

TEST_P(ExecutorWorkflows, ValidatedParentInput) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> runs{0};
  auto leaf = executor.task({.id = "leaf", .timeout = 1s}, [&](const int& x) {
    ++runs;
    return x;
  });
  auto parent = executor
                    .validate_input([](const std::string& raw) {
                      if (raw.empty()) throw std::invalid_argument("empty");
                      return static_cast<int>(raw.size());
                    })
                    .parent_task(
                        {.id = "test", .timeout = 1s},
                        [&](const int& n) {
                          ++runs;
                          return ParentRunResult<int>{n, {child(leaf, n)}};
                        },
                        [](const ParentTaskOutput<int>& p) {
                          return p.output + p.children[0].output_as<int>();
                        });
  static_assert(std::is_same_v<decltype(parent), Task<std::string, int>>);
  executor.start();
  EXPECT_EQ(
      executor.enqueue_task(parent, "abc").wait_and_get_finished_execution(bounded_wait()).output,
      6);
  EXPECT_EQ(runs.load(), 2);
  auto bad = executor.enqueue_task(parent, "").wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(bad.status, TaskExecutionStatus::failed);
  EXPECT_EQ(bad.error->message, "Invalid input to task test: empty");
  EXPECT_EQ(runs.load(), 2);
}

TEST_P(ExecutorWorkflows, SequentialTasksChainTypes) {
  DurableExecutor executor{storage(), fast_options()};
  auto parse = executor.task({.id = "parse", .timeout = 1s},
                             [](const std::string& s) { return std::stod(s); });
  auto above_ten =
      executor.task({.id = "above_ten", .timeout = 1s}, [](const double& d) { return d > 10.0; });
  auto seq = executor.sequential_tasks("seq", parse, above_ten);
  static_assert(std::is_same_v<decltype(seq), Task<std::string, bool>>);
  auto single = executor.sequential_tasks("single", parse);
  executor.start();
  EXPECT_EQ(
      executor.enqueue_task(seq, "10.5").wait_and_get_finished_execution(bounded_wait()).output,
      true);
  EXPECT_EQ(
      executor.enqueue_task(seq, "9.5").wait_and_get_finished_execution(bounded_wait()).output,
      false);
  EXPECT_EQ(
      executor.enqueue_task(single, "2.5").wait_and_get_finished_execution(bounded_wait()).output,
      2.5);
}

TEST_P(ExecutorWorkflows, SequentialFailureStopsTheChain) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> third{0};
  auto t1 = executor.task({.id = "t1", .timeout = 1s}, [](const int& x) { return x + 1; });
  auto t2 = executor.task({.id = "t2", .timeout = 1s}, [](const int&) -> int {
    throw DurableExecutionError::non_retryable("Task 2 failed");
  });
  auto t3 = executor.task({.id = "t3", .timeout = 1s}, [&](const int& x) {
    ++third;
    return x;
  });
  auto slow = executor.task({.id = "slow", .timeout = 10ms}, [](TaskRunContext& ctx, const int& x) {
    Gate never;
    (void)never.wait(ctx.stop_token(), 2s);
    return x;
  });
  auto seq = executor.sequential_tasks("seq", t1, t2, t3);
  auto seq_timeout = executor.sequential_tasks("seq_timeout", slow, t1);
  executor.start();
  auto e = executor.enqueue_task(seq, 1).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::finalize_failed);
  EXPECT_EQ(e.error->message, "Task at index 1 failed: Task 2 failed");
  EXPECT_EQ(third.load(), 0);
  auto f = executor.enqueue_task(seq_timeout, 1).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(f.status, TaskExecutionStatus::finalize_failed);
  EXPECT_EQ(f.error->message, "Task at index 0 failed: Task execution timed out");
}

TEST_P(ExecutorWorkflows, ASleepingFirstStepIsWokenByTheIdTheChainWasEnqueuedWith) {
  DurableExecutor executor{storage(), fast_options()};
  auto hook = executor.sleeping_task<int>({.id = "hook", .timeout = 10s});
  auto twice = executor.task({.id = "twice", .timeout = 1s}, [](const int& x) { return x * 2; });
  auto chain = executor.sequential_tasks("hook_then_twice", hook, twice);
  static_assert(std::is_same_v<decltype(chain), Task<std::string, int>>);
  executor.start();
  auto h = executor.enqueue_task(chain, "order_42");
  ASSERT_TRUE(wait_until(
      [&] { return h.get_execution().status == TaskExecutionStatus::waiting_for_children; }));
  // The sleeping step's row is inserted with the parent's children: woken by the same id.
  ASSERT_TRUE(wait_until([&] {
    try {
      (void)executor.wakeup_sleeping_task_execution(hook, "order_42", 21);
      return true;
    } catch (const DurableExecutionNotFoundError&) {
      return false;
    }
  }));
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, 42);
}

TEST_P(ExecutorWorkflows, EveryStepOfAChainMustBeRegisteredFirst) {
  DurableExecutor executor{storage(), fast_options()};
  auto a = executor.task({.id = "a", .timeout = 1s}, [](const int& x) { return x; });
  const auto unknown = Task<int, int>::reference({.id = "nope_task", .timeout = 1s});
  EXPECT_THROW((void)executor.sequential_tasks("unknown_last", a, unknown),
               DurableExecutionNotFoundError);
  EXPECT_THROW((void)executor.sequential_tasks("unknown_first", unknown, a),
               DurableExecutionNotFoundError);
  // Nothing was registered under the chains' ids: they can be registered properly.
  auto ok = executor.sequential_tasks("unknown_last", a, a);
  executor.start();
  EXPECT_EQ(executor.enqueue_task(ok, 5).wait_and_get_finished_execution(bounded_wait()).output, 5);
}

TEST_P(ExecutorWorkflows, PollingTask) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> polls{0};
  auto poll = executor.task({.id = "poll", .timeout = 1s}, [&](const int& target) {
    const int n = ++polls;
    return n >= target ? PollResult<int>{true, n * 10} : PollResult<int>{false, std::nullopt};
  });
  auto poll_error = executor.task({.id = "poll_error", .timeout = 1s}, []() -> PollResult<int> {
    throw DurableExecutionError::non_retryable("unknown error");
  });
  auto polling = executor.polling_task("polling", poll, 5, 5ms);
  auto polling_fn = executor.polling_task("polling_fn", poll, 2,
                                          [](std::int32_t attempt) { return attempt * 5ms; });
  auto polling_err = executor.polling_task("polling_err", poll_error, 3);
  EXPECT_THROW((void)executor.polling_task("bad", poll, 0), DurableExecutionError);
  executor.start();
  auto a = executor.enqueue_task(polling, 3).wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(a.status, TaskExecutionStatus::completed);
  EXPECT_TRUE(a.output->is_success);
  EXPECT_EQ(a.output->output, 30);
  polls = 0;
  auto b = executor.enqueue_task(polling_fn, 100).wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(b.status, TaskExecutionStatus::completed);
  EXPECT_FALSE(b.output->is_success);
  EXPECT_EQ(polls.load(), 2);
  auto c = executor.enqueue_task(polling_err).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(c.status, TaskExecutionStatus::finalize_failed);
  EXPECT_EQ(c.error->message, "Poll task poll_error failed: unknown error");
}

TEST_P(ExecutorWorkflows, SleepingTasks) {
  DurableExecutor executor{storage(), fast_options()};
  auto webhook = executor.sleeping_task<std::string>({.id = "webhook", .timeout = 10s});
  auto quick = executor.sleeping_task<int>({.id = "quick", .timeout = 50ms});
  auto parent = executor.parent_task(
      {.id = "parent", .timeout = 1s},
      [&](const std::string& uid) {
        return ParentRunResult<Empty>{{}, {child(webhook, uid)}};
      },
      [](const ParentTaskOutput<Empty>& p) {
        if (!p.children[0].is_completed()) {
          throw DurableExecutionError::non_retryable(p.children[0].error->message);
        }
        return p.children[0].output_as<std::string>();
      });
  executor.start();
  auto h = executor.enqueue_task(webhook, "uid_1");
  EXPECT_EQ(h.get_execution().status, TaskExecutionStatus::running);
  auto woken = executor.wakeup_sleeping_task_execution(webhook, "uid_1", "payload");
  EXPECT_EQ(woken.status, TaskExecutionStatus::completed);
  EXPECT_EQ(woken.output, "payload");
  auto h2 = executor.enqueue_task(webhook, "uid_2");
  h2.cancel();
  EXPECT_EQ(executor.wakeup_sleeping_task_execution(webhook, "uid_2", "late").status,
            TaskExecutionStatus::cancelled);
  auto timed =
      executor.enqueue_task(quick, "uid_3").wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(timed.status, TaskExecutionStatus::timed_out);
  // A sleeping child supplies its parent's output, or fails it.
  auto p1 = executor.enqueue_task(parent, "hook_1");
  auto p2 = executor.enqueue_task(parent, "hook_2");
  ASSERT_TRUE(wait_until([&] {
    return p1.get_execution().status == TaskExecutionStatus::waiting_for_children &&
           p2.get_execution().status == TaskExecutionStatus::waiting_for_children;
  }));
  (void)executor.wakeup_sleeping_task_execution(webhook, "hook_1", "from webhook");
  (void)executor.fail_sleeping_task_execution(webhook, "hook_2", "rejected");
  EXPECT_EQ(p1.wait_and_get_finished_execution(bounded_wait()).output, "from webhook");
  auto f = p2.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(f.status, TaskExecutionStatus::finalize_failed);
  EXPECT_EQ(f.error->message, "rejected");
}

TEST_P(ExecutorWorkflows, TwoExecutorsThousandChildrenDistinctOutputsInOrder) {
  auto o = fast_options();
  DurableExecutor e1{storage(), o};
  DurableExecutor e2{storage(), o};
  auto define = [](DurableExecutor& e) {
    auto c = e.task({.id = "child", .timeout = 5s}, [](const int& i) { return i * 2; });
    return e.parent_task({.id = "fan_out", .timeout = 5s}, [c](const int& n) {
      ParentRunResult<int> r{n, {}};
      for (int i = 0; i < n; ++i) r.children.push_back(child(c, i));
      return r;
    });
  };
  auto p1 = define(e1);
  (void)define(e2);
  e1.start();
  e2.start();
  auto small = e1.enqueue_task(p1, 3);
  auto big = e1.enqueue_task(p1, 1000);
  auto s = small.wait_and_get_finished_execution(bounded_wait(30s));
  ASSERT_EQ(s.status, TaskExecutionStatus::completed);
  EXPECT_EQ(s.output->children[2].output_as<int>(), 4);
  auto b = big.wait_and_get_finished_execution(bounded_wait(60s));
  ASSERT_EQ(b.status, TaskExecutionStatus::completed);
  ASSERT_EQ(b.output->children.size(), 1000U);
  std::set<int> outputs;
  for (std::size_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(b.output->children[i].output_as<int>(), static_cast<int>(i) * 2);
    outputs.insert(b.output->children[i].output_as<int>());
  }
  EXPECT_EQ(outputs.size(), 1000U);
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorWorkflows, ::testing::ValuesIn(all_storage_factories()),
                         factory_name);

}  // namespace
}  // namespace durable_execution::testing
