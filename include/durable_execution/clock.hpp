#pragma once

// The time an executor reads: wall time for everything it stores (start times, leases, retry
// back-off) and monotonic time for its deadlines (run timeouts, delayed starts). The default is
// the system's clocks; tests inject a ManualClock and advance it instead of sleeping.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "durable_execution/export.hpp"
#include "durable_execution/task_execution.hpp"

namespace durable_execution {

/**
 * @brief A source of time for an executor (DurableExecutorOptions::clock).
 *
 * What follows the clock: the timestamps the executor writes (`created_at`, `started_at`,
 * `finished_at`, ...), the time claims and lease expiry compare against, retry back-off and
 * `sleep_before_run`, run timeouts, sleeping tasks' expiry. What does not: waits the application
 * makes (`wait_and_get_finished_execution` timeouts), storage retry back-off, polling intervals,
 * shutdown_timeout and the worker pool's heuristics — those are real time.
 *
 * @note Thread safety: implementations must be thread-safe.
 */
class DURABLE_EXECUTION_EXPORT Clock {
 public:
  Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;
  Clock(Clock&&) = delete;
  Clock& operator=(Clock&&) = delete;
  virtual ~Clock();

  /** @brief Wall time (UTC, milliseconds). */
  [[nodiscard]] virtual Timestamp now() const noexcept = 0;
  /** @brief Monotonic time, for deadlines. */
  [[nodiscard]] virtual std::chrono::steady_clock::time_point steady_now() const noexcept = 0;

  /**
   * @brief Calls `fn` whenever this clock jumps forward other than in real time (a ManualClock
   * being advanced), so that a timer waiting on it looks again. @return an id for
   * unsubscribe_from_jumps(); 0 if the clock never jumps (the system clock).
   */
  virtual std::uint64_t subscribe_to_jumps(std::function<void()> fn) const;
  /// @brief Stops the calls of a subscribe_to_jumps() subscription; an unknown id or 0 is ignored.
  virtual void unsubscribe_from_jumps(std::uint64_t id) const noexcept;
};

/**
 * @brief The system's clocks (std::chrono::system_clock, steady_clock).
 *
 * @note Thread safety: thread-safe (stateless).
 */
class DURABLE_EXECUTION_EXPORT SystemClock final : public Clock {
 public:
  [[nodiscard]] Timestamp now() const noexcept override { return now_timestamp(); }
  [[nodiscard]] std::chrono::steady_clock::time_point steady_now() const noexcept override {
    return std::chrono::steady_clock::now();
  }
  /** @brief One shared instance (the executor's default). */
  [[nodiscard]] static std::shared_ptr<SystemClock> instance();
};

/**
 * @brief A clock that moves only when advanced: for tests of timeouts, retries, delays and
 * leases that should not sleep.
 *
 * @code
 * auto clock = std::make_shared<de::ManualClock>();
 * de::DurableExecutor executor{storage, {.clock = clock}};
 * ...                                   // a task with retry.base_delay = 1h fails once
 * clock->advance(1h);                   // its retry is claimed now, not in an hour
 * @endcode
 *
 * @note Thread safety: thread-safe.
 */
class DURABLE_EXECUTION_EXPORT ManualClock final : public Clock {
 public:
  /** @brief Starts at `start` (wall) and at the real monotonic time of construction. */
  explicit ManualClock(Timestamp start = now_timestamp());

  [[nodiscard]] Timestamp now() const noexcept override;
  [[nodiscard]] std::chrono::steady_clock::time_point steady_now() const noexcept override;
  /** @brief Moves both times forward by `d` (>= 0) and wakes whoever waits on this clock. */
  void advance(std::chrono::milliseconds d);

  /// @brief Calls `fn` after every advance(); see Clock::subscribe_to_jumps().
  std::uint64_t subscribe_to_jumps(std::function<void()> fn) const override;
  /// @brief Stops the calls of one subscription; see Clock::unsubscribe_from_jumps().
  void unsubscribe_from_jumps(std::uint64_t id) const noexcept override;

 private:
  mutable std::mutex mutex_;
  Timestamp now_;
  std::chrono::steady_clock::time_point steady_;
  mutable std::mutex listeners_mutex_;
  mutable std::uint64_t next_id_ = 1;
  mutable std::map<std::uint64_t, std::function<void()>> listeners_;
};

}  // namespace durable_execution
