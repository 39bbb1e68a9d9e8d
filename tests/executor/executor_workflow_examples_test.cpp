// Workflow acceptance tests: the reference README's examples (SPEC.md §10 "Examples (README)")
// run end to end on every storage — retry, failing and partially failing children, sequential
// chains (helper and manual), parallel-in-sequence, recursion, polling (helper and manual), a
// webhook sleeping child, a 1,555-execution tree, and a parent's processing/close life cycle.

#include <deque>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using WorkflowExamples = ExecutorTest;

/** Throws "Children failed" unless every child completed (the README's finalize guard). */
void require_all_completed(const std::vector<ChildExecutionResult>& children) {
  for (const auto& c : children) {
    if (!c.is_completed()) throw DurableExecutionError::non_retryable("Children failed");
  }
}

TEST_P(WorkflowExamples, RetryCompletesOnTheThirdAttempt) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> runs{0};
  auto flaky = executor.task(
      {.id = "retry",
       .timeout = 1s,
       .retry = {.max_attempts = 2, .base_delay = 5ms, .delay_multiplier = 1.0}},
      [&](TaskRunContext& ctx) {
        ++runs;
        if (ctx.attempt() < 2) {
          throw std::runtime_error("Failed at attempt " + std::to_string(ctx.attempt()));
        }
        return ctx.attempt();
      });
  executor.start();
  auto e = executor.enqueue_task(flaky).wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, 2);
  EXPECT_EQ(e.retry_attempts, 2);
  EXPECT_EQ(runs.load(), 3);  // 3 total attempts
}

TEST_P(WorkflowExamples, FailingChildMakesFinalizeFailWithChildrenFailed) {
  DurableExecutor executor{storage(), fast_options()};
  auto ok = executor.task({.id = "child_ok", .timeout = 1s}, [](const int& x) { return x; });
  auto bad = executor.task({.id = "child_bad", .timeout = 1s}, [](const int&) -> int {
    throw DurableExecutionError::non_retryable("child error");
  });
  std::atomic<int> finalizes{0};
  auto parent = executor.parent_task(
      {.id = "parent", .timeout = 1s},
      [&](const int& x) {
        return ParentRunResult<Empty>{{}, {child(ok, x), child(bad, x)}};
      },
      [&](const ParentTaskOutput<Empty>& p) {
        ++finalizes;
        require_all_completed(p.children);
        return 0;
      });
  executor.start();
  auto e = executor.enqueue_task(parent, 1).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::finalize_failed);
  ASSERT_TRUE(e.error.has_value());
  EXPECT_EQ(e.error->message, "Children failed");
  EXPECT_FALSE(e.error->is_retryable);
  EXPECT_FALSE(e.output.has_value());
  EXPECT_EQ(finalizes.load(), 1);  // a finalize function is never retried
}

TEST_P(WorkflowExamples, PartialSuccessCountsCompletedChildren) {
  DurableExecutor executor{storage(), fast_options()};
  auto ok = executor.task({.id = "child_ok", .timeout = 1s}, [](const int& x) { return x * 10; });
  auto bad = executor.task({.id = "child_bad", .timeout = 1s}, [](const int&) -> int {
    throw DurableExecutionError::non_retryable("child error");
  });
  auto parent = executor.parent_task(
      {.id = "partial", .timeout = 1s},
      [&](const int& x) {
        return ParentRunResult<Empty>{{}, {child(ok, x), child(bad, x)}};
      },
      [](const ParentTaskOutput<Empty>& p) {
        int succeeded = 0;
        int sum = 0;
        for (const auto& c : p.children) {
          if (c.is_completed()) {
            ++succeeded;
            sum += c.output_as<int>();
          }
        }
        return std::vector<int>{succeeded, static_cast<int>(p.children.size()), sum};
      });
  executor.start();
  auto e = executor.enqueue_task(parent, 4).wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, (std::vector<int>{1, 2, 40}));  // 1 of 2 succeeded, its output kept
}

/** Three string steps that each append their letter, recording the order they ran in. */
struct Steps {
  std::mutex mutex;
  std::vector<std::string> order;
  std::atomic<int> in_flight{0};
  std::atomic<bool> overlapped{false};

  std::string run(const std::string& letter, const std::string& input) {
    if (++in_flight > 1) overlapped = true;
    {
      std::lock_guard lock(mutex);
      order.push_back(letter);
    }
    std::this_thread::sleep_for(2ms);  // gives an overlap (a bug) the chance to show
    --in_flight;
    return input + letter;
  }
};

