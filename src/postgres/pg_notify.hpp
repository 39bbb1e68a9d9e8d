#pragma once

// Cross-process wake-ups of the PostgreSQL backend (LISTEN/NOTIFY): a notifier thread sends one
// NOTIFY per burst of writes from its own connection, and a listener thread calls the subscribed
// callbacks when another storage on the same table notifies. Threads: storage callers enter
// work_created(); executors enter subscribe()/unsubscribe(); the notifier and listener threads are
// started here on first use and joined by the destructor.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace durable_execution::postgres {

/**
 * The notification channel of one table: "de_" and the FNV-1a hash of `schema.table` in hex, so
 * the same channel in every process and build.
 */
[[nodiscard]] std::string channel_name(std::string_view schema, std::string_view table);

/**
 * Sends and receives wake-ups on one channel. Thread safety: thread-safe. Callbacks run on the
 * listener thread, one at a time; an unsubscribe that returns has no call of its callback running.
 */
class Notifications {
 public:
  /** `enabled` false: work_created() sends nothing and subscribe() returns 0. */
  Notifications(std::string conninfo, std::string channel, bool enabled);
  /** Stops and joins the notifier and listener threads (within ~100 ms); never throws. */
  ~Notifications();
  Notifications(const Notifications&) = delete;
  Notifications& operator=(const Notifications&) = delete;
  Notifications(Notifications&&) = delete;
  Notifications& operator=(Notifications&&) = delete;

  /** Marks that a write may have created work for other processes: the notifier sends. */
  void work_created();
  /** Calls `callback` on other storages' notifications (and after each (re)connect). */
  [[nodiscard]] std::uint64_t subscribe(std::function<void()> callback);
  void unsubscribe(std::uint64_t token) noexcept;

 private:
  /** Waits until a write marked work (true) or the destructor runs (false). */
  bool wait_for_pending();
  /** Waits `duration`, or less if the destructor runs. */
  void pause(std::chrono::milliseconds duration);
  void notifier_loop();
  void listener_loop();
  void call_listeners();

  const std::string conninfo_;
  const std::string channel_;
  const bool enabled_;

  // The notifier: one NOTIFY per burst of writes, from its own connection and thread.
  std::mutex notify_mutex_;
  std::condition_variable notify_cv_;
  bool notify_pending_ = false;
  bool notify_stop_ = false;
  std::thread notifier_;
  std::atomic<int> notifier_pid_{0};  // its backend, whose notifications the listener skips
  // The listener: subscribed callbacks, called from its thread under listeners_mutex_ (so an
  // unsubscribe that returns has no call running).
  std::mutex listeners_mutex_;
  std::map<std::uint64_t, std::function<void()>> listeners_;
  std::uint64_t next_listener_token_ = 1;
  std::thread listener_;
  std::atomic<bool> listener_stop_{false};
};

}  // namespace durable_execution::postgres
