// A mixed workload on a storage where 5 % of all calls fail at random (issue 10): 2,000 top-level
// executions — simple tasks, retried ones, failing ones, parents with children (no finalize, a
// finalize function, a finalize task, a failing child), sequential chains and cancellations —
// end with every execution finished, closed and with the outcome its task produces; every parent's
// active children count back at zero; nothing left running. Every wait is bounded.

#include <map>

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using ExecutorWorkload = ExecutorTest;
using Status = TaskExecutionStatus;

constexpr int kTopLevel = 2000;
constexpr auto kDeadline = 45s;

/** Retries a call the caller made while it fails with an injected (retryable) fault. */
template <class F>
auto retrying(F&& f) {
  for (int attempt = 0;; ++attempt) {
    try {
      return f();
    } catch (const DurableExecutionError& e) {
      if (!e.is_retryable() || attempt >= 50) throw;
    }
  }
}

std::vector<std::optional<TaskExecutionRecord>> read_all(TaskExecutionsStorage& s,
                                                         const std::vector<std::string>& ids) {
  std::vector<GetByIdRequest> reqs;
  reqs.reserve(ids.size());
  for (const auto& id : ids) reqs.push_back(GetByIdRequest{id, {}});
  return s.get_many_by_id(reqs);
}

enum class Kind {
  simple,
  flaky,
  doomed,
  parent,
  parent_with_function,
  parent_with_task,
  parent_with_failing_child,
  chain,
  cancelled
};

/** The kind of the i-th top-level execution: a fixed mix. */
Kind kind_of(int i) {
  switch (i % 20) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
    case 7:
      return Kind::simple;
    case 8:
    case 9:
      return Kind::flaky;
    case 10:
      return Kind::doomed;
    case 11:
    case 12:
    case 13:
      return Kind::parent;
    case 14:
      return Kind::parent_with_function;
    case 15:
      return Kind::parent_with_task;
    case 16:
      return Kind::parent_with_failing_child;
    case 17:
    case 18:
      return Kind::chain;
    default:
      return Kind::cancelled;
  }
}

Status expected_status(Kind k) {
  switch (k) {
    case Kind::doomed:
      return Status::failed;
    case Kind::parent_with_failing_child:
      return Status::finalize_failed;
    case Kind::cancelled:
      return Status::cancelled;
    default:
      return Status::completed;
  }
}

