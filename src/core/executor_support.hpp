#pragma once

// Internal building blocks of the engine: logging, the storage-call wrapper (retries + stats),
// process stats. Not installed.

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>

#include "durable_execution/errors.hpp"
#include "durable_execution/options.hpp"
#include "durable_execution/storage.hpp"
#include "latency_histogram.hpp"

namespace durable_execution::detail {

using SteadyClock = std::chrono::steady_clock;

/** @brief d * (1 + 0.25 u), u uniform in [-1, 1] (SPEC.md conventions). */
std::chrono::milliseconds jittered(std::chrono::milliseconds d);
/** @brief Same, in microseconds, for sub-millisecond precision. */
std::chrono::microseconds jittered_us(std::chrono::microseconds d);

/** @brief "de_" + 8 random alphanumeric characters. */
std::string make_executor_id();

/** @brief The engine's logger: an spdlog logger, or the application's sink. */
class EngineLogger {
 public:
  EngineLogger(LogLevel level, const std::string& logger_name, LogSink sink);
  void debug(const std::string& message) const { log(LogLevel::debug, message); }
  void info(const std::string& message) const { log(LogLevel::info, message); }
  void error(const std::string& message) const { log(LogLevel::error, message); }
  [[nodiscard]] bool enabled(LogLevel level) const noexcept { return level >= level_; }

 private:
  void log(LogLevel level, const std::string& message) const;
  LogLevel level_;
  LogSink sink_;
  std::shared_ptr<spdlog::logger> logger_;
};

/** @brief The storage methods, for stats. */
enum class StorageMethod : std::uint8_t {
  insert_many,
  get_many_by_id,
  get_many_by_sleeping_task_unique_id,
  update_many_by_id,
  update_many_by_id_and_insert_children_if_updated,
  claim_ready,
  claim_children_finished,
  claim_close,
  expire_running,
  expire_processing,
  expire_close,
  claim_cancellations,
  get_many_by_parent_execution_id,
  update_many_by_parent_execution_id_and_is_finished,
  mark_finished,
  count_,
};

[[nodiscard]] const char* storage_method_name(StorageMethod m) noexcept;

class StorageCaller;
/** The StorageCaller whose engine owns the calling thread (set by the engine's threads). */
inline thread_local const StorageCaller* tl_engine_caller = nullptr;

/**
 * @brief Calls the storage with retries (SPEC.md §5.4: a non-engine error counts as retryable;
 * at most max + 1 calls, jittered back-off 12.5, 25, 50 ... ms capped at 1 s) and records
 * per-method counts and durations and per-second call counts.
 *
 * This is the engine's only retry layer for storage calls: a call site may ask for more
 * retries (result writes do), never wraps calls in a loop of its own. Worst case of one
 * call(): (retries + 1) × the storage's own worst case per call + at most 0.0125 + 0.025 + ...
 * s of back-off (each step doubling, capped at 1 s).
 *
 * After close_for_engine_threads(), calls from the engine's own threads (adopt_thread()) throw
 * "Durable executor shutdown" without reaching the storage; calls from other threads (the
 * application's handles) still go through.
 */
class StorageCaller {
 public:
  StorageCaller(TaskExecutionsStorage& storage, std::int32_t max_retry_attempts)
      : storage_(storage), max_retry_attempts_(max_retry_attempts) {}

  /** @brief Marks the calling thread as one of this engine's threads. */
  void adopt_thread() const noexcept { tl_engine_caller = this; }
  [[nodiscard]] bool on_engine_thread() const noexcept { return tl_engine_caller == this; }

  /**
   * @brief From now on engine threads' calls throw instead of reaching the storage; waits for
   * the calls they already have in progress.
   */
  void close_for_engine_threads() noexcept {
    closed_.store(true);
    while (engine_calls_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  [[nodiscard]] bool closed_for_engine_threads() const noexcept { return closed_.load(); }

  /** The storage itself, for calls that are not retried (subscriptions). */
  [[nodiscard]] TaskExecutionsStorage& storage() const noexcept { return storage_; }

  template <class F>
  auto call(StorageMethod method, F&& fn) -> decltype(fn(std::declval<TaskExecutionsStorage&>())) {
    return call_with_retries(method, max_retry_attempts_, std::forward<F>(fn));
  }

  template <class F>
  auto call_with_retries(StorageMethod method, std::int32_t max_retry_attempts, F&& fn)
      -> decltype(fn(std::declval<TaskExecutionsStorage&>())) {
    struct EngineCall {
      const StorageCaller* owner = nullptr;
      ~EngineCall() {
        if (owner) owner->engine_calls_.fetch_sub(1);
      }
    } engine_call;
    if (on_engine_thread()) {
      // Sequentially consistent with close_for_engine_threads(): either it sees this call in
      // progress and waits for it, or this call sees the flag and never starts.
      engine_calls_.fetch_add(1);
      engine_call.owner = this;
      if (closed_.load()) throw DurableExecutionError::non_retryable("Durable executor shutdown");
    }
    for (std::int32_t attempt = 0;; ++attempt) {
      const auto start = SteadyClock::now();
      try {
        if constexpr (std::is_void_v<decltype(fn(storage_))>) {
          fn(storage_);
          record(method, start);
          return;
        } else {
          auto result = fn(storage_);
          record(method, start);
          return result;
        }
      } catch (const DurableExecutionError& e) {
        record(method, start);
        if (!e.is_retryable() || attempt >= max_retry_attempts ||
            (engine_call.owner && closed_.load()))
          throw;
      } catch (const std::exception&) {
        record(method, start);
        if (attempt >= max_retry_attempts || (engine_call.owner && closed_.load())) throw;
      }
      const auto backoff = std::min<std::int64_t>(25'000LL << attempt, 2'000'000LL) / 2;
      std::this_thread::sleep_for(jittered_us(std::chrono::microseconds{backoff}));
    }
  }

  [[nodiscard]] std::map<std::string, StorageCallStats> call_stats() const;
  [[nodiscard]] std::map<std::int64_t, std::int64_t> per_second_counts() const;

 private:
  void record(StorageMethod method, SteadyClock::time_point start) noexcept;

  struct Counter {
    std::atomic<std::int64_t> count{0};
    std::atomic<std::int64_t> total_ns{0};
    LatencyHistogram durations{};
  };
  struct SecondSlot {
    std::atomic<std::int64_t> second{-1};
    std::atomic<std::int64_t> count{0};
  };
  static constexpr std::size_t kSecondSlots = 64;

  TaskExecutionsStorage& storage_;
  std::int32_t max_retry_attempts_;
  SteadyClock::time_point created_ = SteadyClock::now();  // calls per second count from here
  std::atomic<bool> closed_{false};
  mutable std::atomic<std::int32_t> engine_calls_{0};
  std::array<Counter, static_cast<std::size_t>(StorageMethod::count_)> counters_{};
  std::array<SecondSlot, kSecondSlots> seconds_{};
};

/** @brief Running mean of one background process's batches. */
class ProcessStats {
 public:
  void record(std::int64_t items, SteadyClock::duration d) {
    std::lock_guard lock(mutex_);
    ++stats_.batches;
    stats_.items += items;
    const double ms = std::chrono::duration<double, std::milli>(d).count();
    stats_.mean_batch_duration_ms +=
        (ms - stats_.mean_batch_duration_ms) / static_cast<double>(stats_.batches);
  }
  [[nodiscard]] ProcessBatchStats get() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  mutable std::mutex mutex_;
  ProcessBatchStats stats_;
};

}  // namespace durable_execution::detail
