// StepDemand: which chained background steps a pass runs. A step that found nothing is not asked
// again until something it depends on did work, a wake-up names it, or the loop polls; nothing
// that could have work is ever left out.

#include "engine/step_demand.hpp"

#include <gtest/gtest.h>

namespace dd = durable_execution::detail;
using Step = dd::BackgroundStep;

namespace {
constexpr std::int64_t kBatch = 100;

dd::StepDemand idle() {
  dd::StepDemand d;
  d.ran(Step::mark, 0, kBatch, false, false);
  d.ran(Step::close, 0, kBatch, false, false);
  d.ran(Step::children, 0, kBatch, false, false);
  return d;
}
}  // namespace

TEST(StepDemand, EveryStepIsDueAtFirst) {
  const dd::StepDemand d;
  EXPECT_TRUE(d.due(Step::mark));
  EXPECT_TRUE(d.due(Step::close));
  EXPECT_TRUE(d.due(Step::children));
}

TEST(StepDemand, StepsThatFoundNothingAreNotDueAgain) {
  const auto d = idle();
  EXPECT_FALSE(d.any());
}

TEST(StepDemand, MarkedExecutionsMakeCloseAndChildrenDue) {
  auto d = idle();
  d.add(dd::bit(Step::mark));
  d.ran(Step::mark, 3, kBatch, false, false);
  EXPECT_FALSE(d.due(Step::mark));
  EXPECT_TRUE(d.due(Step::close));
  EXPECT_TRUE(d.due(Step::children));
}

TEST(StepDemand, AFullBatchKeepsItsStepDue) {
  auto d = idle();
  d.add(dd::bit(Step::close));
  d.ran(Step::close, kBatch, kBatch, false, false);
  EXPECT_TRUE(d.due(Step::close));
  d.ran(Step::close, kBatch - 1, kBatch, false, false);
  EXPECT_FALSE(d.due(Step::close));
}

TEST(StepDemand, FinishedExecutionsMakeMarkDue) {
  for (const auto step : {Step::close, Step::children}) {
    auto d = idle();
    d.add(dd::bit(step));
    d.ran(step, 1, kBatch, true, false);
    EXPECT_TRUE(d.due(Step::mark));
    EXPECT_FALSE(d.due(step));
  }
  auto d = idle();
  d.add(dd::bit(Step::children));
  d.ran(Step::children, 2, kBatch, false, false);  // finalize children inserted: dispatcher work
  EXPECT_FALSE(d.any());
}

TEST(StepDemand, AFailedStepStaysDue) {
  auto d = idle();
  d.add(dd::bit(Step::children));
  d.ran(Step::children, 0, kBatch, false, true);
  EXPECT_TRUE(d.due(Step::children));
}

TEST(StepDemand, WakeUpsAddTheStepsTheyName) {
  auto d = idle();
  d.add(dd::bit(Step::children));
  EXPECT_FALSE(d.due(Step::mark));
  EXPECT_TRUE(d.due(Step::children));
  d.add(dd::all_background_steps);
  EXPECT_TRUE(d.due(Step::mark));
  EXPECT_TRUE(d.due(Step::close));
  d.add(0xF0U);  // bits that name no step are ignored
  d.ran(Step::mark, 0, kBatch, false, false);
  d.ran(Step::close, 0, kBatch, false, false);
  d.ran(Step::children, 0, kBatch, false, false);
  EXPECT_FALSE(d.any());
}

// A chain as the engine runs it: a child's result (mark), its close, then its parent's children
// step that finishes the parent, whose own mark and close follow — each pass runs only what the
// one before made due, and the chain ends idle.
TEST(StepDemand, AParentChainRunsToIdle) {
  auto d = idle();
  d.add(dd::bit(Step::mark));
  int passes = 0;
  int asks = 0;
  int children_runs = 0;
  while (d.any() && passes < 10) {
    ++passes;
    if (d.due(Step::mark)) {
      ++asks;
      d.ran(Step::mark, passes <= 2 ? 1 : 0, kBatch, false, false);
    }
    if (d.due(Step::close)) {
      ++asks;
      d.ran(Step::close, passes <= 2 ? 1 : 0, kBatch, false, false);
    }
    if (d.due(Step::children)) {
      ++asks;
      ++children_runs;
      d.ran(Step::children, children_runs == 1 ? 1 : 0, kBatch, children_runs == 1, false);
    }
  }
  EXPECT_FALSE(d.any());
  // Pass 1: mark, close, children (finishes the parent); pass 2: mark (the parent), close, and
  // children (the parent's own parent count), which find nothing more. Before, every pass after
  // one with work asked all three steps: a third, idle pass made it nine asks.
  EXPECT_EQ(passes, 2);
  EXPECT_EQ(asks, 6);
}
