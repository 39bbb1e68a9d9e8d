#include "loop_signals.hpp"

#include "durable_execution/detail/saturating_time.hpp"

namespace durable_execution::detail {

using std::chrono::milliseconds;

void LoopSignals::wake_dispatcher() {
  {
    std::lock_guard lock(dispatch_mutex_);
    dispatch_wake_ = true;
  }
  dispatch_cv_.notify_one();
}

void LoopSignals::wake_background(unsigned steps, bool cancel_now) {
  {
    std::lock_guard lock(bg_mutex_);
    bg_wake_ = true;
    bg_steps_ |= steps;
    bg_cancel_now_ = bg_cancel_now_ || cancel_now;
  }
  bg_cv_.notify_one();
}

void LoopSignals::dispatch_at(Timestamp start_at) {
  const auto delay = saturating_sub(start_at, clock_.now());
  if (delay <= milliseconds{0}) {
    wake_dispatcher();
    return;
  }
  if (timer_) {
    timer_->schedule(
        saturating_deadline(clock_.steady_now(), saturating_add(delay, milliseconds{1})),
        [this] { wake_dispatcher(); });
  }
}

void LoopSignals::expire_at(Timestamp expires_at) {
  if (!timer_) return;
  const auto delay = std::max(saturating_sub(expires_at, clock_.now()), milliseconds{0});
  timer_->schedule(saturating_deadline(clock_.steady_now(), saturating_add(delay, milliseconds{2})),
                   [this] {
                     {
                       std::lock_guard lock(bg_mutex_);
                       bg_wake_ = true;
                       bg_expire_now_ = true;
                     }
                     bg_cv_.notify_one();
                   });
}

void LoopSignals::expect_children(const std::vector<TaskExecutionRecord>& children,
                                  std::set<Timestamp>& starts) {
  for (const auto& child : children) {
    if (!child.is_sleeping_task) {
      starts.insert(child.start_at);
    } else if (child.expires_at) {
      expire_at(*child.expires_at);
    }
  }
}

void LoopSignals::stop() {
  stop_.store(true);
  wake_dispatcher();
  wake_background();
}

void LoopSignals::dispatcher_begin_pass() {
  std::lock_guard lock(dispatch_mutex_);
  dispatch_wake_ = false;
}

void LoopSignals::dispatcher_wait(SteadyClock::duration d) {
  std::unique_lock lock(dispatch_mutex_);
  dispatch_cv_.wait_for(lock, d, [this] { return dispatch_wake_ || stop_.load(); });
}

LoopSignals::BackgroundPass LoopSignals::background_begin_pass() {
  std::lock_guard lock(bg_mutex_);
  BackgroundPass pass{bg_cancel_now_, bg_expire_now_, bg_steps_};
  bg_wake_ = false;
  bg_steps_ = 0;
  bg_cancel_now_ = false;
  bg_expire_now_ = false;
  return pass;
}

void LoopSignals::background_wait_until(SteadyClock::time_point until) {
  std::unique_lock lock(bg_mutex_);
  bg_cv_.wait_until(lock, until, [this] { return bg_wake_ || bg_cancel_now_ || stop_.load(); });
}

}  // namespace durable_execution::detail
