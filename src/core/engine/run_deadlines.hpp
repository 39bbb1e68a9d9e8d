#pragma once

// Run timeouts without a timer entry per run: each worker thread owns a slot holding the run it
// executes and that run's deadline; one pending timer check at the earliest deadline scans the
// slots and hands the runs past theirs to `on_due` (T8/T9). A slot's mutex is only contended by
// that check, so arming a run costs no allocation and no shared lock. Entered by workers
// (acquire, arm, disarm, release) and the timer thread (check).

#include <atomic>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <vector>

#include "../executor_support.hpp"
#include "run_table.hpp"
#include "timer.hpp"

namespace durable_execution::detail {

class RunDeadlines {
 public:
  struct Slot {
    std::mutex mutex;
    std::shared_ptr<Run> run;
    SteadyClock::time_point deadline{};
  };
  using OnDue = std::function<void(const std::shared_ptr<Run>&)>;

  /** `timer` null: no deadlines are kept (arm and disarm do nothing). */
  RunDeadlines(const Clock& clock, TimerThread* timer, OnDue on_due)
      : clock_(clock), timer_(timer), on_due_(std::move(on_due)) {}

  /** @brief A slot for a new worker thread (one a retired worker left, if any). */
  [[nodiscard]] Slot& acquire();
  void release(Slot& slot);

  /** @brief `run` starts on the slot's worker and must end by `deadline`. */
  void arm(Slot& slot, const std::shared_ptr<Run>& run, SteadyClock::time_point deadline);
  /** @brief The run returned; from now on its deadline does not apply. */
  void disarm(Slot& slot);
  [[nodiscard]] bool enabled() const noexcept { return timer_ != nullptr; }

 private:
  /** Makes sure a check is pending at or before `deadline` (usually one already is). */
  void schedule_check(SteadyClock::time_point deadline);
  void check();

  const Clock& clock_;
  TimerThread* timer_;
  OnDue on_due_;
  std::mutex mutex_;
  std::deque<Slot> slots_;   // addresses are stable
  std::vector<Slot*> free_;  // left by retired workers
  /** The time of the earliest check on the timer, or max if none is pending. */
  std::atomic<SteadyClock::rep> next_check_{std::numeric_limits<SteadyClock::rep>::max()};
};

}  // namespace durable_execution::detail
