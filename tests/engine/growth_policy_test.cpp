// GrowthPolicy: when the worker pool starts or wakes workers, decided on fake samples.

#include "engine/growth_policy.hpp"

#include <gtest/gtest.h>

namespace de = durable_execution::detail;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kComputing = 0;        // runs that spend their time on the CPU
constexpr std::int64_t kWaiting = 1'000'000;  // runs that wait 1 ms on average (I/O, sleeps)

/** A policy whose CPU samples say the process used `share` of its 2 cores for 20 checks. */
de::GrowthPolicy policy_at_cpu_share(double share) {
  de::GrowthPolicy policy{2};
  const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  policy.sample_cpu(0, t0);
  for (int i = 1; i <= 20; ++i) {
    policy.sample_cpu(static_cast<std::int64_t>(i * share * 2'000'000), t0 + i * 1ms);
  }
  return policy;
}

}  // namespace

TEST(GrowthPolicy, KeepsAtLeastTwoWorkersAndOnePerCore) {
  EXPECT_EQ(de::GrowthPolicy{1}.eager_workers(), 2U);
  EXPECT_EQ(de::GrowthPolicy{0}.eager_workers(), 2U);
  EXPECT_EQ(de::GrowthPolicy{8}.eager_workers(), 8U);
}

TEST(GrowthPolicy, AnExplicitMinimumReplacesOnePerCore) {
  const de::GrowthPolicy policy{2, 6};
  EXPECT_EQ(policy.eager_workers(), 6U);
  EXPECT_EQ(policy.on_submit(100, 0, 0, kComputing), 6U);
  EXPECT_EQ(de::GrowthPolicy(8, 1).on_submit(100, 0, 0, kComputing), 1U);
}

TEST(GrowthPolicy, QuickTasksGetAtMostACoresWorthOfWorkersOnSubmit) {
  const de::GrowthPolicy policy{4};
  // Nothing busy: up to 4 workers for a queue of 100.
  EXPECT_EQ(policy.on_submit(100, 0, 0, kComputing), 4U);
  // Never more than the queue.
  EXPECT_EQ(policy.on_submit(3, 0, 0, kComputing), 3U);
  // Three busy already: one more.
  EXPECT_EQ(policy.on_submit(100, 3, 10, kComputing), 1U);
  // A core's worth busy: none (the stall check adds them if the queue stalls).
  EXPECT_EQ(policy.on_submit(100, 6, 10, kComputing), 0U);
}

TEST(GrowthPolicy, WaitingTasksWakeEveryIdleWorkerTheQueueCanUse) {
  const de::GrowthPolicy policy{2};
  EXPECT_EQ(policy.on_submit(100, 6, 40, kWaiting), 40U);
  EXPECT_EQ(policy.on_submit(10, 6, 40, kWaiting), 10U);
}

TEST(GrowthPolicy, StallCheckDoublesBusyWorkersWhenTasksHoldThem) {
  const de::GrowthPolicy policy{2};
  // Every busy worker is inside a task function and the oldest run waited past the threshold.
  EXPECT_EQ(policy.on_stall_check(100, 8, 8, 2ms, kComputing), 8U);
  EXPECT_EQ(policy.on_stall_check(3, 8, 8, 2ms, kComputing), 3U);
  // With no busy worker it still adds one.
  EXPECT_EQ(policy.on_stall_check(5, 0, 0, 2ms, kComputing), 1U);
}

TEST(GrowthPolicy, StallCheckAddsNothingBelowTheThresholdOrWhenTheEngineHoldsWorkers) {
  const de::GrowthPolicy policy{2};
  EXPECT_EQ(policy.on_stall_check(100, 8, 8, 500us, kComputing), 0U);
  // Workers in engine code (writing results) will come back by themselves.
  EXPECT_EQ(policy.on_stall_check(100, 8, 5, 2ms, kComputing), 0U);
}

TEST(GrowthPolicy, BrakesALargePoolOfWaitingRunsWhileTheCoresAreBusy) {
  // Two cores fully used for many checks: the moving mean approaches 1.
  const auto policy = policy_at_cpu_share(1.0);
  EXPECT_GT(policy.cpu_utilization(), 0.9);
  // 32 busy workers = 16 per core: the brake holds for waiting runs...
  EXPECT_EQ(policy.on_stall_check(100, 32, 32, 2ms, kWaiting), 0U);
  // ...not below 16 per core, and never for runs that compute.
  EXPECT_EQ(policy.on_stall_check(100, 31, 31, 2ms, kWaiting), 31U);
  EXPECT_EQ(policy.on_stall_check(100, 32, 32, 2ms, kComputing), 32U);
}

TEST(GrowthPolicy, IdleCoresReleaseTheBrake) {
  const auto policy = policy_at_cpu_share(0.1);
  EXPECT_LT(policy.cpu_utilization(), 0.2);
  EXPECT_EQ(policy.on_stall_check(100, 64, 64, 2ms, kWaiting), 64U);
}

TEST(GrowthPolicy, CustomConstants) {
  de::GrowthConstants c;
  c.stall_threshold = 10ms;
  const de::GrowthPolicy policy{2, 0, c};
  EXPECT_EQ(policy.on_stall_check(10, 2, 2, 5ms, kComputing), 0U);
  EXPECT_EQ(policy.on_stall_check(10, 2, 2, 10ms, kComputing), 2U);
}

TEST(GrowthPolicy, AvailableCoresIsPositiveAndAtMostTheHardware) {
  const auto cores = de::available_cores();
  EXPECT_GE(cores, 1U);
  EXPECT_LE(cores, std::max(1U, std::thread::hardware_concurrency()));
}
