#include "run_deadlines.hpp"

#include <algorithm>

namespace durable_execution::detail {

RunDeadlines::Slot& RunDeadlines::acquire() {
  std::lock_guard lock(mutex_);
  if (free_.empty()) return slots_.emplace_back();
  auto* slot = free_.back();
  free_.pop_back();
  return *slot;
}

void RunDeadlines::release(Slot& slot) {
  std::lock_guard lock(mutex_);
  free_.push_back(&slot);
}

void RunDeadlines::arm(Slot& slot, const std::shared_ptr<Run>& run,
                       SteadyClock::time_point deadline) {
  if (!timer_) return;
  {
    std::lock_guard lock(slot.mutex);
    slot.run = run;
    slot.deadline = deadline;
  }
  schedule_check(deadline);
}

void RunDeadlines::disarm(Slot& slot) {
  if (!timer_) return;
  std::lock_guard lock(slot.mutex);
  slot.run.reset();
}

void RunDeadlines::schedule_check(SteadyClock::time_point deadline) {
  // Runs of one task share a timeout, so a new run's deadline is almost never the earliest.
  const auto t = deadline.time_since_epoch().count();
  auto pending = next_check_.load();
  while (t < pending) {
    if (next_check_.compare_exchange_weak(pending, t)) {
      timer_->schedule(deadline, [this] { check(); });
      return;
    }
  }
}

void RunDeadlines::check() {
  // Reset first: a worker that arms from here on schedules a check of its own, and one that
  // armed before has its run in a slot that the scan below sees.
  next_check_.store(std::numeric_limits<SteadyClock::rep>::max());
  std::vector<std::shared_ptr<Run>> due;
  auto earliest = SteadyClock::time_point::max();
  {
    std::lock_guard lock(mutex_);
    const auto now = clock_.steady_now();
    for (auto& slot : slots_) {
      std::lock_guard slot_lock(slot.mutex);
      if (!slot.run) continue;
      if (slot.deadline <= now) {
        due.push_back(std::move(slot.run));  // leaves the slot empty
      } else {
        earliest = std::min(earliest, slot.deadline);
      }
    }
  }
  for (const auto& run : due) on_due_(run);
  if (earliest != SteadyClock::time_point::max()) schedule_check(earliest);
}

}  // namespace durable_execution::detail
