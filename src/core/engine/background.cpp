#include "background.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace durable_execution::detail {

using std::chrono::milliseconds;
using Status = TaskExecutionStatus;

void Background::start(std::shared_ptr<void> owner) {
  thread_ = std::thread([this, owner = std::move(owner)] { loop(); });
}

bool Background::join(SteadyClock::time_point deadline) {
  if (!thread_.joinable()) return true;
  while (!done_.load() && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds{1});
  }
  if (!done_.load()) {
    thread_.detach();  // it owns a reference to the engine (start())
    return false;
  }
  thread_.join();
  return true;
}

std::map<std::string, ProcessBatchStats> Background::stats() const {
  return {{"children", children_stats_.get()},
          {"mark", mark_stats_.get()},
          {"close", close_stats_.get()},
          {"cancel", cancel_stats_.get()},
          {"expire", expire_stats_.get()}};
}

template <class F>
Background::StepOutcome Background::step(const char* name, ProcessStats& stats,
                                         std::int32_t& errors, F&& fn) {
  const auto start = SteadyClock::now();
  try {
    const StepOutcome outcome = fn();
    stats.record(outcome.items, SteadyClock::now() - start);
    errors = 0;
    return outcome;
  } catch (const std::exception& e) {
    ++errors;
    c_.logger.error(fmt::format("Error in {}: consecutive_errors={}: {}", name, errors, e.what()));
    return {};
  }
}

void Background::loop() {
  c_.caller.adopt_thread();
  struct Done {
    std::atomic<bool>& flag;
    ~Done() { flag.store(true); }
  } done{done_};
  const auto& o = c_.options;
  const auto base = o.background_process_intra_batch_sleep;
  IdleBackoff backoff{base};
  StepDemand demand;
  // Every step is asked at least once per polling interval, however many named wake-ups come
  // in between: the bound on work nobody signalled (other processes', damaged rows set aside).
  auto next_poll = SteadyClock::now();
  auto next_cancel = SteadyClock::now() + jittered(base * 2);
  auto next_expire = SteadyClock::now() + jittered(base * 10);
  std::int32_t mark_errors = 0;
  std::int32_t close_errors = 0;
  std::int32_t children_errors = 0;
  std::int32_t cancel_errors = 0;
  std::int32_t expire_errors = 0;
  while (!c_.signals.stopped()) {
    const auto pass = c_.signals.background_begin_pass();
    demand.add(pass.steps);
    const bool poll = SteadyClock::now() >= next_poll;
    if (poll) demand.add(all_background_steps);
    std::int64_t work = 0;
    // The chained steps run when due (step_demand.hpp); each one's outcome says what is due next.
    const auto chained = [&](BackgroundStep which, const char* name, ProcessStats& stats,
                             std::int32_t& errors, std::int64_t batch_size, auto&& fn) {
      if (!demand.due(which)) return;
      const auto outcome = step(name, stats, errors, fn);
      demand.ran(which, outcome.items, batch_size, outcome.finished, errors > 0);
      work += outcome.items;
    };
    chained(BackgroundStep::mark, "mark", mark_stats_, mark_errors,
            o.mark_finished_task_executions_as_close_status_ready_batch_size,
            [this] { return mark_step(); });
    chained(BackgroundStep::close, "close", close_stats_, close_errors,
            o.close_finished_task_executions_batch_size, [this] { return close_step(); });
    chained(BackgroundStep::children, "children", children_stats_, children_errors,
            o.process_on_children_finished_task_executions_batch_size,
            [this] { return children_step(); });
    auto now = SteadyClock::now();
    if (pass.cancel_now || now >= next_cancel) {
      work += step("cancel", cancel_stats_, cancel_errors, [this] {
                return StepOutcome{cancel_step()};
              }).items;
      next_cancel = now + jittered(base * 2);
    }
    if (pass.expire_now || now >= next_expire) {
      const auto n = step("expire", expire_stats_, expire_errors, [this] {
                       return StepOutcome{expire_step()};
                     }).items;
      // Expired leases give any step work (reset parents, failed executions to close).
      if (n > 0) demand.add(all_background_steps);
      work += n;
      const bool busy = n >= o.retry_expired_task_executions_batch_size / 2;
      next_expire = now + (busy ? milliseconds{0} : jittered(base * 10));
    }
    const auto errors =
        std::max({mark_errors, close_errors, children_errors, cancel_errors, expire_errors});
    c_.pool.report_thread_cpu();
    const auto wait = backoff.next(work > 0, errors);
    if (poll) next_poll = SteadyClock::now() + jittered(wait);
    if (demand.any() && errors == 0) continue;
    // Woken, the next pass runs what the wake-ups named; at next_poll, every step.
    c_.signals.background_wait_until(std::min({next_poll, next_cancel, next_expire}));
  }
}

