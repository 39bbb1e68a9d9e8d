#pragma once

// Who wakes the engine's two loops, and when: the dispatcher (claims) and the background thread
// (mark, close, children, cancel and expiry steps) sleep on their own condition variables and
// are woken by local work at once, by the timer at a due time (a retry's start, a sleeping
// execution's expiry), or by the stop flag. Entered by every thread; the loops only wait.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <vector>

#include "../executor_support.hpp"
#include "durable_execution/clock.hpp"
#include "durable_execution/task_execution.hpp"
#include "step_demand.hpp"
#include "timer.hpp"

namespace durable_execution::detail {

/**
 * @brief How long an idle loop waits before it looks again: the base interval after work, up to
 * 2.5x while idle (x9/8 per idle pass), up to 5x after 10 consecutive errors (x5/4 per pass).
 */
class IdleBackoff {
 public:
  explicit IdleBackoff(std::chrono::milliseconds base) : base_(base), cur_(base) {}
  /** @brief The next wait after a pass that found work (or not) with `errors` in a row. */
  std::chrono::milliseconds next(bool found_work, std::int32_t errors) {
    if (errors >= 10) {
      cur_ = std::min(cur_ * 5 / 4, base_ * 5);
    } else if (errors > 0 || found_work) {
      cur_ = base_;
    } else {
      cur_ = std::min(cur_ * 9 / 8, base_ * 5 / 2);
    }
    return cur_;
  }
  void reset() { cur_ = base_; }

 private:
  std::chrono::milliseconds base_;
  std::chrono::milliseconds cur_;
};

class LoopSignals {
 public:
  /** `timer`: the engine's timer thread (null in client mode: nothing is scheduled). */
  LoopSignals(const Clock& clock, TimerThread* timer) : clock_(clock), timer_(timer) {}

  void wake_dispatcher();
  /**
   * `steps`: the background steps that may have work now (step_demand.hpp); `cancel_now`: run
   * the cancel step in this pass (a cancellation reached storage).
   */
  void wake_background(unsigned steps = all_background_steps, bool cancel_now = false);
  /** The dispatcher claims at `start_at` (at once if due). */
  void dispatch_at(Timestamp start_at);
  /** The expiry step runs at `expires_at` (a local sleeping execution times out then). */
  void expire_at(Timestamp expires_at);
  /**
   * Children about to be inserted: sleeping ones get their expiry scheduled; the start times of
   * the others go to `starts`, for dispatch_at once the insert is written.
   */
  void expect_children(const std::vector<TaskExecutionRecord>& children,
                       std::set<Timestamp>& starts);

  /** @brief Stops both loops (they return from their waits at once). */
  void stop();
  [[nodiscard]] bool stopped() const noexcept { return stop_.load(); }

  // ---- the loops' side ------------------------------------------------------------------
  /** Clears the dispatcher's wake-up flag before a claim (a wake-up after it is kept). */
  void dispatcher_begin_pass();
  /** Waits up to `d` for a wake-up or stop. */
  void dispatcher_wait(SteadyClock::duration d);
  struct BackgroundPass {
    bool cancel_now = false;
    bool expire_now = false;
    /** The steps that wake-ups since the last pass named. */
    unsigned steps = 0;
  };
  /** Clears the background thread's wake-up flags and returns what they asked for. */
  [[nodiscard]] BackgroundPass background_begin_pass();
  void background_wait_until(SteadyClock::time_point until);

 private:
  const Clock& clock_;
  TimerThread* timer_;
  std::atomic<bool> stop_{false};
  std::mutex dispatch_mutex_;
  std::condition_variable dispatch_cv_;
  bool dispatch_wake_ = false;
  std::mutex bg_mutex_;
  std::condition_variable bg_cv_;
  bool bg_wake_ = false;
  bool bg_cancel_now_ = false;
  bool bg_expire_now_ = false;
  unsigned bg_steps_ = 0;
};

}  // namespace durable_execution::detail
