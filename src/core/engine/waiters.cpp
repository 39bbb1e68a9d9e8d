#include "waiters.hpp"

namespace durable_execution::detail {

Waiters::Registration::Registration(Waiters& waiters, std::string execution_id)
    : waiters_(waiters), execution_id_(std::move(execution_id)) {
  std::lock_guard lock(waiters_.mutex_);
  waiters_.waits_.emplace(execution_id_, this);
  waiters_.count_.fetch_add(1);
}

Waiters::Registration::~Registration() {
  std::lock_guard lock(waiters_.mutex_);
  const auto [first, last] = waiters_.waits_.equal_range(execution_id_);
  for (auto it = first; it != last; ++it) {
    if (it->second == this) {
      waiters_.waits_.erase(it);
      break;
    }
  }
  waiters_.count_.fetch_sub(1);
}

bool Waiters::Registration::wait_until(SteadyClock::time_point until, const std::stop_token& stop) {
  std::stop_callback on_stop(stop, [this] {
    std::lock_guard lock(waiters_.mutex_);
    cv_.notify_one();
  });
  std::unique_lock lock(waiters_.mutex_);
  const bool woken = cv_.wait_until(lock, until, [&] { return woken_ || stop.stop_requested(); });
  woken_ = false;
  return woken;
}

void Waiters::notify_all() {
  if (count_.load() == 0) return;
  std::lock_guard lock(mutex_);
  for (auto& [id, w] : waits_) {
    w->woken_ = true;
    w->cv_.notify_one();
  }
}

void Waiters::wake_locked(const std::string& id) {
  const auto [first, last] = waits_.equal_range(id);
  for (auto it = first; it != last; ++it) {
    it->second->woken_ = true;
    it->second->cv_.notify_one();
  }
}

}  // namespace durable_execution::detail