Background::StepOutcome Background::mark_step() {
  const auto req = c_.transitions.mark_finished(c_.clock.now());
  return {c_.caller.call(StorageMethod::mark_finished, [&](TaskExecutionsStorage& s) {
    return s.update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(req);
  })};
}

Background::StepOutcome Background::close_step() {
  const auto now = c_.clock.now();
  const auto req = c_.transitions.claim_close(now);
  auto rows = c_.caller.call(StorageMethod::claim_close, [&](TaskExecutionsStorage& s) {
    return s.update_by_close_status_and_return(req);
  });
  if (rows.empty()) return {};
  auto w = c_.transitions.plan_close(rows, now);
  // Transient failures are retried with back-off; if they persist, the close leases expire and
  // the close runs again (its writes are idempotent). A request rejected for good is dropped
  // from its batch, so that it holds back nothing else.
  const auto nothing = [](std::size_t, const StoredError&) {
    return std::optional<UpdateByIdRequest>{};
  };
  if (!w.parent_updates.empty()) {
    (void)c_.writes.write_isolated("close", w.parent_updates, nothing);
    std::vector<std::string_view> ids;
    ids.reserve(w.parent_updates.size());
    for (const auto& pu : w.parent_updates) ids.emplace_back(pu.execution_id);
    c_.waiters.notify(ids);
  }
  if (!w.cancel_children.empty()) {
    c_.writes.store(w.cancel_children);
    c_.waiters.notify_all();  // the cancelled children's ids are not known here
    c_.signals.wake_background(all_background_steps, true);
  }
  (void)c_.writes.write_isolated("close", w.closes, nothing);
  // Parents settled by their finalize children are finished: the mark step has work.
  return {static_cast<std::int64_t>(rows.size()), !w.parent_updates.empty()};
}

void Background::read_children(const std::vector<TaskExecutionRecord>& parents,
                               ParentWrites& writes,
                               std::vector<std::vector<TaskExecutionRecord>>& loaded,
                               std::vector<bool>& skip) {
  std::vector<GetByParentExecutionIdRequest> reads;
  reads.reserve(parents.size());
  for (const auto& parent : parents) reads.push_back({parent.execution_id});
  const auto read = [this](const std::vector<GetByParentExecutionIdRequest>& r) {
    auto result = c_.caller.call_with_retries(
        StorageMethod::get_many_by_parent_execution_id, c_.writes.retries(),
        [&](TaskExecutionsStorage& s) { return s.get_many_by_parent_execution_id(r); });
    if (result.size() != r.size()) {
      throw DurableExecutionError(
          fmt::format("get_many_by_parent_execution_id returned {} results for {} requests",
                      result.size(), r.size()));
    }
    return result;
  };
  skip.assign(parents.size(), false);
  try {
    loaded = read(reads);
    return;
  } catch (const DurableExecutionError& e) {
    if (e.is_retryable()) throw;
  }
  // One parent's unreadable children (a damaged row) must not hold back the others: read each
  // parent's children alone.
  loaded.assign(parents.size(), {});
  for (std::size_t i = 0; i < parents.size(); ++i) {
    try {
      loaded[i] = std::move(read({reads[i]}).front());
    } catch (const DurableExecutionError& e) {
      skip[i] = true;
      // Retryable: its processing lease expires and the step runs again. Else it ends here.
      if (e.is_retryable()) continue;
      const auto& parent = parents[i];
      const auto message = e.to_stored().message;
      c_.logger.error(fmt::format("Error in children: the children of parent {} cannot be read: {}",
                                  parent.execution_id, message));
      c_.transitions.fail_parent(
          parent, Status::failed,
          DurableExecutionError::non_retryable(
              fmt::format("Children of parent task {} cannot be read: {}", parent.task_id, message))
              .to_stored(),
          c_.clock.now(), writes);
    }
  }
}

