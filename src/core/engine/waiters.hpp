#pragma once

// Blocked wait_and_get_finished_execution() calls, keyed by execution id: a write that may have
// finished an execution wakes the waits for that execution only (each then reads it once).
// Entered by the application's waiting threads and by every engine thread that finishes work.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_map>

#include "../executor_support.hpp"

namespace durable_execution::detail {

class Waiters {
 public:
  /** @brief One blocked wait, registered for its lifetime (before its first read). */
  class Registration {
   public:
    Registration(Waiters& waiters, std::string execution_id);
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;
    Registration(Registration&&) = delete;
    Registration& operator=(Registration&&) = delete;
    ~Registration();

    /**
     * @brief Blocks until this execution may have finished here, `stop` is requested or
     * `until`. @return whether it was woken for its execution (then cleared).
     */
    bool wait_until(SteadyClock::time_point until, const std::stop_token& stop);

   private:
    friend class Waiters;
    Waiters& waiters_;
    std::string execution_id_;
    std::condition_variable cv_;
    bool woken_ = false;
  };

  /** @brief Wakes the waits of executions that this process may just have finished. */
  template <class Ids>
  void notify(const Ids& ids) {
    if (count_.load() == 0) return;
    std::lock_guard lock(mutex_);
    for (const auto& id : ids) wake_locked(std::string{id});
  }
  void notify(const std::string& id) {
    if (count_.load() == 0) return;
    std::lock_guard lock(mutex_);
    wake_locked(id);
  }
  /** @brief Wakes every wait: for rare bulk changes whose ids the engine does not know. */
  void notify_all();
  /** @brief Whether any wait is registered (a cheap check before gathering ids). */
  [[nodiscard]] bool any() const noexcept { return count_.load() > 0; }

 private:
  void wake_locked(const std::string& id);

  std::mutex mutex_;
  std::unordered_multimap<std::string, Registration*> waits_;
  std::atomic<std::int64_t> count_{0};
};

}  // namespace durable_execution::detail