TEST_P(ExecutorWorkload, MixedWorkloadUnderFivePercentStorageFailuresFinishesEverything) {
  const auto start = std::chrono::steady_clock::now();
  FaultInjectingTaskExecutionsStorage faulty{storage(), {.seed = 20261201, .failure_rate = 0.05}};
  auto o = fast_options();
  o.log_level = LogLevel::error;
  std::atomic<std::int64_t> errors_logged{0};
  o.log_sink = [&](LogLevel, std::string_view) { errors_logged.fetch_add(1); };
  DurableExecutor executor{faulty, o};

  auto twice = executor.task({.id = "twice", .timeout = 10s}, [](const int& x) { return 2 * x; });
  auto flaky = executor.task({.id = "flaky", .timeout = 10s, .retry = {.max_attempts = 3}},
                             [](TaskRunContext& ctx, const int& x) {
                               if (ctx.attempt() == 0) throw std::runtime_error("first attempt");
                               return x + 1;
                             });
  auto doomed = executor.task({.id = "doomed", .timeout = 10s}, [](const int&) -> int {
    throw DurableExecutionError::non_retryable("doomed");
  });
  auto fan_out = [&](bool failing_child) {
    return [&twice, &doomed, failing_child](const int& n) {
      ParentRunResult<int> r{n, {}};
      for (int i = 0; i < 3; ++i) r.children.push_back(child(twice, n + i));
      if (failing_child) r.children.push_back(child(doomed, n));
      return r;
    };
  };
  auto parent = executor.parent_task({.id = "parent", .timeout = 10s}, fan_out(false));
  const auto sum = [](const ParentTaskOutput<int>& p) {
    int total = 0;
    for (const auto& c : p.children) {
      if (!c.is_completed()) throw DurableExecutionError::non_retryable("a child failed");
      total += c.output_as<int>();
    }
    return total;
  };
  auto with_function =
      executor.parent_task({.id = "with_function", .timeout = 10s}, fan_out(false), sum);
  auto finalize = executor.task({.id = "finalize", .timeout = 10s}, sum);
  auto with_task =
      executor.parent_task({.id = "with_task", .timeout = 10s}, fan_out(false), finalize);
  auto with_failing =
      executor.parent_task({.id = "with_failing", .timeout = 10s}, fan_out(true), sum);
  auto chain = executor.sequential_tasks("chain", twice, flaky, twice);
  auto slow = executor.task({.id = "slow", .timeout = 30s}, [](TaskRunContext& ctx, const int& x) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    (void)cv.wait_for(lock, ctx.stop_token(), 20s, [] { return false; });
    return x;
  });
  executor.start();

  std::vector<std::string> ids;
  std::vector<Kind> kinds;
  ids.reserve(kTopLevel);
  for (int i = 0; i < kTopLevel; ++i) {
    const auto k = kind_of(i);
    kinds.push_back(k);
    ids.push_back(retrying([&] {
      switch (k) {
        case Kind::simple:
          return executor.enqueue_task(twice, i).execution_id();
        case Kind::flaky:
          return executor.enqueue_task(flaky, i).execution_id();
        case Kind::doomed:
          return executor.enqueue_task(doomed, i).execution_id();
        case Kind::parent:
          return executor.enqueue_task(parent, i).execution_id();
        case Kind::parent_with_function:
          return executor.enqueue_task(with_function, i).execution_id();
        case Kind::parent_with_task:
          return executor.enqueue_task(with_task, i).execution_id();
        case Kind::parent_with_failing_child:
          return executor.enqueue_task(with_failing, i).execution_id();
        case Kind::chain:
          return executor.enqueue_task(chain, i).execution_id();
        case Kind::cancelled:
          return executor.enqueue_task(slow, i).execution_id();
      }
      return std::string{};
    }));
  }
  for (int i = 0; i < kTopLevel; ++i) {
    if (kinds[static_cast<std::size_t>(i)] == Kind::cancelled) {
      retrying([&] {
        executor.get_task_execution_handle(slow, ids[static_cast<std::size_t>(i)]).cancel();
      });
    }
  }

  // Every top-level execution finishes and is closed (read from the storage itself, so that the
  // checks never fail at random).
  const auto deadline = start + kDeadline;
  std::vector<std::optional<TaskExecutionRecord>> top;
  const auto all_closed = [&](const std::vector<std::optional<TaskExecutionRecord>>& recs) {
    return std::all_of(recs.begin(), recs.end(), [](const auto& r) {
      return r && r->is_finished && r->close_status == CloseStatus::closed;
    });
  };
  while (std::chrono::steady_clock::now() < deadline) {
    top = read_all(storage(), ids);
    if (all_closed(top)) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(all_closed(top)) << "top-level executions not finished and closed in time";

  std::map<Status, int> statuses;
  for (int i = 0; i < kTopLevel; ++i) {
    const auto& r = *top[static_cast<std::size_t>(i)];
    ++statuses[r.status];
    ASSERT_EQ(r.status, expected_status(kinds[static_cast<std::size_t>(i)]))
        << "execution " << i << " (" << r.task_id
        << "): " << (r.error ? r.error->message : std::string{"no error"});
    const auto out = [&] { return nlohmann::json::parse(*r.output); };
    switch (kinds[static_cast<std::size_t>(i)]) {
      case Kind::simple:
        EXPECT_EQ(out(), 2 * i);
        break;
      case Kind::flaky:
        EXPECT_EQ(out(), i + 1);
        EXPECT_EQ(r.retry_attempts, 1);
        break;
      case Kind::parent_with_function:
      case Kind::parent_with_task:
        EXPECT_EQ(out(), 2 * (3 * i + 3));
        break;
      case Kind::chain:
        EXPECT_EQ(out(), 2 * (2 * i + 1));
        break;
      case Kind::parent:
        EXPECT_EQ(out()["children"].size(), 3U);
        break;
      default:
        break;
    }
  }

  // Every descendant too; and every parent's active children count is back at zero.
  std::vector<std::string> level = ids;
  std::size_t descendants = 0;
  while (!level.empty()) {
    std::vector<GetByParentExecutionIdRequest> reqs;
    for (const auto& id : level) reqs.push_back({id});
    std::vector<std::string> next;
    for (const auto& children : storage().get_many_by_parent_execution_id(reqs)) {
      for (const auto& c : children) next.push_back(c.execution_id);
    }
    descendants += next.size();
    std::vector<std::optional<TaskExecutionRecord>> recs;
    while (std::chrono::steady_clock::now() < deadline) {
      recs = read_all(storage(), next);
      if (all_closed(recs)) break;
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(all_closed(recs)) << "descendants not finished and closed in time";
    level = std::move(next);
  }
  for (const auto& r : read_all(storage(), ids)) {
    EXPECT_EQ(r->active_children_count, 0) << r->task_id << " " << r->execution_id;
  }
  EXPECT_TRUE(wait_until([&] { return executor.running_execution_ids().empty(); }, 5s));
  executor.shutdown();

  const auto elapsed = std::chrono::steady_clock::now() - start;
  // 900 parents with 3 or 4 children each, 100 finalize children, 200 chains of 3 steps.
  EXPECT_EQ(descendants, 300U * 3 + 100U * 3 + 100U * 4 + 100U * 4 + 200U * 3);
  EXPECT_GT(faulty.injected_failures(), 50);  // the faults did happen
  std::cout << "[ workload ] " << GetParam().name << ": " << kTopLevel << " top-level and "
            << descendants << " descendant executions in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms; "
            << faulty.calls() << " storage calls, " << faulty.injected_failures()
            << " failed on purpose, " << errors_logged.load() << " errors logged; completed "
            << statuses[Status::completed] << ", failed " << statuses[Status::failed]
            << ", finalize_failed " << statuses[Status::finalize_failed] << ", cancelled "
            << statuses[Status::cancelled] << "\n";
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorWorkload, ::testing::ValuesIn(all_storage_factories()),
                         factory_name);

}  // namespace
}  // namespace durable_execution::testing
