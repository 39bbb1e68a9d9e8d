// Storage conformance, part 2: the bulk claim, expiry and decrement methods (SPEC.md §4.1,
// §4.3 Part B "Claims and expiries", "decrement"). Rows are keyed at past, now and future;
// a limit-2 call must take past, then now.

#include <algorithm>

#include "durable_execution/errors.hpp"
#include "durable_execution/testing/storage_conformance.hpp"
#include "storage_conformance_parts.hpp"

using durable_execution::CloseStatus;
using durable_execution::ErrorType;
using durable_execution::OnChildrenFinishedProcessingStatus;
using durable_execution::StoredError;
using durable_execution::TaskExecutionRecord;
using durable_execution::TaskExecutionStatus;
using durable_execution::TaskExecutionUpdate;
using durable_execution::testing::StorageConformance;
using std::chrono::milliseconds;

int durable_execution::testing::detail::storage_conformance_claims_part() noexcept { return 0; }

namespace {

std::vector<std::string> ids_of(const std::vector<TaskExecutionRecord>& records) {
  std::vector<std::string> ids;
  ids.reserve(records.size());
  for (const auto& r : records) ids.push_back(r.execution_id);
  return ids;
}

}  // namespace

// ---- start-at claim (T3) --------------------------------------------------------------------

