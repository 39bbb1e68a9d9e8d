#pragma once

// The worker threads that run task functions: created on demand up to a cap, reused, retired
// after worker_idle_timeout down to a core's worth. When to start or wake workers is the growth
// policy's decision (growth_policy.hpp); a stall check on the timer adds workers when queued runs
// wait while every busy worker is inside a task function. Each worker owns a deadline slot
// (run_deadlines.hpp). Entered by the dispatcher and workers (submit), the timer (stall check),
// its workers, and shutdown (stop).

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "growth_policy.hpp"
#include "run_deadlines.hpp"

namespace durable_execution::detail {

class WorkerPool {
 public:
  using Execute = std::function<void(const std::shared_ptr<Run>&, RunDeadlines::Slot&)>;

  struct Config {
    /** Live and abandoned runs both hold a worker: at most this many threads. */
    std::int32_t max_workers = 1;
    std::chrono::milliseconds idle_timeout{0};
    /** Workers kept when idle (option min_worker_threads; 0: one per core). */
    std::int32_t min_workers = 0;
    /** Null: no stall checks (client mode never runs anything). */
    TimerThread* timer = nullptr;
    /** Marks workers as engine threads. */
    const StorageCaller* caller = nullptr;
  };

  WorkerPool(Config config, RunDeadlines& deadlines, Execute execute)
      : config_(config),
        deadlines_(deadlines),
        execute_(std::move(execute)),
        policy_(available_cores(), static_cast<std::uint32_t>(config.min_workers)) {}

  /**
   * @brief Workers hold `owner` while they live: one left running by a bounded shutdown (a task
   * function that ignores its stop token) keeps the engine alive until it returns.
   */
  void set_owner(std::weak_ptr<void> owner) { owner_ = std::move(owner); }

  void submit(std::vector<std::shared_ptr<Run>> runs);
  /**
   * @brief Stops the workers: those that return by `deadline` are joined, the others (in a task
   * function) are detached.
   */
  void stop(SteadyClock::time_point deadline);
  [[nodiscard]] std::int32_t threads() const;

  /**
   * @brief Adds the CPU time the calling engine thread used since its last report to the
   * engine's CPU total, which the growth policy's brake reads: the engine's own threads, not the
   * host process's (whose other threads are none of the pool's business). The dispatcher and the
   * background thread call it once per pass; workers report on sampled runs.
   */
  void report_thread_cpu() noexcept;

  /**
   * @brief Marks the calling worker as inside a task function for the scope's lifetime, and
   * samples one run in four for the mean time runs spend waiting (wall minus the thread's CPU
   * time): the growth policy's inputs.
   */
  class UserCode {
   public:
    explicit UserCode(WorkerPool& pool);
    UserCode(const UserCode&) = delete;
    UserCode& operator=(const UserCode&) = delete;
    UserCode(UserCode&&) = delete;
    UserCode& operator=(UserCode&&) = delete;
    ~UserCode();

   private:
    WorkerPool& pool_;
    bool sampled_;
    SteadyClock::time_point wall_start_{};
    std::int64_t cpu_start_ = 0;
  };

 private:
  /** Idle workers to wake, decided under the mutex and sent after it is released. */
  struct Wakeups {
    std::size_t count = 0;
    bool all = false;
  };
  [[nodiscard]] Wakeups add_workers_locked(std::size_t want);
  void wake(Wakeups w);
  void schedule_check_locked();
  void stall_check();
  void join_exited_locked();
  void worker_loop(std::list<std::thread>::iterator self);

  Config config_;
  RunDeadlines& deadlines_;
  Execute execute_;
  std::weak_ptr<void> owner_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  GrowthPolicy policy_;
  struct Job {
    std::shared_ptr<Run> run;
    SteadyClock::time_point queued;
  };
  std::deque<Job> queue_;
  /** Live workers; a worker that exits moves its own entry to `exited_`. */
  std::list<std::thread> threads_;
  std::list<std::thread> exited_;  // joined by the next spawn or by stop
  std::int32_t idle_ = 0;
  bool stop_ = false;
  bool check_scheduled_ = false;
  /** Workers inside a task function now, and the moving mean of runs' waiting time. */
  std::atomic<std::int64_t> in_user_code_{0};
  std::atomic<std::int64_t> run_wait_ns_mean_{0};
  /** CPU time the engine's threads reported (report_thread_cpu). */
  std::atomic<std::int64_t> engine_cpu_ns_{0};
};

}  // namespace durable_execution::detail
