#pragma once

// The dispatcher thread: claims ready executions (T3) while slots of
// max_concurrent_task_executions are free and hands them to the runner. Back-pressure: at
// capacity it stops and is woken once enough slots are free for a worthwhile claim. Executions
// whose lease expired before run alone, one claim at a time (quarantine), so that one that kills
// the process again counts against itself only; a quarantine waits at most 2 s for the runs in
// flight (abandoned runs, whose outcome is recorded, do not count), so a long run never stops
// claiming.
// Woken at once by local enqueues, freed slots and due retries; otherwise it polls with back-off
// for work other processes created. Entered by its own thread, and by workers, the timer and the
// background thread (slot_freed).

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "engine_context.hpp"

namespace durable_execution::detail {

class Dispatcher {
 public:
  explicit Dispatcher(const EngineContext& context) : c_(context) {}
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;
  Dispatcher(Dispatcher&&) = delete;
  Dispatcher& operator=(Dispatcher&&) = delete;
  ~Dispatcher() { join(); }

  void start();
  /** @brief Joins the thread (after LoopSignals::stop()). */
  void join();

  /** @brief A slot was freed: wakes a dispatcher at capacity once enough slots are free. */
  void slot_freed(std::size_t running);
  [[nodiscard]] ProcessBatchStats stats() const { return stats_.get(); }

 private:
  void loop();
  /** One claim; `full_batch` is set when more may be ready at once. @return runs started. */
  std::size_t claim_and_dispatch(bool& full_batch);
  /** Writes claimed executions back to `ready` (suspects that must run alone). */
  void release(const std::vector<TaskExecutionRecord>& rows);

  EngineContext c_;
  ProcessStats stats_;
  /** Quarantine claims (one execution at a time) left (dispatcher thread only). */
  std::int32_t quarantine_claims_left_ = 0;
  /** When the current quarantine first waited for the runs in flight (its wait is bounded). */
  std::optional<std::chrono::steady_clock::time_point> quarantine_waiting_since_{};
  /** Set when the dispatcher stopped claiming because every slot was taken. */
  std::atomic<bool> at_capacity_{false};
  SteadyClock::time_point paused_logged_at_{};
  std::thread thread_;
};

}  // namespace durable_execution::detail