TEST_P(StorageConformance, ClaimByStatusAndStartAtTakesOldestStartAtFirst) {
  const auto past = now_ - milliseconds{5000};
  const auto future = now_ + milliseconds{5000};
  auto r_past = new_record();
  r_past.start_at = past;
  r_past.timeout = milliseconds{1000};
  auto r_future = new_record();
  r_future.start_at = future;
  auto r_now = new_record();
  r_now.start_at = now_;
  r_now.timeout = milliseconds{3000};
  auto r_running = new_record();
  r_running.status = TaskExecutionStatus::running;
  r_running.start_at = past;
  auto r_completed = new_record();
  r_completed.status = TaskExecutionStatus::completed;
  r_completed.is_finished = true;
  r_completed.start_at = past;
  // Inserted out of start_at order so that insertion order cannot produce the right answer.
  insert({r_future, r_now, r_running, r_completed, r_past});

  const auto t = now_ + milliseconds{1000};
  const auto base = t + milliseconds{10'000};
  const auto claim = normalized(
      t, {.executor_id = "test-executor", .status = TaskExecutionStatus::running, .started_at = t});
  auto claimed = storage().update_by_status_and_start_at_less_than_and_return(
      {.status = TaskExecutionStatus::ready,
       .start_at_less_than = future + milliseconds{1000},
       .update = claim,
       .update_expires_at_with_started_at = base,
       .limit = 2});
  ASSERT_EQ(ids_of(claimed), (std::vector{r_past.execution_id, r_now.execution_id}));
  for (const auto& r : claimed) {
    EXPECT_EQ(r.status, TaskExecutionStatus::running);
    EXPECT_EQ(r.executor_id, "test-executor");
    EXPECT_EQ(r.started_at, t);
    EXPECT_EQ(r.updated_at, t);
    EXPECT_EQ(r, fetch(r.execution_id));  // returned rows are the stored rows after the update
  }
  // expires_at = base + the row's own timeout.
  EXPECT_EQ(claimed[0].expires_at, base + milliseconds{1000});
  EXPECT_EQ(claimed[1].expires_at, base + milliseconds{3000});

  EXPECT_EQ(fetch(r_future.execution_id), r_future);
  EXPECT_EQ(fetch(r_running.execution_id), r_running);
  EXPECT_EQ(fetch(r_completed.execution_id), r_completed);

  // A status nothing has selects nothing.
  EXPECT_TRUE(storage()
                  .update_by_status_and_start_at_less_than_and_return(
                      {.status = TaskExecutionStatus::failed,
                       .start_at_less_than = future + milliseconds{1000},
                       .update = normalized(t, {}),
                       .update_expires_at_with_started_at = base,
                       .limit = 10})
                  .empty());

  // The bound is strict: start_at == bound is not selected.
  EXPECT_TRUE(storage()
                  .update_by_status_and_start_at_less_than_and_return(
                      {.status = TaskExecutionStatus::ready,
                       .start_at_less_than = future,
                       .update = claim,
                       .update_expires_at_with_started_at = base,
                       .limit = 10})
                  .empty());
  auto last = storage().update_by_status_and_start_at_less_than_and_return(
      {.status = TaskExecutionStatus::ready,
       .start_at_less_than = future + milliseconds{1},
       .update = claim,
       .update_expires_at_with_started_at = base,
       .limit = 10});
  EXPECT_EQ(ids_of(last), std::vector{r_future.execution_id});
}

// ---- processing claim (T15) -----------------------------------------------------------------

TEST_P(StorageConformance, ClaimParentsWithZeroActiveChildrenOldestUpdatedAtFirst) {
  const auto past = now_ - milliseconds{1000};
  const auto future = now_ + milliseconds{1000};
  auto waiting = [&](Timestamp updated_at, std::int32_t active) {
    auto r = new_record();
    r.status = TaskExecutionStatus::waiting_for_children;
    r.active_children_count = active;
    r.updated_at = updated_at;
    return r;
  };
  const auto r_past = waiting(past, 0);
  const auto r_future = waiting(future, 0);
  const auto r_now = waiting(now_, 0);
  const auto r_busy = waiting(past, 2);       // non-zero count: excluded
  const auto r_negative = waiting(past, -1);  // only exactly zero counts
  auto r_processing = waiting(past, 0);       // other processing status: excluded
  r_processing.on_children_finished_processing_status =
      OnChildrenFinishedProcessingStatus::processing;
  auto r_completed = waiting(past, 0);  // other status: excluded
  r_completed.status = TaskExecutionStatus::completed;
  r_completed.is_finished = true;
  insert({r_future, r_busy, r_now, r_negative, r_processing, r_completed, r_past});

  const auto t = now_ + milliseconds{2000};
  auto claimed =
      storage()
          .update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
              {.status = TaskExecutionStatus::waiting_for_children,
               .on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::idle,
               .update = normalized(
                   t, {.on_children_finished_processing_status =
                           OnChildrenFinishedProcessingStatus::processing,
                       .on_children_finished_processing_expires_at = t + milliseconds{10'000}}),
               .limit = 2});
  ASSERT_EQ(ids_of(claimed), (std::vector{r_past.execution_id, r_now.execution_id}));
  for (const auto& r : claimed) {
    EXPECT_EQ(r.on_children_finished_processing_status,
              OnChildrenFinishedProcessingStatus::processing);
    EXPECT_EQ(r.on_children_finished_processing_expires_at, t + milliseconds{10'000});
    EXPECT_EQ(r.updated_at, t);
    EXPECT_EQ(r, fetch(r.execution_id));
  }
  for (const auto& r : {r_future, r_busy, r_negative, r_processing, r_completed}) {
    EXPECT_EQ(fetch(r.execution_id), r);
  }
}

// ---- close claim (T19) ----------------------------------------------------------------------

TEST_P(StorageConformance, ClaimByCloseStatusOldestUpdatedAtFirst) {
  const auto past = now_ - milliseconds{1000};
  const auto future = now_ + milliseconds{1000};
  auto closable = [&](CloseStatus status, Timestamp updated_at) {
    auto r = new_record();
    r.status = TaskExecutionStatus::completed;
    r.is_finished = true;
    r.close_status = status;
    r.updated_at = updated_at;
    return r;
  };
  const auto r_past = closable(CloseStatus::ready, past);
  const auto r_future = closable(CloseStatus::ready, future);
  const auto r_now = closable(CloseStatus::ready, now_);
  auto r_closing = closable(CloseStatus::closing, past - milliseconds{1});
  r_closing.close_expires_at = future;
  const auto r_closed = closable(CloseStatus::closed, past - milliseconds{1});
  const auto r_idle = closable(CloseStatus::idle, past - milliseconds{1});
  insert({r_closing, r_future, r_closed, r_now, r_idle, r_past});

  const auto t = now_ + milliseconds{2000};
  auto claimed = storage().update_by_close_status_and_return(
      {.close_status = CloseStatus::ready,
       .update = normalized(
           t, {.close_status = CloseStatus::closing, .close_expires_at = t + milliseconds{10'000}}),
       .limit = 2});
  ASSERT_EQ(ids_of(claimed), (std::vector{r_past.execution_id, r_now.execution_id}));
  for (const auto& r : claimed) {
    EXPECT_EQ(r.close_status, CloseStatus::closing);
    EXPECT_EQ(r.close_expires_at, t + milliseconds{10'000});
    EXPECT_EQ(r.updated_at, t);
    EXPECT_EQ(r, fetch(r.execution_id));
  }
  for (const auto& r : {r_future, r_closing, r_closed, r_idle}) {
    EXPECT_EQ(fetch(r.execution_id), r);
  }
}

// ---- expiries (T13, T14, T22 and the processing expiry) -------------------------------------

TEST_P(StorageConformance, ExpireNonSleepingRunningRowsByExpiresAt) {
  const auto past = now_ - milliseconds{5000};
  const auto future = now_ + milliseconds{5000};
  auto running = [&](Timestamp expires_at) {
    auto r = new_record();
    r.status = TaskExecutionStatus::running;
    r.executor_id = "executor";
    r.started_at = now_ - milliseconds{6000};
    r.expires_at = expires_at;
    r.retry_attempts = 1;
    return r;
  };
  const auto r_past = running(past);
  const auto r_future = running(future);
  const auto r_now = running(now_);
  auto r_completed = new_record();  // no expires_at: never matches
  r_completed.status = TaskExecutionStatus::completed;
  r_completed.is_finished = true;
  const auto r_sleeping = new_sleeping_record("sleep_" + r_past.execution_id);
  auto r_sleeping_past = r_sleeping;  // the other sleeping flag: excluded
  r_sleeping_past.expires_at = past;
  insert({r_future, r_sleeping_past, r_now, r_completed, r_past});

  const auto t = future + milliseconds{1};
  const StoredError expired{ErrorType::generic, false, true, "Task execution expired"};
  const auto expire =
      normalized(t, {.status = TaskExecutionStatus::ready, .error = expired, .start_at = t});
  // Bound above all three; the limit decides: ascending expires_at, so past, then now.
  EXPECT_EQ(storage().update_by_is_sleeping_task_and_expires_at_less_than(
                {.is_sleeping_task = false,
                 .expires_at_less_than = future + milliseconds{1},
                 .update = expire,
                 .limit = 2}),
            2);
  for (const auto& r : fetch_all({r_past.execution_id, r_now.execution_id})) {
    EXPECT_EQ(r.status, TaskExecutionStatus::ready);
    EXPECT_EQ(r.error, expired);
    EXPECT_EQ(r.start_at, t);
    EXPECT_EQ(r.retry_attempts, 1);  // expiry consumes no retry
    EXPECT_FALSE(r.executor_id.has_value());
    EXPECT_FALSE(r.expires_at.has_value());
    EXPECT_EQ(r.updated_at, t);
  }
  EXPECT_EQ(fetch(r_future.execution_id), r_future);
  EXPECT_EQ(fetch(r_completed.execution_id), r_completed);
  EXPECT_EQ(fetch(r_sleeping_past.execution_id), r_sleeping_past);

  // Strict bound: expires_at == bound does not match.
  EXPECT_EQ(
      storage().update_by_is_sleeping_task_and_expires_at_less_than({.is_sleeping_task = false,
                                                                     .expires_at_less_than = future,
                                                                     .update = expire,
                                                                     .limit = 10}),
      0);
  EXPECT_EQ(fetch(r_future.execution_id), r_future);

  // T13: the sleeping flag selects only the sleeping row.
  const StoredError timed_out{ErrorType::timed_out, true, false, "Task execution timed out"};
  EXPECT_EQ(
      storage().update_by_is_sleeping_task_and_expires_at_less_than(
          {.is_sleeping_task = true,
           .expires_at_less_than = t,
           .update = normalized(
               t, {.status = TaskExecutionStatus::timed_out, .error = timed_out, .start_at = t}),
           .limit = 10}),
      1);
  const auto slept = fetch(r_sleeping_past.execution_id);
  EXPECT_EQ(slept.status, TaskExecutionStatus::timed_out);
  EXPECT_TRUE(slept.is_finished);
  EXPECT_EQ(slept.finished_at, t);
  EXPECT_EQ(slept.error, timed_out);
  EXPECT_FALSE(slept.expires_at.has_value());
  EXPECT_EQ(fetch(r_future.execution_id), r_future);
}

TEST_P(StorageConformance, ExpiryCountsLeaseExpirationsAndFailsRowsPastTheBound) {
  const auto past = now_ - milliseconds{5000};
  auto running = [&](Timestamp expires_at, std::int32_t lease_expirations) {
    auto r = new_record();
    r.status = TaskExecutionStatus::running;
    r.executor_id = "executor";
    r.started_at = now_ - milliseconds{6000};
    r.expires_at = expires_at;
    r.lease_expirations = lease_expirations;
    return r;
  };
  const auto fresh = running(past, 0);
  const auto below = running(past + milliseconds{1}, 2);
  const auto at_bound = running(past + milliseconds{2}, 3);
  const auto future = running(now_ + milliseconds{5000}, 7);  // not expired: untouched
  insert({fresh, below, at_bound, future});

  const auto t = now_;
  const StoredError expired{ErrorType::generic, false, false, "Task execution expired"};
  const StoredError abandoned{ErrorType::generic, false, false, "abandoned repeatedly"};
  auto again =
      normalized(t, {.status = TaskExecutionStatus::ready, .error = expired, .start_at = t});
  again.increment_lease_expirations = true;
  auto fail = normalized(t, {.status = TaskExecutionStatus::failed, .error = abandoned});
  fail.increment_lease_expirations = true;
  EXPECT_EQ(
      storage().update_by_is_sleeping_task_and_expires_at_less_than({.is_sleeping_task = false,
                                                                     .expires_at_less_than = t,
                                                                     .update = again,
                                                                     .limit = 10,
                                                                     .max_lease_expirations = 3,
                                                                     .exhausted_update = fail}),
      3);
  const auto f = fetch(fresh.execution_id);
  EXPECT_EQ(f.status, TaskExecutionStatus::ready);
  EXPECT_EQ(f.lease_expirations, 1);
  EXPECT_EQ(f.error, expired);
  const auto b = fetch(below.execution_id);
  EXPECT_EQ(b.status, TaskExecutionStatus::ready);
  EXPECT_EQ(b.lease_expirations, 3);
  const auto a = fetch(at_bound.execution_id);
  EXPECT_EQ(a.status, TaskExecutionStatus::failed);
  EXPECT_TRUE(a.is_finished);
  EXPECT_EQ(a.finished_at, t);
  EXPECT_EQ(a.error, abandoned);
  EXPECT_EQ(a.lease_expirations, 4);
  EXPECT_FALSE(a.expires_at.has_value());
  EXPECT_FALSE(a.executor_id.has_value());
  EXPECT_EQ(a.retry_attempts, at_bound.retry_attempts);  // not a retry attempt
  EXPECT_EQ(fetch(future.execution_id), future);

  // The limit bounds both updates together (the earliest expiry is past the bound).
  const auto x = running(past - milliseconds{10}, 5);
  const auto y = running(past, 0);
  insert({x, y});
  EXPECT_EQ(
      storage().update_by_is_sleeping_task_and_expires_at_less_than({.is_sleeping_task = false,
                                                                     .expires_at_less_than = t,
                                                                     .update = again,
                                                                     .limit = 1,
                                                                     .max_lease_expirations = 3,
                                                                     .exhausted_update = fail}),
      1);
  EXPECT_EQ(fetch(x.execution_id).status, TaskExecutionStatus::failed);
  EXPECT_EQ(fetch(y.execution_id), y);
  // Without a bound, an expired row returns to ready whatever its count.
  auto z = running(past, 9);
  insert({z});
  EXPECT_EQ(
      storage().update_by_is_sleeping_task_and_expires_at_less_than(
          {.is_sleeping_task = false, .expires_at_less_than = t, .update = again, .limit = 10}),
      2);
  EXPECT_EQ(fetch(y.execution_id).lease_expirations, 1);
  EXPECT_EQ(fetch(z.execution_id).status, TaskExecutionStatus::ready);
  EXPECT_EQ(fetch(z.execution_id).lease_expirations, 10);
}

TEST_P(StorageConformance, ExpireProcessingByExpiresAt) {
  const auto past = now_ - milliseconds{5000};
  const auto future = now_ + milliseconds{5000};
  auto processing = [&](std::optional<Timestamp> expires_at) {
    auto r = new_record();
    r.status = TaskExecutionStatus::waiting_for_children;
    r.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::processing;
    r.on_children_finished_processing_expires_at = expires_at;
    return r;
  };
  const auto r_past = processing(past);
  const auto r_future = processing(future);
  const auto r_now = processing(now_);
  auto r_processed = processing(std::nullopt);
  r_processed.on_children_finished_processing_status =
      OnChildrenFinishedProcessingStatus::processed;
  r_processed.updated_at = past - milliseconds{10'000};
  insert({r_processed, r_future, r_now, r_past});

  const auto t = future + milliseconds{1};
  EXPECT_EQ(storage().update_by_on_children_finished_processing_expires_at_less_than(
                {.on_children_finished_processing_expires_at_less_than = future + milliseconds{1},
                 .update = normalized(t, {.on_children_finished_processing_status =
                                              OnChildrenFinishedProcessingStatus::idle}),
                 .limit = 2}),
            2);
  for (const auto& r : fetch_all({r_past.execution_id, r_now.execution_id})) {
    EXPECT_EQ(r.on_children_finished_processing_status, OnChildrenFinishedProcessingStatus::idle);
    EXPECT_FALSE(r.on_children_finished_processing_expires_at.has_value());
    EXPECT_EQ(r.updated_at, t);
  }
  EXPECT_EQ(fetch(r_future.execution_id), r_future);
  EXPECT_EQ(fetch(r_processed.execution_id), r_processed);
  EXPECT_EQ(storage().update_by_on_children_finished_processing_expires_at_less_than(
                {.on_children_finished_processing_expires_at_less_than = future,
                 .update = normalized(t, {.on_children_finished_processing_status =
                                              OnChildrenFinishedProcessingStatus::idle}),
                 .limit = 10}),
            0);
}

TEST_P(StorageConformance, ExpireClosingByCloseExpiresAt) {
  const auto past = now_ - milliseconds{5000};
  const auto future = now_ + milliseconds{5000};
  auto closing = [&](std::optional<Timestamp> expires_at) {
    auto r = new_record();
    r.status = TaskExecutionStatus::completed;
    r.is_finished = true;
    r.close_status = CloseStatus::closing;
    r.close_expires_at = expires_at;
    return r;
  };
  const auto r_past = closing(past);
  const auto r_future = closing(future);
  const auto r_now = closing(now_);
  auto r_ready = closing(std::nullopt);
  r_ready.close_status = CloseStatus::ready;
  r_ready.updated_at = past - milliseconds{10'000};
  insert({r_ready, r_future, r_now, r_past});

  const auto t = future + milliseconds{1};
  EXPECT_EQ(storage().update_by_close_expires_at_less_than(
                {.close_expires_at_less_than = future + milliseconds{1},
                 .update = normalized(t, {.close_status = CloseStatus::ready}),
                 .limit = 2}),
            2);
  for (const auto& r : fetch_all({r_past.execution_id, r_now.execution_id})) {
    EXPECT_EQ(r.close_status, CloseStatus::ready);
    EXPECT_FALSE(r.close_expires_at.has_value());
    EXPECT_EQ(r.updated_at, t);
  }
  EXPECT_EQ(fetch(r_future.execution_id), r_future);
  EXPECT_EQ(fetch(r_ready.execution_id), r_ready);
  EXPECT_EQ(storage().update_by_close_expires_at_less_than(
                {.close_expires_at_less_than = future,
                 .update = normalized(t, {.close_status = CloseStatus::ready}),
                 .limit = 10}),
            0);
}

// ---- cancellation claim (T23) ---------------------------------------------------------------

TEST_P(StorageConformance, ClaimByExecutorIdAndNeedsPromiseCancellation) {
  const auto past = now_ - milliseconds{1000};
  const auto future = now_ + milliseconds{1000};
  auto flagged = [&](const std::string& executor, bool flag, Timestamp updated_at) {
    auto r = new_record();
    r.status = TaskExecutionStatus::cancelled;
    r.is_finished = true;
    r.executor_id = executor;
    r.needs_promise_cancellation = flag;
    r.updated_at = updated_at;
    return r;
  };
  const auto r_past = flagged("executor1", true, past);
  const auto r_other = flagged("executor2", true, past - milliseconds{1});  // other executor
  const auto r_future = flagged("executor1", true, future);
  const auto r_now = flagged("executor1", true, now_);
  const auto r_unflagged = flagged("executor1", false, past - milliseconds{1});  // flag false
  auto r_unowned = flagged("executor1", true, past - milliseconds{1});           // no executor id
  r_unowned.executor_id.reset();
  insert({r_future, r_other, r_now, r_unflagged, r_unowned, r_past});

  const auto t = now_ + milliseconds{2000};
  auto claimed = storage().update_by_executor_id_and_needs_promise_cancellation_and_return(
      {.executor_id = "executor1",
       .needs_promise_cancellation = true,
       .update = normalized(t, {.needs_promise_cancellation = false}),
       .limit = 2});
  ASSERT_EQ(ids_of(claimed), (std::vector{r_past.execution_id, r_now.execution_id}));
  for (const auto& r : claimed) {
    EXPECT_FALSE(r.needs_promise_cancellation);
    EXPECT_EQ(r.executor_id, "executor1");
    EXPECT_EQ(r.updated_at, t);
    EXPECT_EQ(r, fetch(r.execution_id));
  }
  for (const auto& r : {r_other, r_future, r_unflagged, r_unowned}) {
    EXPECT_EQ(fetch(r.execution_id), r);
  }
}

// ---- limits ---------------------------------------------------------------------------------

TEST_P(StorageConformance, NonPositiveLimitSelectsNothing) {
  const auto past = now_ - milliseconds{1000};
  const auto parent = new_record();
  auto ready = new_record();
  ready.start_at = past;
  auto waiting = new_record();
  waiting.status = TaskExecutionStatus::waiting_for_children;
  auto close_ready = new_record();
  close_ready.status = TaskExecutionStatus::completed;
  close_ready.is_finished = true;
  close_ready.close_status = CloseStatus::ready;
  auto expired = new_record();
  expired.status = TaskExecutionStatus::running;
  expired.expires_at = past;
  auto sleeping = new_sleeping_record("sleep_" + expired.execution_id);
  sleeping.expires_at = past;
  auto processing = new_record();
  processing.status = TaskExecutionStatus::waiting_for_children;
  processing.on_children_finished_processing_status =
      OnChildrenFinishedProcessingStatus::processing;
  processing.on_children_finished_processing_expires_at = past;
  auto closing = new_record();
  closing.status = TaskExecutionStatus::completed;
  closing.is_finished = true;
  closing.close_status = CloseStatus::closing;
  closing.close_expires_at = past;
  auto flagged = new_record();
  flagged.executor_id = "executor1";
  flagged.needs_promise_cancellation = true;
  auto finished_child = new_child_record(parent, 0);
  finished_child.status = TaskExecutionStatus::failed;
  finished_child.is_finished = true;
  const std::vector all{parent,   ready,      waiting, close_ready, expired,
                        sleeping, processing, closing, flagged,     finished_child};
  insert(all);

  const auto t = now_ + milliseconds{2000};
  for (const std::int64_t limit : {std::int64_t{0}, std::int64_t{-1}}) {
    SCOPED_TRACE(limit);
    EXPECT_TRUE(storage()
                    .update_by_status_and_start_at_less_than_and_return(
                        {.status = TaskExecutionStatus::ready,
                         .start_at_less_than = t,
                         .update = normalized(t, {.status = TaskExecutionStatus::running}),
                         .update_expires_at_with_started_at = t,
                         .limit = limit})
                    .empty());
    EXPECT_TRUE(
        storage()
            .update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
                {.status = TaskExecutionStatus::waiting_for_children,
                 .on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::idle,
                 .update = normalized(t, {.on_children_finished_processing_status =
                                              OnChildrenFinishedProcessingStatus::processing}),
                 .limit = limit})
            .empty());
    EXPECT_TRUE(storage()
                    .update_by_close_status_and_return(
                        {.close_status = CloseStatus::ready,
                         .update = normalized(t, {.close_status = CloseStatus::closing}),
                         .limit = limit})
                    .empty());
    for (const bool is_sleeping : {false, true}) {
      EXPECT_EQ(storage().update_by_is_sleeping_task_and_expires_at_less_than(
                    {.is_sleeping_task = is_sleeping,
                     .expires_at_less_than = t,
                     .update = normalized(t, {.status = TaskExecutionStatus::timed_out}),
                     .limit = limit}),
                0);
    }
    EXPECT_EQ(storage().update_by_on_children_finished_processing_expires_at_less_than(
                  {.on_children_finished_processing_expires_at_less_than = t,
                   .update = normalized(t, {.on_children_finished_processing_status =
                                                OnChildrenFinishedProcessingStatus::idle}),
                   .limit = limit}),
              0);
    EXPECT_EQ(storage().update_by_close_expires_at_less_than(
                  {.close_expires_at_less_than = t,
                   .update = normalized(t, {.close_status = CloseStatus::ready}),
                   .limit = limit}),
              0);
    EXPECT_TRUE(storage()
                    .update_by_executor_id_and_needs_promise_cancellation_and_return(
                        {.executor_id = "executor1",
                         .needs_promise_cancellation = true,
                         .update = normalized(t, {.needs_promise_cancellation = false}),
                         .limit = limit})
                    .empty());
    EXPECT_EQ(
        storage().update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
            {.is_finished = true,
             .close_status = CloseStatus::idle,
             .update = normalized(t, {.close_status = CloseStatus::ready}),
             .limit = limit}),
        0);
  }
  for (const auto& r : all) EXPECT_EQ(fetch(r.execution_id), r);
}

// ---- decrement (T18) ------------------------------------------------------------------------

TEST_P(StorageConformance, DecrementParentActiveChildrenCount) {
  const auto past = now_ - milliseconds{1000};
  const auto future = now_ + milliseconds{1000};
  auto parent1 = new_record();
  parent1.status = TaskExecutionStatus::waiting_for_children;
  parent1.active_children_count = 3;
  auto parent2 = new_record();
  parent2.status = TaskExecutionStatus::waiting_for_children;
  parent2.active_children_count = 2;
  auto child = [&](const TaskExecutionRecord& parent, std::int32_t index,
                   TaskExecutionStatus status, Timestamp updated_at) {
    auto r = new_child_record(parent, index);
    r.status = status;
    r.is_finished = durable_execution::is_finished(status);
    r.updated_at = updated_at;
    return r;
  };
  const auto c0 = child(parent1, 0, TaskExecutionStatus::completed, past);
  const auto c1 = child(parent1, 1, TaskExecutionStatus::waiting_for_children, past);
  const auto c2 = child(parent2, 0, TaskExecutionStatus::completed, future);
  const auto c3 = child(parent2, 1, TaskExecutionStatus::failed, now_);
  auto c4 = child(parent1, 2, TaskExecutionStatus::completed, past);  // already marked
  c4.close_status = CloseStatus::ready;
  insert({parent1, parent2, c2, c1, c3, c4, c0});

  const auto t = now_ + milliseconds{2000};
  const auto mark = normalized(t, {.close_status = CloseStatus::ready});
  const durable_execution::UpdateAndDecrementParentActiveChildrenCountRequest request{
      .is_finished = true, .close_status = CloseStatus::idle, .update = mark, .limit = 2};

  // 3/2 → 2/1: the two oldest finished idle children (c0 of parent1, c3 of parent2).
  EXPECT_EQ(
      storage().update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
          request),
      2);
  for (const auto& r : fetch_all({c0.execution_id, c3.execution_id})) {
    EXPECT_EQ(r.close_status, CloseStatus::ready);
    EXPECT_EQ(r.updated_at, t);
  }
  EXPECT_EQ(fetch(c1.execution_id), c1);
  EXPECT_EQ(fetch(c2.execution_id), c2);
  EXPECT_EQ(fetch(c4.execution_id), c4);
  EXPECT_EQ(fetch(parent1.execution_id).active_children_count, 2);
  EXPECT_EQ(fetch(parent2.execution_id).active_children_count, 1);

  // 2/1 → 2/0.
  auto larger = request;
  larger.limit = 10;
  EXPECT_EQ(
      storage().update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
          larger),
      1);
  EXPECT_EQ(fetch(c2.execution_id).close_status, CloseStatus::ready);
  EXPECT_EQ(fetch(c1.execution_id), c1);
  EXPECT_EQ(fetch(parent1.execution_id).active_children_count, 2);
  EXPECT_EQ(fetch(parent2.execution_id).active_children_count, 0);

  // Nothing left.
  EXPECT_EQ(
      storage().update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
          larger),
      0);
  EXPECT_EQ(fetch(parent1.execution_id).active_children_count, 2);
  EXPECT_EQ(fetch(parent2.execution_id).active_children_count, 0);
  // The parents' other fields are untouched (the SQL stores may bump updated_at).
  auto p1 = fetch(parent1.execution_id);
  p1.updated_at = parent1.updated_at;
  p1.active_children_count = parent1.active_children_count;
  EXPECT_EQ(p1, parent1);
}

TEST_P(StorageConformance, DecrementCountsSeveralChildrenOfOneParentAndIgnoresTopLevelRows) {
  auto parent = new_record();
  parent.status = TaskExecutionStatus::waiting_for_children;
  parent.active_children_count = 3;
  std::vector<TaskExecutionRecord> rows{parent};
  for (std::int32_t i = 0; i < 3; ++i) {
    auto c = new_child_record(parent, i);
    c.status = TaskExecutionStatus::completed;
    c.is_finished = true;
    rows.push_back(c);
  }
  auto top_level = new_record();  // finished, no parent: marked, decrements nothing
  top_level.status = TaskExecutionStatus::failed;
  top_level.is_finished = true;
  rows.push_back(top_level);
  auto orphan = new_child_record(new_record(), 0);  // its parent is not stored
  orphan.status = TaskExecutionStatus::cancelled;
  orphan.is_finished = true;
  rows.push_back(orphan);
  insert(rows);

  const auto t = now_ + milliseconds{10};
  EXPECT_EQ(
      storage().update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
          {.is_finished = true,
           .close_status = CloseStatus::idle,
           .update = normalized(t, {.close_status = CloseStatus::ready}),
           .limit = 100}),
      5);
  EXPECT_EQ(fetch(parent.execution_id).active_children_count, 0);
  EXPECT_EQ(fetch(parent.execution_id).close_status, CloseStatus::idle);
  EXPECT_EQ(fetch(top_level.execution_id).close_status, CloseStatus::ready);
  EXPECT_EQ(fetch(orphan.execution_id).close_status, CloseStatus::ready);
  EXPECT_FALSE(find(orphan.parent->execution_id).has_value());
}

// ---- update by id with parent decrement (a child closed in its result write) ---------------

TEST_P(StorageConformance, UpdateByIdDecrementsTheParentOnlyWhenTheGuardedUpdateApplies) {
  auto parent = new_record();
  parent.status = TaskExecutionStatus::waiting_for_children;
  parent.active_children_count = 3;
  auto running_child = [&](std::int32_t index) {
    auto c = new_child_record(parent, index);
    c.status = TaskExecutionStatus::running;
    return c;
  };
  const auto c0 = running_child(0);
  const auto c1 = running_child(1);
  auto c2 = running_child(2);
  c2.status = TaskExecutionStatus::cancelled;  // already finished: the guard fails
  c2.is_finished = true;
  auto top_level = new_record();
  top_level.status = TaskExecutionStatus::running;
  insert({parent, c0, c1, c2, top_level});

  const auto t = now_ + milliseconds{10};
  const auto close = normalized(t, {.status = TaskExecutionStatus::completed,
                                    .output = std::string{"1"},
                                    .close_status = CloseStatus::closed,
                                    .closed_at = t});
  const durable_execution::GetByIdFilters running{.status = TaskExecutionStatus::running};
  storage().update_many_by_id({
      {.execution_id = c0.execution_id,
       .filters = running,
       .update = close,
       .decrement_parent_active_children_count = true},
      {.execution_id = c1.execution_id, .filters = running, .update = close},  // no decrement
      {.execution_id = c2.execution_id,
       .filters = running,
       .update = close,
       .decrement_parent_active_children_count = true},
      {.execution_id = top_level.execution_id,
       .filters = running,
       .update = close,
       .decrement_parent_active_children_count = true},  // no parent: nothing to decrement
      {.execution_id = "te_unknown",
       .filters = {},
       .update = close,
       .decrement_parent_active_children_count = true},
  });
  EXPECT_EQ(fetch(parent.execution_id).active_children_count, 2);
  EXPECT_EQ(fetch(c0.execution_id).status, TaskExecutionStatus::completed);
  EXPECT_EQ(fetch(c0.execution_id).close_status, CloseStatus::closed);
  EXPECT_EQ(fetch(c1.execution_id).status, TaskExecutionStatus::completed);
  EXPECT_EQ(fetch(c2.execution_id), c2);
  EXPECT_EQ(fetch(top_level.execution_id).close_status, CloseStatus::closed);

  // A second identical write no longer matches its guard: the parent keeps its count.
  storage().update_many_by_id({{.execution_id = c0.execution_id,
                                .filters = running,
                                .update = close,
                                .decrement_parent_active_children_count = true}});
  EXPECT_EQ(fetch(parent.execution_id).active_children_count, 2);
  auto p = fetch(parent.execution_id);
  p.updated_at = parent.updated_at;
  p.active_children_count = parent.active_children_count;
  EXPECT_EQ(p, parent);
}

// ---- values the engine never selects ----------------------------------------------------------

// A backend may optimise for the values the engine queries (the in-memory store keeps partial
// indexes); every other value must still select the right rows in the contract's order.
// ---- deferred durability: same effects, guards and atomicity as any write --------------------

TEST_P(StorageConformance, WritesThatDeferTheirDurabilityApplyLikeAnyOther) {
  auto parent = new_record();
  parent.status = TaskExecutionStatus::waiting_for_children;
  parent.active_children_count = 2;
  auto c0 = new_child_record(parent, 0);
  c0.status = TaskExecutionStatus::running;
  auto c1 = new_child_record(parent, 1);
  c1.status = TaskExecutionStatus::running;
  auto next = new_record();
  next.status = TaskExecutionStatus::running;
  insert({parent, c0, c1, next});

  const auto t = now_ + milliseconds{10};
  const auto done = normalized(t, {.status = TaskExecutionStatus::completed,
                                   .output = std::string{"out"},
                                   .close_status = CloseStatus::closed,
                                   .closed_at = t});
  const durable_execution::GetByIdFilters running{.status = TaskExecutionStatus::running};
  // One call mixing a deferred and a durable request, and a deferred one whose guard fails.
  storage().update_many_by_id({{.execution_id = c0.execution_id,
                                .filters = running,
                                .update = done,
                                .decrement_parent_active_children_count = true,
                                .defer_durability = true},
                               {.execution_id = c1.execution_id,
                                .filters = running,
                                .update = done,
                                .decrement_parent_active_children_count = true}});
  storage().update_many_by_id({{.execution_id = c0.execution_id,
                                .filters = running,
                                .update = done,
                                .decrement_parent_active_children_count = true,
                                .defer_durability = true}});
  EXPECT_EQ(fetch(c0.execution_id).output, "out");
  EXPECT_EQ(fetch(c1.execution_id).output, "out");
  EXPECT_EQ(fetch(parent.execution_id).active_children_count, 0);

  // Deferred update-and-insert: the children come with the update, and not without it.
  const auto child = new_child_record(next, 0);
  const auto waiting = normalized(
      t, {.status = TaskExecutionStatus::waiting_for_children,
          .children = std::vector<durable_execution::TaskExecutionSummary>{{child.task_id,
                                                                            child.execution_id}},
          .active_children_count = 1});
  storage().update_many_by_id_and_insert_children_if_updated(
      {{.execution_id = next.execution_id,
        .filters = running,
        .update = waiting,
        .children_to_insert_if_updated = {child},
        .defer_durability = true}});
  EXPECT_EQ(fetch(next.execution_id).status, TaskExecutionStatus::waiting_for_children);
  EXPECT_EQ(fetch(child.execution_id), child);
  auto other = new_child_record(next, 1);
  storage().update_many_by_id_and_insert_children_if_updated(
      {{.execution_id = next.execution_id,
        .filters = running,
        .update = waiting,
        .children_to_insert_if_updated = {other},
        .defer_durability = true}});
  EXPECT_FALSE(find(other.execution_id).has_value());
  const auto children = storage().get_many_by_parent_execution_id({{parent.execution_id}});
  ASSERT_EQ(children.size(), 1U);
  EXPECT_EQ(children[0].size(), 2U);
}

TEST_P(StorageConformance, ClaimsForValuesTheEngineNeverAsksForSelectInOrder) {
  const auto past = now_ - milliseconds{1000};
  auto row = [&](TaskExecutionStatus status, Timestamp start_at, Timestamp updated_at) {
    auto r = new_record();
    r.status = status;
    r.is_finished = durable_execution::is_finished(status);
    r.start_at = start_at;
    r.updated_at = updated_at;
    return r;
  };
  const auto failed_late = row(TaskExecutionStatus::failed, now_, past);
  const auto failed_early = row(TaskExecutionStatus::failed, past, now_);
  const auto ready = row(TaskExecutionStatus::ready, past - milliseconds{1}, past);
  auto closed_late = row(TaskExecutionStatus::completed, past, now_);
  closed_late.close_status = CloseStatus::closed;
  auto closed_early = row(TaskExecutionStatus::completed, past, past);
  closed_early.close_status = CloseStatus::closed;
  insert({failed_late, closed_late, ready, failed_early, closed_early});

  const auto t = now_ + milliseconds{2000};
  const auto touch = normalized(t, {.executor_id = "other-executor"});
  // By status and start_at: the oldest start_at of the failed rows first.
  auto by_status = storage().update_by_status_and_start_at_less_than_and_return(
      {.status = TaskExecutionStatus::failed,
       .start_at_less_than = t,
       .update = touch,
       .update_expires_at_with_started_at = t,
       .limit = 1});
  EXPECT_EQ(ids_of(by_status), std::vector{failed_early.execution_id});
  // By close status: the oldest updated_at of the closed rows first, then the rest.
  auto by_close = storage().update_by_close_status_and_return(
      {.close_status = CloseStatus::closed, .update = touch, .limit = 10});
  EXPECT_EQ(ids_of(by_close), (std::vector{closed_early.execution_id, closed_late.execution_id}));
  EXPECT_EQ(fetch(ready.execution_id), ready);
  EXPECT_EQ(fetch(failed_late.execution_id), failed_late);
  // By executor without the cancellation flag: every row touched above, oldest update first.
  auto by_executor = storage().update_by_executor_id_and_needs_promise_cancellation_and_return(
      {.executor_id = "other-executor",
       .needs_promise_cancellation = false,
       .update = normalized(t + milliseconds{1}, {.needs_promise_cancellation = false}),
       .limit = 10});
  EXPECT_EQ(by_executor.size(), 3U);
}

TEST_P(StorageConformance, UpdateByIdUpdatesTheParentOnlyWhenBothGuardsMatch) {
  auto parent = new_record();
  parent.status = TaskExecutionStatus::waiting_for_finalize;
  auto settled_parent = new_record();
  settled_parent.status = TaskExecutionStatus::cancelled;  // the parent's guard fails
  settled_parent.is_finished = true;
  auto finalize_child = [](const TaskExecutionRecord& p, TaskExecutionRecord c) {
    c.status = TaskExecutionStatus::running;
    c.parent =
        durable_execution::ParentTaskExecutionSummary{p.task_id, p.execution_id, 0, false, true};
    return c;
  };
  const auto fin = finalize_child(parent, new_child_record(parent, 0));
  const auto fin_of_settled = finalize_child(settled_parent, new_child_record(settled_parent, 0));
  auto stale = finalize_child(parent, new_child_record(parent, 1));
  stale.status = TaskExecutionStatus::timed_out;  // the child's own guard fails
  stale.is_finished = true;
  insert({parent, settled_parent, fin, fin_of_settled, stale});

  const auto t = now_ + milliseconds{10};
  const auto done = normalized(t, {.status = TaskExecutionStatus::completed,
                                   .output = std::string{R"("done")"},
                                   .close_status = CloseStatus::closed,
                                   .closed_at = t});
  const durable_execution::ParentUpdateRequest settle{
      .filters = {.status = TaskExecutionStatus::waiting_for_finalize},
      .update = normalized(
          t, {.status = TaskExecutionStatus::completed, .output = std::string{R"("done")"}})};
  const durable_execution::GetByIdFilters running{.status = TaskExecutionStatus::running};
  auto request = [&](const TaskExecutionRecord& child) {
    return durable_execution::UpdateByIdRequest{.execution_id = child.execution_id,
                                                .filters = running,
                                                .update = done,
                                                .parent_update = settle};
  };

  storage().update_many_by_id({request(stale)});
  EXPECT_EQ(fetch(stale.execution_id), stale);
  EXPECT_EQ(fetch(parent.execution_id), parent);

  storage().update_many_by_id({request(fin), request(fin_of_settled)});
  const auto p = fetch(parent.execution_id);
  EXPECT_EQ(p.status, TaskExecutionStatus::completed);
  EXPECT_EQ(p.output, R"("done")");
  EXPECT_EQ(p.updated_at, t);
  EXPECT_EQ(fetch(fin.execution_id).status, TaskExecutionStatus::completed);
  EXPECT_EQ(fetch(fin_of_settled.execution_id).status, TaskExecutionStatus::completed);
  EXPECT_EQ(fetch(settled_parent.execution_id), settled_parent);
}