Background::StepOutcome Background::children_step() {
  auto rows = c_.caller.call(StorageMethod::claim_children_finished, [&](TaskExecutionsStorage& s) {
    return s
        .update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
            c_.transitions.claim_children_finished(c_.clock.now()));
  });
  if (rows.empty()) return {};
  // One read for the children of every claimed parent, one or two writes for all outcomes.
  // Transient failures are retried with back-off; if they persist, the parents' processing
  // leases expire and the expiry process resets them to idle: the step runs again then.
  ParentWrites writes;
  std::vector<std::vector<TaskExecutionRecord>> loaded;
  std::vector<bool> skip;
  read_children(rows, writes, loaded, skip);
  const auto now = c_.clock.now();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (skip[i]) continue;
    try {
      c_.transitions.plan_parent(rows[i], loaded[i], now, writes);
    } catch (const std::exception& e) {
      // Planning reads nothing from storage: what throws here would throw again at every
      // attempt of the step, so the parent ends with the error instead.
      c_.logger.error(
          fmt::format("Error in children: parent {}: {}", rows[i].execution_id, e.what()));
      c_.transitions.fail_parent(
          rows[i], Status::failed,
          DurableExecutionError::non_retryable(
              fmt::format("Children step of parent task {} failed: {}", rows[i].task_id, e.what()),
              true)
              .to_stored(),
          now, writes);
    }
  }
  // A write the storage rejects fails its parent (the failure path only: a linear search).
  const auto failure = [&rows, this](const auto& requests) {
    return [&rows, &requests, this](std::size_t i, const StoredError& error) {
      std::optional<UpdateByIdRequest> update;
      for (const auto& parent : rows) {
        if (parent.execution_id != requests[i].execution_id) continue;
        ParentWrites failed;
        c_.transitions.fail_parent(parent, Status::failed, error, c_.clock.now(), failed);
        if (!failed.updates.empty()) update = std::move(failed.updates.front());
        break;
      }
      return update;
    };
  };
  if (!writes.updates.empty()) {
    (void)c_.writes.write_isolated("children", writes.updates, failure(writes.updates));
  }
  if (!writes.with_children.empty()) {
    std::set<Timestamp> starts;
    for (const auto& w : writes.with_children) {
      c_.signals.expect_children(w.children_to_insert_if_updated, starts);
    }
    (void)c_.writes.write_isolated("children", writes.with_children, failure(writes.with_children));
    for (const auto& t : starts) c_.signals.dispatch_at(t);
  }
  std::vector<std::string_view> finished;
  for (const auto& w : writes.updates) {
    if (w.update.is_finished) finished.emplace_back(w.execution_id);
  }
  c_.waiters.notify(finished);
  return {static_cast<std::int64_t>(rows.size()), !finished.empty()};
}

std::int64_t Background::cancel_step() {
  if (c_.runs.running() == 0) return 0;
  const auto req = c_.transitions.claim_cancellations(c_.executor_id, c_.clock.now());
  auto rows = c_.caller.call(StorageMethod::claim_cancellations, [&](TaskExecutionsStorage& s) {
    return s.update_by_executor_id_and_needs_promise_cancellation_and_return(req);
  });
  for (const auto& row : rows) c_.runner.cancel(row.execution_id);
  return static_cast<std::int64_t>(rows.size());
}

std::int64_t Background::expire_step() {
  const auto reqs = c_.transitions.expire(c_.clock.now());
  std::int64_t total = 0;
  const auto expire = [this](const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& req) {
    return c_.caller.call(StorageMethod::expire_running, [&](TaskExecutionsStorage& s) {
      return s.update_by_is_sleeping_task_and_expires_at_less_than(req);
    });
  };
  if (const auto n = expire(reqs.running); n > 0) {
    c_.logger.info(
        fmt::format("Returned {} expired task executions to ready (or failed them past "
                    "max_lease_expirations = {})",
                    n, c_.options.max_lease_expirations));
    c_.signals.wake_dispatcher();
    c_.waiters.notify_all();  // some may have failed past max_lease_expirations
    total += n;
  }
  if (const auto n = expire(reqs.sleeping); n > 0) {
    c_.waiters.notify_all();
    total += n;
  }
  total += c_.caller.call(StorageMethod::expire_processing, [&](TaskExecutionsStorage& s) {
    return s.update_by_on_children_finished_processing_expires_at_less_than(reqs.processing);
  });
  total += c_.caller.call(StorageMethod::expire_close, [&](TaskExecutionsStorage& s) {
    return s.update_by_close_expires_at_less_than(reqs.close);
  });
  return total;
}

}  // namespace durable_execution::detail
