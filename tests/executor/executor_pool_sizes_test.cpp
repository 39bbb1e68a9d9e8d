// Behaviour where the number of workers matters, at pool sizes 1, 2, 4 and 8 (the size is
// max_concurrent_task_executions, which bounds the workers busy with runs), on every storage:
// the limit holds, nothing runs twice or is lost, workflows whose parents wait on children do
// not starve a small pool, and runs that time out while ignoring their stop token hold their
// slots without stopping the others for good.

#include <tuple>

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using PoolParam = std::tuple<StorageFactory, std::int32_t>;

class ExecutorPoolSizes : public ::testing::TestWithParam<PoolParam> {
 protected:
  void SetUp() override {
    DE_SKIP_IF_STORAGE_UNAVAILABLE(std::get<0>(GetParam()));
    storage_ = std::get<0>(GetParam()).make();
  }
  [[nodiscard]] std::int32_t pool_size() const { return std::get<1>(GetParam()); }
  [[nodiscard]] DurableExecutorOptions options() const {
    auto o = fast_options();
    o.max_concurrent_task_executions = pool_size();
    return o;
  }
  TaskExecutionsStorage& storage() { return *storage_; }

 private:
  std::unique_ptr<TaskExecutionsStorage> storage_;
};

TEST_P(ExecutorPoolSizes, EveryTaskRunsOnceAndTheLimitHolds) {
  DurableExecutor executor{storage(), options()};
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  std::mutex m;
  std::map<int, int> runs;
  auto t = executor.task({.id = "t", .timeout = 10s}, [&](const int& x) {
    const auto now = ++running;
    for (auto seen = max_running.load();
         now > seen && !max_running.compare_exchange_weak(seen, now);) {
    }
    std::this_thread::sleep_for(1ms);
    {
      std::lock_guard lock(m);
      ++runs[x];
    }
    --running;
    return x;
  });
  executor.start();
  constexpr int kTasks = 40;
  std::vector<TaskExecutionHandle<int>> handles;
  for (int i = 0; i < kTasks; ++i) handles.push_back(executor.enqueue_task(t, i));
  for (int i = 0; i < kTasks; ++i) {
    const auto e =
        handles[static_cast<std::size_t>(i)].wait_and_get_finished_execution(bounded_wait(30s));
    ASSERT_EQ(e.status, TaskExecutionStatus::completed) << i;
    EXPECT_EQ(e.output, i);
  }
  EXPECT_LE(max_running.load(), pool_size());
  std::lock_guard lock(m);
  ASSERT_EQ(runs.size(), static_cast<std::size_t>(kTasks));
  for (const auto& [x, n] : runs) EXPECT_EQ(n, 1) << x;
}

TEST_P(ExecutorPoolSizes, WorkflowsFinishEvenOnOneWorker) {
  DurableExecutor executor{storage(), options()};
  auto add_one =
      executor.task({.id = "add_one", .timeout = 10s}, [](const int& x) { return x + 1; });
  auto sum = executor.task({.id = "sum", .timeout = 10s}, [](const ParentTaskOutput<int>& p) {
    int total = p.output;
    for (const auto& c : p.children) total += c.output_as<int>();
    return total;
  });
  auto fan_out = executor.parent_task(
      {.id = "fan_out", .timeout = 10s},
      [&](const int& n) {
        ParentRunResult<int> r{n, {}};
        for (int i = 0; i < n; ++i) r.children.push_back(child(add_one, i));
        return r;
      },
      sum);
  auto chain = executor.sequential_tasks("chain", add_one, add_one, add_one);
  executor.start();
  auto parent = executor.enqueue_task(fan_out, 6);
  auto sequence = executor.enqueue_task(chain, 10);
  const auto p = parent.wait_and_get_finished_execution(bounded_wait(30s));
  ASSERT_EQ(p.status, TaskExecutionStatus::completed);
  EXPECT_EQ(p.output, 6 + (1 + 2 + 3 + 4 + 5 + 6));
  const auto s = sequence.wait_and_get_finished_execution(bounded_wait(30s));
  ASSERT_EQ(s.status, TaskExecutionStatus::completed);
  EXPECT_EQ(s.output, 13);
}

TEST_P(ExecutorPoolSizes, StuckRunsHoldTheirSlotsUntilTheyReturnAndNothingIsLost) {
  DurableExecutor executor{storage(), options()};
  Gate gate;
  std::atomic<int> quick_runs{0};
  auto stuck = executor.task({.id = "stuck", .timeout = 20ms}, [&] {
    (void)gate.wait({}, 10s);  // ignores its stop token
    return 0;
  });
  auto quick = executor.task({.id = "quick", .timeout = 10s}, [&] { return ++quick_runs; });
  executor.start();
  std::vector<TaskExecutionHandle<int>> stuck_handles;
  for (int i = 0; i < pool_size(); ++i) stuck_handles.push_back(executor.enqueue_task(stuck));
  for (auto& h : stuck_handles) {
    EXPECT_EQ(h.wait_and_get_finished_execution(bounded_wait()).status,
              TaskExecutionStatus::timed_out);
  }
  // Every slot is held by an abandoned callable: quick work waits, it is not lost.
  std::vector<TaskExecutionHandle<int>> quick_handles;
  for (int i = 0; i < 5; ++i) quick_handles.push_back(executor.enqueue_task(quick));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(quick_runs.load(), 0);
  EXPECT_EQ(executor.stats().abandoned_task_executions, pool_size());
  gate.open();
  for (auto& h : quick_handles) {
    EXPECT_EQ(h.wait_and_get_finished_execution(bounded_wait()).status,
              TaskExecutionStatus::completed);
  }
  EXPECT_EQ(quick_runs.load(), 5);
}

std::string pool_param_name(const ::testing::TestParamInfo<PoolParam>& info) {
  return std::get<0>(info.param).name + "_" + std::to_string(std::get<1>(info.param)) + "_workers";
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorPoolSizes,
                         ::testing::Combine(::testing::ValuesIn(all_storage_factories()),
                                            ::testing::Values(1, 2, 4, 8)),
                         pool_param_name);

}  // namespace
}  // namespace durable_execution::testing