TEST_P(WorkflowExamples, SequentialHelperAndManualChainGiveTheSameOutput) {
  DurableExecutor executor{storage(), fast_options()};
  Steps steps;
  auto ta = executor.task({.id = "a", .timeout = 1s},
                          [&](const std::string& s) { return steps.run("A", s); });
  auto tb = executor.task({.id = "b", .timeout = 1s},
                          [&](const std::string& s) { return steps.run("B", s); });
  auto tc = executor.task({.id = "c", .timeout = 1s},
                          [&](const std::string& s) { return steps.run("C", s); });
  auto helper = executor.sequential_tasks("seq_helper", ta, tb, tc);

  // The manual way: each step's finalize is a parent that runs the next step as its child.
  auto only_output = [](const ParentTaskOutput<Empty>& p) {
    require_all_completed(p.children);
    return p.children.at(0).output_as<std::string>();
  };
  auto manual_fin = executor.task({.id = "manual_fin", .timeout = 1s}, only_output);
  auto manual_c = executor.parent_task(
      {.id = "manual_c", .timeout = 1s},
      [&](const ParentTaskOutput<Empty>& p) {
        return ParentRunResult<Empty>{{}, {child(tc, only_output(p))}};
      },
      manual_fin);
  auto manual_b = executor.parent_task(
      {.id = "manual_b", .timeout = 1s},
      [&](const ParentTaskOutput<Empty>& p) {
        return ParentRunResult<Empty>{{}, {child(tb, only_output(p))}};
      },
      manual_c);
  auto manual = executor.parent_task(
      {.id = "manual_seq", .timeout = 1s},
      [&](const std::string& s) {
        return ParentRunResult<Empty>{{}, {child(ta, s)}};
      },
      manual_b);
  static_assert(std::is_same_v<decltype(manual), Task<std::string, std::string>>);
  executor.start();

  auto h = executor.enqueue_task(helper, "x").wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(h.status, TaskExecutionStatus::completed);
  EXPECT_EQ(h.output, "xABC");
  auto m = executor.enqueue_task(manual, "x").wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(m.status, TaskExecutionStatus::completed);
  EXPECT_EQ(m.output, "xABC");
  std::lock_guard lock(steps.mutex);
  EXPECT_EQ(steps.order, (std::vector<std::string>{"A", "B", "C", "A", "B", "C"}));
  EXPECT_FALSE(steps.overlapped.load());
}

TEST_P(WorkflowExamples, ParallelChildrenInsideASequence) {
  DurableExecutor executor{storage(), fast_options()};
  auto greet = executor.task({.id = "greet", .timeout = 1s},
                             [](const std::string& s) { return "<" + s + ">"; });
  auto combine = [](const ParentTaskOutput<std::string>& p) {
    require_all_completed(p.children);
    std::string out = p.output;
    for (const auto& c : p.children) out += c.output_as<std::string>();
    return out;
  };
  auto stage = [&](const std::string& id, const std::string& tag) {
    return executor.parent_task(
        {.id = id, .timeout = 1s},
        [&greet, tag](const std::string& s) {
          return ParentRunResult<std::string>{s + "|",
                                              {child(greet, tag + "1"), child(greet, tag + "2")}};
        },
        combine);
  };
  auto first = stage("stage1", "a");
  auto second = stage("stage2", "b");
  auto seq = executor.sequential_tasks("parallel_in_sequence", first, second);
  static_assert(std::is_same_v<decltype(seq), Task<std::string, std::string>>);
  executor.start();
  auto e = executor.enqueue_task(seq, "in").wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, "in|<a1><a2>|<b1><b2>");
}

TEST_P(WorkflowExamples, RecursiveParentCountsTen) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> runs{0};
  // The task spawns itself, so its run reads the registered Task through this slot.
  std::optional<Task<int, int>> self;
  self.emplace(executor.parent_task(
      {.id = "recursive", .timeout = 1s},
      [&](const int& index) {
        ++runs;
        ParentRunResult<Empty> r;
        if (index < 9) r.children.push_back(child(*self, index + 1));
        return r;
      },
      [](const ParentTaskOutput<Empty>& p) {
        require_all_completed(p.children);
        int count = 1;
        for (const auto& c : p.children) count += c.output_as<int>();
        return count;
      }));
  executor.start();
  auto e = executor.enqueue_task(*self, 0).wait_and_get_finished_execution(bounded_wait(30s));
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, 10);
  EXPECT_EQ(runs.load(), 10);
}

