// normalize_update (SPEC.md §2.3) and apply_update: the directives every write carries.

#include <gtest/gtest.h>

#include <array>
#include <string>

#include "durable_execution/errors.hpp"
#include "durable_execution/task_execution.hpp"

namespace de = durable_execution;
using de::CloseStatus;
using de::OnChildrenFinishedProcessingStatus;
using de::TaskExecutionStatus;
using de::TaskExecutionUpdate;
using std::chrono::milliseconds;

namespace {

const de::Timestamp kNow = de::from_unix_ms(1'700'000'000'000);

constexpr std::array kAllStatuses{
    TaskExecutionStatus::ready,
    TaskExecutionStatus::running,
    TaskExecutionStatus::failed,
    TaskExecutionStatus::timed_out,
    TaskExecutionStatus::waiting_for_children,
    TaskExecutionStatus::waiting_for_finalize,
    TaskExecutionStatus::finalize_failed,
    TaskExecutionStatus::completed,
    TaskExecutionStatus::cancelled,
};

// The directives one status implies, written out per status (not derived from the predicates
// the implementation uses), so the table is an independent reading of SPEC.md §2.3.
struct Expected {
  TaskExecutionStatus status;
  bool finished;
  bool unset_run_output;
  bool unset_error;
  bool unset_executor_id;  // with needs_promise_cancellation not false
  bool unset_expires_at;
};

constexpr std::array kTable{
    // status, finished, unset run_output, unset error, unset executor_id, unset expires_at
    Expected{TaskExecutionStatus::ready, false, true, false, true, true},
    Expected{TaskExecutionStatus::running, false, false, false, false, false},
    Expected{TaskExecutionStatus::failed, true, true, false, true, true},
    Expected{TaskExecutionStatus::timed_out, true, true, false, true, true},
    Expected{TaskExecutionStatus::waiting_for_children, false, false, true, true, true},
    Expected{TaskExecutionStatus::waiting_for_finalize, false, false, true, true, true},
    Expected{TaskExecutionStatus::finalize_failed, true, true, false, true, true},
    Expected{TaskExecutionStatus::completed, true, true, true, true, true},
    Expected{TaskExecutionStatus::cancelled, true, true, false, false, true},
};

std::string name(TaskExecutionStatus s) { return std::string{de::to_string(s)}; }

// Only the directives (and updated_at) differ from the input update.
void expect_directives(const TaskExecutionUpdate& got, const TaskExecutionUpdate& input,
                       const Expected& e, bool unset_executor_id) {
  auto stripped = got;
  EXPECT_EQ(got.updated_at, kNow);
  if (e.finished) {
    EXPECT_EQ(got.is_finished, true);
    EXPECT_EQ(got.finished_at, kNow);
  } else {
    EXPECT_FALSE(got.is_finished.has_value());
    EXPECT_FALSE(got.finished_at.has_value());
  }
  EXPECT_EQ(got.unset_run_output, e.unset_run_output);
  EXPECT_EQ(got.unset_error, e.unset_error);
  EXPECT_EQ(got.unset_executor_id, unset_executor_id);
  EXPECT_EQ(got.unset_expires_at, e.unset_expires_at);
  EXPECT_FALSE(got.unset_on_children_finished_processing_expires_at);
  EXPECT_FALSE(got.unset_close_expires_at);
  stripped.is_finished.reset();
  stripped.finished_at.reset();
  stripped.unset_run_output = false;
  stripped.unset_error = false;
  stripped.unset_executor_id = false;
  stripped.unset_expires_at = false;
  stripped.updated_at = input.updated_at;
  EXPECT_EQ(stripped, input) << "the normalizer must not change the set fields";
}

}  // namespace

TEST(NormalizeUpdate, TableCoversEveryStatus) {
  ASSERT_EQ(kTable.size(), kAllStatuses.size());
  for (std::size_t i = 0; i < kTable.size(); ++i) EXPECT_EQ(kTable[i].status, kAllStatuses[i]);
}

TEST(NormalizeUpdate, SetsExactlyTheDirectivesOfEachStatus) {
  for (const auto& e : kTable) {
    SCOPED_TRACE(name(e.status));
    const TaskExecutionUpdate input{.status = e.status};
    expect_directives(de::normalize_update(kNow, input), input, e, e.unset_executor_id);
  }
}

