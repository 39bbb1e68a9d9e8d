// RunTable: the runs an executor holds (in flight, abandoned, held, early cancels), without
// threads: every call is made in turn and its bookkeeping checked.

#include "engine/run_table.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace de = durable_execution;
namespace dd = durable_execution::detail;
using namespace std::chrono_literals;

namespace {

de::TaskExecutionRecord row(const std::string& id, const std::string& task = "t") {
  de::TaskExecutionRecord r;
  r.execution_id = id;
  r.task_id = task;
  return r;
}

std::vector<de::TaskExecutionRecord> rows(std::initializer_list<const char*> ids) {
  std::vector<de::TaskExecutionRecord> out;
  for (const auto* id : ids) out.push_back(row(id));
  return out;
}

/** A registry that knows task "t". */
struct RegistryWithT : dd::TaskRegistry {
  RegistryWithT() {
    dd::TaskDefinition def;
    def.options = de::TaskOptions{.id = "t", .timeout = 1s};
    def.run = [](de::TaskRunContext&, const std::string&) { return dd::RunParentResult{}; };
    (void)add(std::move(def));
  }
};

/** Admits "a" and times it out: settled and finished, its callable still running. */
std::shared_ptr<dd::Run> abandoned_run(dd::RunTable& table, const dd::TaskRegistry& registry) {
  auto run = table.admit(rows({"a"}), registry).start.at(0);
  run->settled.store(true);
  table.abandon(*run);
  EXPECT_TRUE(table.finish(*run).has_value());
  return run;
}

}  // namespace

TEST(RunTable, AdmitsClaimedRowsWithTheirDefinitions) {
  const RegistryWithT registry;
  dd::RunTable table{true};
  auto admitted = table.admit(rows({"a", "b"}), registry);
  ASSERT_EQ(admitted.start.size(), 2U);
  EXPECT_TRUE(admitted.held.empty());
  EXPECT_EQ(admitted.start[0]->record.execution_id, "a");
  ASSERT_NE(admitted.start[0]->definition, nullptr);
  EXPECT_EQ(admitted.start[0]->definition->options.id, "t");
  EXPECT_EQ(table.running(), 2U);
  const auto counts = table.counts(10);
  EXPECT_EQ(counts.free_slots, 8);
  EXPECT_FALSE(counts.alone);
  // The same execution claimed again while in flight is not run twice.
  EXPECT_TRUE(table.admit(rows({"a"}), registry).start.empty());
}

TEST(RunTable, FinishFreesTheSlotAndCountsThePendingWrite) {
  const RegistryWithT registry;
  dd::RunTable table{true};
  auto admitted = table.admit(rows({"a"}), registry);
  EXPECT_EQ(table.finish(*admitted.start[0]), std::optional<std::size_t>{0});
  EXPECT_TRUE(table.counts(4).alone);
  // Shutdown waits for the pending write: it returns at the deadline with nothing left to name.
  const auto left = table.stop_all(dd::SteadyClock::now() + 20ms);
  EXPECT_TRUE(left.runs.empty());
}

TEST(RunTable, StopAllReturnsAtOnceWhenEverythingIsWritten) {
  const RegistryWithT registry;
  dd::RunTable table{true};
  auto admitted = table.admit(rows({"a"}), registry);
  ASSERT_TRUE(table.finish(*admitted.start[0]).has_value());
  table.completions_written(1);
  const auto start = dd::SteadyClock::now();
  const auto left = table.stop_all(start + 60s);
  EXPECT_TRUE(left.runs.empty());
  EXPECT_EQ(left.abandoned, 0);
  EXPECT_LT(dd::SteadyClock::now() - start, 30s);
}

TEST(RunTable, StopAllAsksRunsToStopAndNamesTheOnesLeft) {
  const RegistryWithT registry;
  dd::RunTable table{true};
  auto admitted = table.admit(rows({"a"}), registry);
  const auto left = table.stop_all(dd::SteadyClock::now() + 10ms);
  EXPECT_TRUE(admitted.start[0]->stop.stop_requested());
  EXPECT_EQ(admitted.start[0]->reason.load(), de::StopReason::shutdown);
  ASSERT_EQ(left.runs.size(), 1U);
  EXPECT_EQ(left.runs[0], "a (t)");
  // Results that arrive after shutdown gave up are dropped.
  EXPECT_FALSE(table.finish(*admitted.start[0]).has_value());
}

TEST(RunTable, AnAbandonedRunHoldsItsSlotAndARetryWaitsForIt) {
  const RegistryWithT registry;
  dd::RunTable table{true};
  const auto first = abandoned_run(table, registry);
  EXPECT_EQ(table.abandoned(), 1);
  EXPECT_EQ(table.counts(2).free_slots, 1);
  // Its outcome is recorded: a crash could not change it, so the process counts as alone.
  EXPECT_TRUE(table.counts(2).alone);
  // Its retry is claimed while the callable still runs: held, not started.
  auto retry = table.admit(rows({"a"}), registry);
  EXPECT_TRUE(retry.start.empty());
  ASSERT_EQ(retry.held.size(), 1U);
  // The callable returns: the held retry is handed back to start now.
  const auto returned = table.abandoned_returned(*first);
  EXPECT_EQ(returned.next, retry.held[0]);
  EXPECT_EQ(table.abandoned(), 0);
  EXPECT_FALSE(table.take_held(retry.held[0]));  // no longer held
}

TEST(RunTable, AHeldRunCanBeTakenOnceAtItsDeadline) {
  const RegistryWithT registry;
  dd::RunTable table{true};
  const auto first = abandoned_run(table, registry);
  auto held = table.admit(rows({"a"}), registry).held.at(0);
  EXPECT_TRUE(table.take_held(held));
  EXPECT_FALSE(table.take_held(held));
  EXPECT_EQ(table.abandoned_returned(*first).next, nullptr);
}

TEST(RunTable, CancelSettlesARunningRunOnce) {
  const RegistryWithT registry;
  dd::RunTable table{true};
  auto run = table.admit(rows({"a"}), registry).start.at(0);
  EXPECT_EQ(table.cancel("a"), run);
  EXPECT_TRUE(run->settled.load());
  EXPECT_EQ(table.running(), 0U);
  EXPECT_EQ(table.abandoned(), 1);  // its callable holds the slot until it returns
  EXPECT_EQ(table.cancel("a"), nullptr);
}

TEST(RunTable, ACancelBeforeTheClaimRegistersSkipsTheRun) {
  const RegistryWithT registry;
  dd::RunTable table{true};
  EXPECT_EQ(table.cancel("a"), nullptr);
  EXPECT_TRUE(table.admit(rows({"a"}), registry).start.empty());
  // Remembered once: a later claim of the same id (after the cancel was consumed) runs.
  EXPECT_EQ(table.admit(rows({"a"}), registry).start.size(), 1U);
}

TEST(RunTable, ClientsDoNotRememberEarlyCancels) {
  const RegistryWithT registry;
  dd::RunTable table{false};
  EXPECT_EQ(table.cancel("a"), nullptr);
  EXPECT_EQ(table.admit(rows({"a"}), registry).start.size(), 1U);
}

TEST(RunTable, IdsListTheRunsInFlight) {
  const RegistryWithT registry;
  dd::RunTable table{true};
  (void)table.admit(rows({"a", "b", "c"}), registry);
  auto ids = table.ids();
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b", "c"}));
}
