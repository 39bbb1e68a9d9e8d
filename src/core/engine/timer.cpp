#include "timer.hpp"

namespace durable_execution::detail {

TimerThread::TimerThread(const Clock& clock) : clock_(clock) {
  // A jump of the clock may make the earliest entry due: look again.
  jump_subscription_ = clock_.subscribe_to_jumps([this] {
    std::lock_guard lock(mutex_);
    cv_.notify_one();
  });
  thread_ = std::thread([this] { loop(); });
}

TimerThread::~TimerThread() { stop(); }

void TimerThread::schedule(SteadyClock::time_point when, std::function<void()> fn) {
  std::unique_lock lock(mutex_);
  Key key{when, ++seq_};
  const bool earliest = entries_.empty() || key < entries_.begin()->first;
  entries_.emplace(key, std::move(fn));
  lock.unlock();
  if (earliest) cv_.notify_one();
}

void TimerThread::stop() {
  clock_.unsubscribe_from_jumps(jump_subscription_);
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    entries_.clear();
  }
  cv_.notify_one();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void TimerThread::loop() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    if (entries_.empty()) {
      cv_.wait(lock);
      continue;
    }
    auto it = entries_.begin();
    const auto when = it->first.first;
    if (const auto now = clock_.steady_now(); now < when) {
      // The remaining time in real time: right for the system clock; a manual clock wakes this
      // wait when it is advanced.
      cv_.wait_for(lock, std::min<SteadyClock::duration>(when - now, std::chrono::hours{24}));
      continue;
    }
    auto fn = std::move(it->second);
    entries_.erase(it);
    lock.unlock();
    try {
      fn();
    } catch (...) {  // NOLINT(bugprone-empty-catch): callbacks log their own errors
    }
    lock.lock();
  }
}

}  // namespace durable_execution::detail
