#include "durable_execution/clock.hpp"

#include "durable_execution/errors.hpp"

namespace durable_execution {

Clock::~Clock() = default;

std::uint64_t Clock::subscribe_to_jumps(std::function<void()> /*fn*/) const { return 0; }

void Clock::unsubscribe_from_jumps(std::uint64_t /*id*/) const noexcept {}

std::shared_ptr<SystemClock> SystemClock::instance() {
  static const auto clock = std::make_shared<SystemClock>();
  return clock;
}

ManualClock::ManualClock(Timestamp start)
    : now_(start), steady_(std::chrono::steady_clock::now()) {}

Timestamp ManualClock::now() const noexcept {
  std::lock_guard lock(mutex_);
  return now_;
}

std::chrono::steady_clock::time_point ManualClock::steady_now() const noexcept {
  std::lock_guard lock(mutex_);
  return steady_;
}

void ManualClock::advance(std::chrono::milliseconds d) {
  if (d.count() < 0) {
    throw DurableExecutionError::non_retryable("ManualClock::advance: the duration is negative");
  }
  {
    std::lock_guard lock(mutex_);
    now_ += d;
    steady_ += d;
  }
  // Called under listeners_mutex_, so that a listener that unsubscribes (a timer stopping) is
  // never called after unsubscribe_from_jumps() returned.
  std::lock_guard lock(listeners_mutex_);
  for (const auto& [id, fn] : listeners_) fn();
}

std::uint64_t ManualClock::subscribe_to_jumps(std::function<void()> fn) const {
  std::lock_guard lock(listeners_mutex_);
  const auto id = next_id_++;
  listeners_.emplace(id, std::move(fn));
  return id;
}

void ManualClock::unsubscribe_from_jumps(std::uint64_t id) const noexcept {
  std::lock_guard lock(listeners_mutex_);
  listeners_.erase(id);
}

}  // namespace durable_execution
