#pragma once

// Internal building blocks of the engine: logging, the storage-call wrapper (retries + stats),
// the timer thread. Not installed.

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

namespace durable_execution::detail {

using SteadyClock = std::chrono::steady_clock;

/** @brief d * (1 + 0.25 u), u uniform in [-1, 1] (SPEC.md conventions). */
std::chrono::milliseconds jittered(std::chrono::milliseconds d);
/** @brief Same, in microseconds, for sub-millisecond precision. */
std::chrono::microseconds jittered_us(std::chrono::microseconds d);

/** @brief Appends `text` as a JSON string literal (quoted and escaped). */
void append_json_string(std::string& out, std::string_view text);

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

/**
 * @brief Calls the storage with retries (SPEC.md §5.4: a non-engine error counts as retryable;
 * at most max + 1 calls, jittered back-off 12.5, 25, 50 ... ms capped at 1 s) and records
 * per-method counts and durations and per-second call counts.
 */
class StorageCaller {
 public:
  StorageCaller(TaskExecutionsStorage& storage, std::int32_t max_retry_attempts)
      : storage_(storage), max_retry_attempts_(max_retry_attempts) {}

  /** The storage itself, for calls that are not retried (subscriptions). */
  [[nodiscard]] TaskExecutionsStorage& storage() const noexcept { return storage_; }

  template <class F>
  auto call(StorageMethod method, F&& fn) -> decltype(fn(std::declval<TaskExecutionsStorage&>())) {
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
        if (!e.is_retryable() || attempt >= max_retry_attempts_) throw;
      } catch (const std::exception&) {
        record(method, start);
        if (attempt >= max_retry_attempts_) throw;
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
  };
  struct SecondSlot {
    std::atomic<std::int64_t> second{-1};
    std::atomic<std::int64_t> count{0};
  };
  static constexpr std::size_t kSecondSlots = 64;

  TaskExecutionsStorage& storage_;
  std::int32_t max_retry_attempts_;
  std::array<Counter, static_cast<std::size_t>(StorageMethod::count_)> counters_{};
  std::array<SecondSlot, kSecondSlots> seconds_{};
};

/**
 * @brief One thread, one ordered map of deadlines (ties run in scheduling order). Entries are
 * not cancelled: callbacks check whether they still have work (run timeouts have their own
 * slots; see the engine). Callbacks run on the timer thread and must be short.
 */
class TimerThread {
 public:
  using Key = std::pair<SteadyClock::time_point, std::uint64_t>;

  TimerThread();
  TimerThread(const TimerThread&) = delete;
  TimerThread& operator=(const TimerThread&) = delete;
  TimerThread(TimerThread&&) = delete;
  TimerThread& operator=(TimerThread&&) = delete;
  ~TimerThread();

  void schedule(SteadyClock::time_point when, std::function<void()> fn);
  /** @brief Drops pending entries and joins the thread. Idempotent. */
  void stop();

 private:
  void loop();

  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<Key, std::function<void()>> entries_;
  std::uint64_t seq_ = 0;
  bool stop_ = false;
  std::thread thread_;
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