TEST(NormalizeUpdate, NeedsPromiseCancellationFalseAlwaysUnsetsTheExecutor) {
  for (const auto& e : kTable) {
    SCOPED_TRACE(name(e.status));
    const TaskExecutionUpdate input{.status = e.status, .needs_promise_cancellation = false};
    expect_directives(de::normalize_update(kNow, input), input, e, true);
  }
}

TEST(NormalizeUpdate, NeedsPromiseCancellationTrueKeepsTheRule) {
  for (const auto& e : kTable) {
    SCOPED_TRACE(name(e.status));
    const TaskExecutionUpdate input{.status = e.status, .needs_promise_cancellation = true};
    expect_directives(de::normalize_update(kNow, input), input, e, e.unset_executor_id);
  }
}

TEST(NormalizeUpdate, WithoutStatusOnlyStampsUpdatedAt) {
  const TaskExecutionUpdate input{
      .retry_attempts = 3, .start_at = kNow + milliseconds{5}, .needs_promise_cancellation = false};
  auto got = de::normalize_update(kNow, input);
  EXPECT_EQ(got.updated_at, kNow);
  got.updated_at = {};
  EXPECT_EQ(got, input);  // no status: needs_promise_cancellation=false alone unsets nothing
}

TEST(NormalizeUpdate, ProcessingStatusOtherThanProcessingUnsetsItsExpiry) {
  for (const auto s :
       {OnChildrenFinishedProcessingStatus::idle, OnChildrenFinishedProcessingStatus::processing,
        OnChildrenFinishedProcessingStatus::processed}) {
    SCOPED_TRACE(std::string{de::to_string(s)});
    const auto got = de::normalize_update(kNow, {.on_children_finished_processing_status = s});
    EXPECT_EQ(got.unset_on_children_finished_processing_expires_at,
              s != OnChildrenFinishedProcessingStatus::processing);
    EXPECT_FALSE(got.unset_close_expires_at);
    EXPECT_FALSE(got.unset_executor_id);
    EXPECT_FALSE(got.is_finished.has_value());
  }
  const auto claim = de::normalize_update(
      kNow,
      {.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::processing,
       .on_children_finished_processing_expires_at = kNow + milliseconds{120'000}});
  EXPECT_EQ(claim.on_children_finished_processing_expires_at, kNow + milliseconds{120'000});
}

TEST(NormalizeUpdate, CloseStatusOtherThanClosingUnsetsCloseExpiry) {
  for (const auto s :
       {CloseStatus::idle, CloseStatus::ready, CloseStatus::closing, CloseStatus::closed}) {
    SCOPED_TRACE(std::string{de::to_string(s)});
    const auto got = de::normalize_update(kNow, {.close_status = s});
    EXPECT_EQ(got.unset_close_expires_at, s != CloseStatus::closing);
    EXPECT_FALSE(got.unset_on_children_finished_processing_expires_at);
  }
  const auto claim = de::normalize_update(
      kNow, {.close_status = CloseStatus::closing, .close_expires_at = kNow + milliseconds{1}});
  EXPECT_EQ(claim.close_expires_at, kNow + milliseconds{1});
  EXPECT_FALSE(claim.unset_close_expires_at);
}

TEST(NormalizeUpdate, StatusAndSubStatesCombine) {
  // The T17 write: completed + processed in one update.
  const auto got = de::normalize_update(
      kNow,
      {.status = TaskExecutionStatus::completed,
       .output = "out",
       .on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::processed,
       .on_children_finished_processing_finished_at = kNow});
  EXPECT_EQ(got.is_finished, true);
  EXPECT_TRUE(got.unset_run_output);
  EXPECT_TRUE(got.unset_error);
  EXPECT_TRUE(got.unset_executor_id);
  EXPECT_TRUE(got.unset_expires_at);
  EXPECT_TRUE(got.unset_on_children_finished_processing_expires_at);
  EXPECT_FALSE(got.unset_close_expires_at);
  EXPECT_EQ(got.output, "out");
}

TEST(NormalizeUpdate, AcceptsTheEngineWrites) {
  const de::StoredError err{de::ErrorType::generic, true, false, "boom"};
  // T3 claim, T7 wait for children, T8 retry, T9 fail, T10 cancel, T14 expiry, T4 complete.
  EXPECT_NO_THROW((void)de::normalize_update(kNow, {.executor_id = "e",
                                                    .status = TaskExecutionStatus::running,
                                                    .started_at = kNow,
                                                    .expires_at = kNow}));
  EXPECT_NO_THROW(
      (void)de::normalize_update(kNow, {.status = TaskExecutionStatus::waiting_for_children,
                                        .run_output = "r",
                                        .active_children_count = 2}));
  EXPECT_NO_THROW((void)de::normalize_update(
      kNow,
      {.status = TaskExecutionStatus::ready, .error = err, .retry_attempts = 1, .start_at = kNow}));
  EXPECT_NO_THROW(
      (void)de::normalize_update(kNow, {.status = TaskExecutionStatus::failed, .error = err}));
  EXPECT_NO_THROW((void)de::normalize_update(kNow, {.status = TaskExecutionStatus::cancelled,
                                                    .error = err,
                                                    .needs_promise_cancellation = true}));
  EXPECT_NO_THROW(
      (void)de::normalize_update(kNow, {.status = TaskExecutionStatus::completed,
                                        .output = "o",
                                        .children = std::vector<de::TaskExecutionSummary>{}}));
  EXPECT_NO_THROW(
      (void)de::normalize_update(kNow, {.status = TaskExecutionStatus::running, .error = err}));
}

TEST(NormalizeUpdate, RejectsContradictoryUpdates) {
  const de::StoredError err{de::ErrorType::generic, false, false, "boom"};
  auto rejects = [](const TaskExecutionUpdate& u) {
    try {
      (void)de::normalize_update(kNow, u);
    } catch (const de::DurableExecutionError& e) {
      EXPECT_FALSE(e.is_retryable());
      EXPECT_EQ(e.type(), de::ErrorType::generic);
      return true;
    }
    return false;
  };
  for (const auto s : kAllStatuses) {
    SCOPED_TRACE(name(s));
    const bool finished = de::is_finished(s);
    EXPECT_EQ(rejects({.status = s, .run_output = "r"}),
              finished || s == TaskExecutionStatus::ready);
    EXPECT_EQ(rejects({.status = s, .output = "o"}), s != TaskExecutionStatus::completed);
    EXPECT_EQ(rejects({.status = s, .error = err}),
              s == TaskExecutionStatus::waiting_for_children ||
                  s == TaskExecutionStatus::waiting_for_finalize ||
                  s == TaskExecutionStatus::completed);
    EXPECT_EQ(rejects({.executor_id = "e", .status = s}),
              s != TaskExecutionStatus::running && s != TaskExecutionStatus::cancelled);
    EXPECT_TRUE(rejects({.executor_id = "e", .status = s, .needs_promise_cancellation = false}));
    EXPECT_EQ(rejects({.status = s, .expires_at = kNow}), s != TaskExecutionStatus::running);
  }
  EXPECT_TRUE(
      rejects({.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::idle,
               .on_children_finished_processing_expires_at = kNow}));
  EXPECT_TRUE(rejects({.close_status = CloseStatus::ready, .close_expires_at = kNow}));
  // Directives belong to the normalizer.
  EXPECT_TRUE(rejects({.unset_executor_id = true}));
  EXPECT_TRUE(rejects({.unset_error = true}));
  EXPECT_TRUE(rejects({.is_finished = true}));
  EXPECT_TRUE(rejects({.finished_at = kNow}));
  EXPECT_TRUE(rejects({.unset_close_expires_at = true}));
  EXPECT_TRUE(rejects({.unset_on_children_finished_processing_expires_at = true}));
  EXPECT_TRUE(rejects({.unset_run_output = true}));
  EXPECT_TRUE(rejects({.unset_expires_at = true}));
}

// ---- apply_update ---------------------------------------------------------------------------

namespace {

de::TaskExecutionRecord running_record() {
  auto r = de::make_task_execution_record(
      kNow - milliseconds{1000},
      {.task_id = "t", .execution_id = "te_1", .timeout = milliseconds{500}, .input = "in"});
  r.status = TaskExecutionStatus::running;
  r.executor_id = "executor";
  r.started_at = kNow - milliseconds{900};
  r.expires_at = kNow + milliseconds{100};
  r.run_output = "stale run output";
  r.error = de::StoredError{de::ErrorType::generic, true, false, "previous"};
  r.on_children_finished_processing_expires_at = kNow;
  r.close_expires_at = kNow;
  return r;
}

}  // namespace

TEST(ApplyUpdate, UnsetWinsOverSet) {
  auto r = running_record();
  TaskExecutionUpdate u;
  u.executor_id = "new";
  u.run_output = "new";
  u.error = de::StoredError{};
  u.expires_at = kNow;
  u.on_children_finished_processing_expires_at = kNow;
  u.close_expires_at = kNow;
  u.unset_executor_id = true;
  u.unset_run_output = true;
  u.unset_error = true;
  u.unset_expires_at = true;
  u.unset_on_children_finished_processing_expires_at = true;
  u.unset_close_expires_at = true;
  u.updated_at = kNow;
  de::apply_update(r, u);
  EXPECT_FALSE(r.executor_id.has_value());
  EXPECT_FALSE(r.run_output.has_value());
  EXPECT_FALSE(r.error.has_value());
  EXPECT_FALSE(r.expires_at.has_value());
  EXPECT_FALSE(r.on_children_finished_processing_expires_at.has_value());
  EXPECT_FALSE(r.close_expires_at.has_value());
  EXPECT_EQ(r.updated_at, kNow);
}

TEST(ApplyUpdate, SetsGivenFieldsAndLeavesTheRest) {
  const auto before = running_record();
  auto r = before;
  const TaskExecutionUpdate u{.retry_attempts = 4,
                              .active_children_count = -2,
                              .needs_promise_cancellation = true,
                              .updated_at = kNow + milliseconds{7}};
  de::apply_update(r, u);
  auto expected = before;
  expected.retry_attempts = 4;
  expected.active_children_count = -2;
  expected.needs_promise_cancellation = true;
  expected.updated_at = kNow + milliseconds{7};
  EXPECT_EQ(r, expected);
}

TEST(ApplyUpdate, NormalizedCompletionOfARunningRecord) {
  auto r = running_record();
  const auto before = r;
  de::apply_update(
      r, de::normalize_update(kNow, {.status = TaskExecutionStatus::completed, .output = "out"}));
  auto expected = before;
  expected.status = TaskExecutionStatus::completed;
  expected.is_finished = true;
  expected.finished_at = kNow;
  expected.output = "out";
  expected.executor_id.reset();
  expected.run_output.reset();
  expected.error.reset();
  expected.expires_at.reset();
  expected.updated_at = kNow;
  EXPECT_EQ(r, expected);
}

TEST(ApplyUpdate, EmptyUpdateOnlyWritesUpdatedAt) {
  auto r = running_record();
  const auto before = r;
  de::apply_update(r, TaskExecutionUpdate{.updated_at = kNow + milliseconds{1}});
  auto expected = before;
  expected.updated_at = kNow + milliseconds{1};
  EXPECT_EQ(r, expected);
}

TEST(MakeTaskExecutionRecord, InsertDefaults) {
  const auto r = de::make_task_execution_record(kNow, {.task_id = "t",
                                                       .execution_id = "te_x",
                                                       .sleep_before_run = milliseconds{250},
                                                       .timeout = milliseconds{1000},
                                                       .input = "in"});
  EXPECT_EQ(r.status, TaskExecutionStatus::ready);
  EXPECT_EQ(r.start_at, kNow + milliseconds{250});
  EXPECT_FALSE(r.expires_at.has_value());
  EXPECT_FALSE(r.sleeping_task_unique_id.has_value());
  EXPECT_EQ(r.created_at, kNow);
  EXPECT_EQ(r.updated_at, kNow);
  EXPECT_EQ(r.retry_attempts, 0);
  EXPECT_FALSE(r.is_finished);

  const auto s = de::make_task_execution_record(kNow, {.task_id = "t",
                                                       .execution_id = "te_y",
                                                       .is_sleeping_task = true,
                                                       .sleep_before_run = milliseconds{250},
                                                       .timeout = milliseconds{1000}});
  EXPECT_EQ(s.status, TaskExecutionStatus::running);
  EXPECT_EQ(s.expires_at, kNow + milliseconds{1250});
  EXPECT_EQ(s.sleeping_task_unique_id, "");  // a missing unique id becomes ""
  EXPECT_FALSE(s.started_at.has_value());
}