TEST_P(WorkflowExamples, PollingHelperReturnsTheValueOnceItAppears) {
  DurableExecutor executor{storage(), fast_options()};
  std::atomic<int> polls{0};
  // The value appears 100 ms after the first poll, so at least one poll sees none.
  std::mutex mutex;
  std::optional<std::chrono::steady_clock::time_point> first_poll;
  auto poll = executor.task({.id = "poll", .timeout = 1s}, [&]() {
    ++polls;
    std::lock_guard lock(mutex);
    const auto now = std::chrono::steady_clock::now();
    if (!first_poll) first_poll = now;
    return now - *first_poll >= 100ms ? PollResult<int>{true, 10}
                                      : PollResult<int>{false, std::nullopt};
  });
  auto polling = executor.polling_task("polling", poll, 20, 20ms);
  executor.start();
  auto e = executor.enqueue_task(polling).wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_TRUE(e.output->is_success);
  EXPECT_EQ(e.output->output, 10);
  EXPECT_GE(polls.load(), 2);
  EXPECT_LE(polls.load(), 20);
}

/** Output of one manual poll: whether the value was there, and how many polls came before. */
struct ManualPoll {
  bool is_done = false;
  int value = 0;
  int prev_count = 0;
};
void to_json(nlohmann::json& j, const ManualPoll& p) {
  j = nlohmann::json{{"isDone", p.is_done}, {"value", p.value}, {"prevCount", p.prev_count}};
}
void from_json(const nlohmann::json& j, ManualPoll& p) {
  p.is_done = j.at("isDone").get<bool>();
  p.value = j.at("value").get<int>();
  p.prev_count = j.at("prevCount").get<int>();
}

TEST_P(WorkflowExamples, ManualPollingLoopCountsBetweenTwoAndTwenty) {
  DurableExecutor executor{storage(), fast_options()};
  std::mutex mutex;
  std::optional<std::chrono::steady_clock::time_point> first_poll;
  std::optional<Task<int, std::pair<int, int>>> self;  // {count, value}
  // Each run polls once; without the value it re-spawns itself, delayed by sleep_before_run.
  self.emplace(executor.parent_task(
      {.id = "manual_polling", .timeout = 1s, .sleep_before_run = 20ms},
      [&](const int& prev_count) {
        std::lock_guard lock(mutex);
        const auto now = std::chrono::steady_clock::now();
        if (!first_poll) first_poll = now;
        if (now - *first_poll >= 150ms) {
          return ParentRunResult<ManualPoll>{{true, 10, prev_count}, {}};
        }
        return ParentRunResult<ManualPoll>{{false, 0, prev_count}, {child(*self, prev_count + 1)}};
      },
      [](const ParentTaskOutput<ManualPoll>& p) {
        if (p.output.is_done) return std::pair<int, int>{p.output.prev_count + 1, p.output.value};
        if (!p.children.at(0).is_completed()) {
          throw DurableExecutionError::non_retryable("Child failed");
        }
        return p.children[0].output_as<std::pair<int, int>>();
      }));
  executor.start();
  auto e = executor.enqueue_task(*self, 0).wait_and_get_finished_execution(bounded_wait(30s));
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_GE(e.output->first, 2);
  EXPECT_LT(e.output->first, 20);
  EXPECT_EQ(e.output->second, 10);
}

TEST_P(WorkflowExamples, WebhookWakesTheSleepingChildOfAWaitingParent) {
  DurableExecutor executor{storage(), fast_options()};
  auto webhook = executor.sleeping_task<int>({.id = "webhook", .timeout = 10s});
  auto parent = executor.parent_task(
      {.id = "await_webhook", .timeout = 1s},
      [&](const std::string& uid) {
        return ParentRunResult<std::string>{"got ", {child(webhook, uid)}};
      },
      [](const ParentTaskOutput<std::string>& p) {
        require_all_completed(p.children);
        return p.output + std::to_string(p.children[0].output_as<int>());
      });
  executor.start();
  auto h = executor.enqueue_task(parent, "order_42");
  ASSERT_TRUE(wait_until(
      [&] { return h.get_execution().status == TaskExecutionStatus::waiting_for_children; }));
  // The child stays asleep until woken: the parent cannot finish on its own.
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(h.get_execution().status, TaskExecutionStatus::waiting_for_children);
  auto woken = executor.wakeup_sleeping_task_execution(webhook, "order_42", 42);
  EXPECT_EQ(woken.status, TaskExecutionStatus::completed);
  EXPECT_EQ(woken.output, 42);
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, "got 42");
}

