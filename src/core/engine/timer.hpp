#pragma once

// The timer: one thread, one ordered map of deadlines on the engine's clock (ties run in
// scheduling order): delayed starts and retries, sleeping executions' expiry, run-deadline
// checks, pool stall checks. Entries are not cancelled: callbacks check whether they still have
// work. Callbacks run on the timer thread and only signal other threads or queue work, so a slow
// storage call never delays a deadline. A clock that jumps (ManualClock::advance) wakes it.
// Entered by any engine thread (schedule) and by shutdown (stop).

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "../executor_support.hpp"
#include "durable_execution/clock.hpp"

namespace durable_execution::detail {

class TimerThread {
 public:
  using Key = std::pair<SteadyClock::time_point, std::uint64_t>;

  explicit TimerThread(const Clock& clock);
  TimerThread(const TimerThread&) = delete;
  TimerThread& operator=(const TimerThread&) = delete;
  TimerThread(TimerThread&&) = delete;
  TimerThread& operator=(TimerThread&&) = delete;
  ~TimerThread();

  /** @brief Runs `fn` once the clock's monotonic time reaches `when`. */
  void schedule(SteadyClock::time_point when, std::function<void()> fn);
  /** @brief Drops pending entries and joins the thread. Idempotent. */
  void stop();

 private:
  void loop();

  const Clock& clock_;
  std::uint64_t jump_subscription_ = 0;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<Key, std::function<void()>> entries_;
  std::uint64_t seq_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace durable_execution::detail
