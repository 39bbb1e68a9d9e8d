#include "dispatcher.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace durable_execution::detail {

namespace {
/** Claiming paused by abandoned runs is logged at most this often. */
constexpr std::chrono::seconds kPausedLogInterval{10};
/**
 * Longest a quarantine waits for the runs in flight here to finish, from its first wait. Past it
 * its claims go beside them: a long or stuck run must not stop this process from claiming
 * (if a suspect then kills the process, their lease expirations count once, and they run alone
 * next time).
 */
constexpr std::chrono::seconds kQuarantineDrainBound{2};
}  // namespace

void Dispatcher::start() {
  thread_ = std::thread([this] { loop(); });
}

void Dispatcher::join() {
  if (thread_.joinable()) thread_.join();
}

void Dispatcher::slot_freed(std::size_t running) {
  // Not once per finished run: half a batch free, or everything idle.
  if (!at_capacity_.load(std::memory_order_acquire)) return;
  const auto max = static_cast<std::size_t>(c_.options.max_concurrent_task_executions);
  const auto batch = std::min<std::size_t>(
      static_cast<std::size_t>(c_.options.max_task_executions_per_batch), max);
  running += static_cast<std::size_t>(std::max(0, c_.runs.abandoned()));
  const auto free = max - std::min(running, max);
  if (free >= std::max<std::size_t>(1, batch / 2) || running == 0) {
    at_capacity_.store(false, std::memory_order_release);
    c_.signals.wake_dispatcher();
  }
}

void Dispatcher::release(const std::vector<TaskExecutionRecord>& rows) {
  const auto releases = Transitions::release(rows, c_.clock.now());
  try {
    c_.writes.store(releases);
  } catch (const std::exception& e) {
    c_.logger.error(
        fmt::format("Error in ready: releasing {} executions: {} (left to lease expiry)",
                    releases.size(), e.what()));
  }
}

std::size_t Dispatcher::claim_and_dispatch(bool& full_batch) {
  const auto max = c_.options.max_concurrent_task_executions;
  const auto counts = c_.runs.counts(max);
  full_batch = false;
  // Quarantine: executions whose lease expired before (a process died while they ran) run alone
  // in this process, one claim at a time, so that if one of them kills the process again the
  // crash counts against it only, not against batch-mates (max_lease_expirations).
  // The wait for the runs in flight is bounded per quarantine (kQuarantineDrainBound): past it,
  // its remaining claims go beside whatever runs here.
  const bool quarantine = quarantine_claims_left_ > 0;
  if (quarantine && !counts.alone) {
    const auto now = c_.clock.steady_now();
    if (!quarantine_waiting_since_) quarantine_waiting_since_ = now;
    if (now - *quarantine_waiting_since_ < kQuarantineDrainBound) {
      at_capacity_.store(true, std::memory_order_release);
      if (c_.runs.counts(max).alone) {  // a run finished between the count and the flag
        at_capacity_.store(false, std::memory_order_release);
        full_batch = true;  // claim again at once
      }
      return 0;
    }
  }
  if (counts.free_slots <= 0) {
    at_capacity_.store(true, std::memory_order_release);
    // A run may have finished between the count and the flag: re-check once.
    if (c_.runs.counts(max).free_slots > 0) {
      at_capacity_.store(false, std::memory_order_release);
      full_batch = true;  // claim again at once
    } else if (counts.abandoned > 0 &&
               SteadyClock::now() - paused_logged_at_ >= kPausedLogInterval) {
      paused_logged_at_ = SteadyClock::now();
      c_.logger.error(fmt::format(
          "Claiming paused: all {} slots of max_concurrent_task_executions are taken, {} of them "
          "by abandoned runs (timed out or cancelled, their task function still running; it "
          "should watch its stop token)",
          max, counts.abandoned));
    }
    return 0;
  }
  const auto limit = quarantine ? 1
                                : std::min<std::int64_t>(c_.options.max_task_executions_per_batch,
                                                         counts.free_slots);
  const auto start = SteadyClock::now();
  const auto req = c_.transitions.claim_ready(c_.executor_id, limit, c_.clock.now());
  auto rows = c_.caller.call(StorageMethod::claim_ready, [&](TaskExecutionsStorage& s) {
    return s.update_by_status_and_start_at_less_than_and_return(req);
  });
  if (quarantine) {
    // Over when a claim finds nothing, or finds work that is not a suspect (claims go in start_at
    // order: the suspects ahead of it are gone).
    quarantine_claims_left_ =
        rows.empty() || rows.front().lease_expirations == 0 ? 0 : quarantine_claims_left_ - 1;
  }
  if (rows.empty()) {
    stats_.record(0, SteadyClock::now() - start);
    return 0;
  }
  const auto claimed = static_cast<std::int64_t>(rows.size());
  if (!quarantine && (!counts.alone || rows.size() > 1) &&
      std::any_of(rows.begin(), rows.end(),
                  [](const TaskExecutionRecord& r) { return r.lease_expirations > 0; })) {
    // Suspects claimed with other work go back to ready and are claimed again one at a time.
    std::vector<TaskExecutionRecord> suspects;
    const auto normal = std::partition(rows.begin(), rows.end(),
                                       [](const auto& r) { return r.lease_expirations == 0; });
    suspects.assign(std::make_move_iterator(normal), std::make_move_iterator(rows.end()));
    rows.erase(normal, rows.end());
    release(suspects);
    quarantine_claims_left_ = static_cast<std::int32_t>(2 * suspects.size() + 1);
    quarantine_waiting_since_.reset();
    c_.logger.debug(fmt::format(
        "Released {} executions whose lease expired before: they run alone, one at a time",
        suspects.size()));
    if (rows.empty()) {
      full_batch = true;  // go on with the quarantine at once
      stats_.record(0, SteadyClock::now() - start);
      return 0;
    }
  }
  auto admitted = c_.runs.admit(std::move(rows), c_.registry);
  const auto n = admitted.start.size();
  c_.runner.start(std::move(admitted));
  stats_.record(static_cast<std::int64_t>(n), SteadyClock::now() - start);
  full_batch = claimed >= limit;
  return n;
}

void Dispatcher::loop() {
  c_.caller.adopt_thread();
  IdleBackoff backoff{c_.options.background_process_intra_batch_sleep};
  std::int32_t errors = 0;
  while (!c_.signals.stopped()) {
    c_.signals.dispatcher_begin_pass();
    bool full = false;
    std::size_t claimed = 0;
    try {
      claimed = claim_and_dispatch(full);
      errors = 0;
    } catch (const std::exception& e) {
      ++errors;
      c_.logger.error(fmt::format("Error in ready: consecutive_errors={}: {}", errors, e.what()));
    }
    if (full) {
      c_.pool.report_thread_cpu();
      // More may be ready: keep claiming (the claim limit already accounts for free slots).
      backoff.reset();
      continue;
    }
    c_.pool.report_thread_cpu();
    c_.signals.dispatcher_wait(jittered(backoff.next(claimed > 0, errors)));
  }
}

}  // namespace durable_execution::detail