TEST_P(WorkflowExamples, TreeOfDepthFourAndFanOutSixFinishesEveryNode) {
  constexpr int kFanOut = 6;
  constexpr int kDepth = 4;  // levels below the root
  auto o = fast_options();
  o.max_task_executions_per_batch = 200;
  DurableExecutor executor{storage(), o};
  auto leaf = executor.task({.id = "leaf", .timeout = 5s}, [](const int&) { return 1; });
  std::optional<Task<int, int>> node;
  // A node at depth d has kFanOut children: nodes at d + 1, or leaves at the last level.
  node.emplace(executor.parent_task(
      {.id = "node", .timeout = 5s},
      [&](const int& depth) {
        ParentRunResult<Empty> r;
        for (int i = 0; i < kFanOut; ++i) {
          r.children.push_back(depth + 1 == kDepth ? child(leaf, i) : child(*node, depth + 1));
        }
        return r;
      },
      [](const ParentTaskOutput<Empty>& p) {
        require_all_completed(p.children);
        int leaves = 0;
        for (const auto& c : p.children) leaves += c.output_as<int>();
        return leaves;
      }));
  executor.start();
  auto root = executor.enqueue_task(*node, 0);
  auto e = root.wait_and_get_finished_execution(bounded_wait(60s));
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, 1296);

  // Walk the stored tree: 1 + 6 + 36 + 216 + 1296 executions, every one completed.
  std::size_t total = 1;
  std::size_t unfinished = 0;
  std::vector<std::string> level{root.execution_id()};
  for (int d = 0; d < kDepth; ++d) {
    std::vector<GetByParentExecutionIdRequest> requests;
    for (const auto& id : level) requests.push_back({id});
    auto children = storage().get_many_by_parent_execution_id(requests);
    std::vector<std::string> next;
    for (const auto& siblings : children) {
      EXPECT_EQ(siblings.size(), static_cast<std::size_t>(kFanOut));
      for (const auto& r : siblings) {
        if (r.status != TaskExecutionStatus::completed) ++unfinished;
        next.push_back(r.execution_id);
      }
    }
    total += next.size();
    level = std::move(next);
  }
  EXPECT_EQ(total, 1555U);
  EXPECT_EQ(unfinished, 0U);
}

TEST_P(WorkflowExamples, ParentIsProcessedThenClosed) {
  DurableExecutor executor{storage(), fast_options()};
  auto leaf = executor.task({.id = "leaf", .timeout = 1s}, [](const int& x) { return x + 1; });
  auto parent = executor.parent_task(
      {.id = "closing_parent", .timeout = 1s},
      [&](const int& x) {
        return ParentRunResult<int>{x, {child(leaf, x), child(leaf, x + 1)}};
      },
      [](const ParentTaskOutput<int>& p) {
        require_all_completed(p.children);
        return p.output + p.children[0].output_as<int>() + p.children[1].output_as<int>();
      });
  executor.start();
  auto h = executor.enqueue_task(parent, 1);
  auto e = h.wait_and_get_finished_execution(bounded_wait());
  ASSERT_EQ(e.status, TaskExecutionStatus::completed);
  EXPECT_EQ(e.output, 1 + 2 + 3);
  EXPECT_EQ(e.on_children_finished_processing_status,
            OnChildrenFinishedProcessingStatus::processed);
  ASSERT_TRUE(e.on_children_finished_processing_finished_at.has_value());
  std::optional<TaskExecution<int>> closed;
  ASSERT_TRUE(wait_until([&] {
    closed = h.get_execution();
    return closed->close_status == CloseStatus::closed;
  }));
  EXPECT_EQ(closed->on_children_finished_processing_status,
            OnChildrenFinishedProcessingStatus::processed);
  ASSERT_TRUE(closed->closed_at.has_value());
  ASSERT_TRUE(closed->on_children_finished_processing_finished_at.has_value());
  EXPECT_GE(*closed->closed_at, *closed->on_children_finished_processing_finished_at);
  ASSERT_TRUE(closed->finished_at.has_value());
  EXPECT_GE(*closed->closed_at, *closed->finished_at);
  EXPECT_EQ(closed->output, 6);  // closing does not change the result
}

INSTANTIATE_TEST_SUITE_P(Storages, WorkflowExamples, ::testing::ValuesIn(all_storage_factories()),
                         factory_name);

}  // namespace
}  // namespace durable_execution::testing
