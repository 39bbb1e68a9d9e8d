// The engine (DESIGN.md layer 2): registry, state machine (SPEC.md §3), dispatcher, background
// processes, worker pool and timer. Untyped: task ids, serialized strings and records.
//
// Threads (executor mode, after start()):
//  - dispatcher: claims ready executions (T3) while slots are free and hands them to the pool;
//    woken at once by local enqueues, freed slots and due retries, else polls with back-off.
//  - background: mark (T18), close (T19-T21, T11), children (T15-T17), cancel (T23) and expiry
//    (T13, T14, processing reset, T22); woken by local completions, else polls.
//  - timer: one ordered map of deadlines: run timeouts, delayed starts, pool stall checks.
//  - workers: created on demand, reused, at most max_concurrent_task_executions busy with live
//    runs. A finished run's result is written by group commit: the first worker to finish
//    becomes the flusher and writes everything queued meanwhile in one storage call.

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "durable_execution/detail/engine.hpp"
#include "executor_support.hpp"
#include "executor_validation.hpp"

namespace durable_execution::detail {

namespace {

using std::chrono::milliseconds;
using Status = TaskExecutionStatus;

constexpr milliseconds kProcessingLease{120'000};
constexpr milliseconds kCloseLease{120'000};
/** How long a queued run may wait for a worker before the pool adds workers for the queue. */
constexpr std::chrono::microseconds kPoolStallThreshold{1000};
constexpr std::int32_t kMaxCompletionWriteAttempts = 6;
/** Runs that wait this long on average (not computing) get idle workers for a whole batch. */
constexpr std::int64_t kWaitingRunNs = 100'000;
/** A pool of waiting runs stops growing while the process uses this share of the cores... */
constexpr double kGrowUnderCpuUtilization = 0.8;
/** ...once it has this many workers per core. */
constexpr std::int64_t kBrakeFromWorkersPerCore = 16;
/** One run in this many per worker is timed for that mean. */
constexpr std::uint32_t kWaitSampleEvery = 4;

/**
 * CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID) or of the whole process
 * (CLOCK_PROCESS_CPUTIME_ID). One system call: CPU-time clocks have no vDSO path.
 */
std::int64_t cpu_time_ns(clockid_t clock) noexcept {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

StoredError to_stored_error(std::exception_ptr ep) {
  try {
    std::rethrow_exception(std::move(ep));
  } catch (const DurableExecutionError& e) {
    return e.to_stored();
  } catch (const std::exception& e) {
    std::string message = e.what();
    if (message.empty()) message = "Unknown error";
    return StoredError{ErrorType::generic, true, false, std::move(message)};
  } catch (...) {
    return StoredError{ErrorType::generic, true, false, "Unknown error"};
  }
}

std::string error_message(std::exception_ptr ep) {
  try {
    std::rethrow_exception(std::move(ep));
  } catch (const std::exception& e) {
    return e.what()[0] != '\0' ? std::string{e.what()} : std::string{"Unknown error"};
  } catch (...) {
    return "Unknown error";
  }
}

void check_size(const std::string& data, std::int64_t limit) {
  if (static_cast<std::int64_t>(data.size()) > limit) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Serialized data size ({} bytes) exceeds maximum allowed size ({} bytes)",
                    data.size(), limit));
  }
}

Status status_for_error(const StoredError& e) {
  switch (e.error_type) {
    case ErrorType::timed_out:
      return Status::timed_out;
    case ErrorType::cancelled:
      return Status::cancelled;
    default:
      return Status::failed;
  }
}

milliseconds retry_delay(const RetryOptions& r, std::int32_t retry_attempts) {
  double delay = static_cast<double>(r.base_delay.value_or(milliseconds{0}).count());
  if (retry_attempts > 0) delay *= std::pow(r.delay_multiplier.value_or(1.0), retry_attempts);
  if (r.max_delay) delay = std::min(delay, static_cast<double>(r.max_delay->count()));
  return milliseconds{static_cast<std::int64_t>(delay)};
}

TaskExecutionSummary root_for_children(const TaskExecutionRecord& parent) {
  return parent.root ? *parent.root : TaskExecutionSummary{parent.task_id, parent.execution_id};
}

}  // namespace

struct Engine::Impl {
  struct Run {
    TaskExecutionRecord record;
    std::shared_ptr<const TaskDefinition> definition;
    std::stop_source stop;
    std::atomic<StopReason> reason{StopReason::none};
    std::atomic<bool> settled{false};
  };

  /** One result write: a guarded update, optionally with children to insert. */
  struct Completion {
    std::optional<UpdateByIdRequest> update;
    std::optional<UpdateByIdAndInsertChildrenRequest> update_with_children;
    std::optional<Timestamp> wake_at;
  };

  Impl(TaskExecutionsStorage& storage, const DurableExecutorOptions& opts, Mode m)
      : options(opts),
        mode(m),
        executor_id(make_executor_id()),
        logger(opts.log_level, opts.logger_name, opts.log_sink),
        caller(storage, opts.storage_max_retry_attempts),
        eager_workers(std::max(2U, std::thread::hardware_concurrency())) {}

  // ---- configuration ------------------------------------------------------------------------
  DurableExecutorOptions options;
  Mode mode;
  std::string executor_id;
  EngineLogger logger;
  StorageCaller caller;
  std::uint32_t eager_workers;

  // ---- registry -----------------------------------------------------------------------------
  mutable std::shared_mutex registry_mutex;
  std::unordered_map<std::string, std::shared_ptr<const TaskDefinition>> registry;

  // ---- lifecycle ----------------------------------------------------------------------------
  std::mutex lifecycle_mutex;
  std::atomic<bool> is_shutdown{false};
  bool started = false;
  bool shut_down_done = false;
  std::atomic<bool> stop_loops{false};
  // Storage hints that other processes created work (PostgreSQL NOTIFY): wake the loops.
  std::uint64_t external_work_subscription = 0;

  // ---- runs in flight -----------------------------------------------------------------------
  mutable std::mutex runs_mutex;
  std::condition_variable runs_cv;  // signalled when in-flight or pending completions drop
  // Keys view the run's own execution id (the run outlives its entry): no copy per run.
  std::unordered_map<std::string_view, std::shared_ptr<Run>> in_flight;
  std::int64_t pending_completions = 0;
  std::atomic<std::int32_t> zombies{0};

  // ---- dispatcher ---------------------------------------------------------------------------
  std::mutex dispatch_mutex;
  std::condition_variable dispatch_cv;
  bool dispatch_wake = false;
  std::thread dispatcher;

  // ---- background ---------------------------------------------------------------------------
  std::mutex bg_mutex;
  std::condition_variable bg_cv;
  bool bg_wake = false;
  bool bg_cancel_now = false;
  bool bg_expire_now = false;
  std::thread background;

  // ---- timer and pool -----------------------------------------------------------------------
  std::unique_ptr<TimerThread> timer;
  struct Job {
    std::shared_ptr<Run> run;
    SteadyClock::time_point queued;
  };
  mutable std::mutex pool_mutex;
  std::condition_variable pool_cv;
  std::deque<Job> pool_queue;
  std::vector<std::thread> pool_threads;
  std::int32_t pool_idle = 0;
  bool pool_stop = false;
  bool pool_check_scheduled = false;
  /** The process's CPU use per core, smoothed over the pool checks (pool_mutex). */
  double cpu_utilization = 0;
  std::int64_t cpu_at_check = 0;
  SteadyClock::time_point wall_at_check{};
  /** Workers inside a task function now (blocked or computing, as opposed to engine work). */
  std::atomic<std::int64_t> in_user_code{0};
  /**
   * Moving mean of the time recent runs spent waiting (wall time minus the thread's CPU time)
   * inside task functions. Runs that wait (I/O, sleeps) gain from more workers at once; runs that
   * compute do not, so only waiting runs make the pool wake its idle workers for a whole batch.
   */
  std::atomic<std::int64_t> run_wait_ns_mean{0};
  /**
   * The run a worker is executing and its deadline, one per worker thread. Only the worker and
   * the deadline check touch a slot, so its mutex is uncontended: a run's timeout costs no
   * timer entry, no allocation and no shared lock.
   */
  struct RunSlot {
    std::mutex mutex;
    std::shared_ptr<Run> run;
    SteadyClock::time_point deadline{};
  };
  std::deque<RunSlot> run_slots;  // one per pool thread (pool_mutex); addresses are stable
  /** The time of the earliest deadline check on the timer, or max if none is pending. */
  std::atomic<SteadyClock::rep> next_deadline_check{std::numeric_limits<SteadyClock::rep>::max()};
  /** Set when the dispatcher stopped claiming because every slot was taken. */
  std::atomic<bool> dispatcher_at_capacity{false};

  // ---- completions (group commit) -----------------------------------------------------------
  // A lock-free stack: runs that finish together (a batch of 1 ms sleeps wakes at once) push
  // without queueing on a mutex, and one of them writes them all.
  struct CompletionNode {
    Completion completion;
    CompletionNode* next = nullptr;
  };
  using CompletionBatch = std::vector<std::unique_ptr<CompletionNode>>;
  std::atomic<CompletionNode*> completion_head{nullptr};
  std::atomic<bool> flushing{false};

  // ---- finished notifications (for waiters) -------------------------------------------------
  std::mutex finished_mutex;
  std::condition_variable finished_cv;
  std::uint64_t finished_seq = 0;

  // ---- stats --------------------------------------------------------------------------------
  ProcessStats stats_ready, stats_children, stats_mark, stats_close, stats_cancel, stats_expire,
      stats_complete;

  // =========================================================================================
  // Notifications
  // =========================================================================================

  void wake_dispatcher() {
    {
      std::lock_guard lock(dispatch_mutex);
      dispatch_wake = true;
    }
    dispatch_cv.notify_one();
  }

  void wake_background(bool cancel_now = false) {
    {
      std::lock_guard lock(bg_mutex);
      bg_wake = true;
      bg_cancel_now = bg_cancel_now || cancel_now;
    }
    bg_cv.notify_one();
  }

  void notify_finished() {
    {
      std::lock_guard lock(finished_mutex);
      ++finished_seq;
    }
    finished_cv.notify_all();
  }

  /** A local sleeping execution times out at `expires_at`: run the expiry step then. */
  void schedule_expiry_at(Timestamp expires_at) {
    if (!timer) return;
    const auto delay = std::max(expires_at - now_timestamp(), milliseconds{0});
    timer->schedule(SteadyClock::now() + delay + milliseconds{2}, [this] {
      {
        std::lock_guard lock(bg_mutex);
        bg_wake = true;
        bg_expire_now = true;
      }
      bg_cv.notify_one();
    });
  }

  void schedule_dispatch_at(Timestamp start_at) {
    const auto delay = start_at - now_timestamp();
    if (delay <= milliseconds{0}) {
      wake_dispatcher();
      return;
    }
    if (timer) {
      timer->schedule(SteadyClock::now() + delay + milliseconds{1}, [this] { wake_dispatcher(); });
    }
  }

  // =========================================================================================
  // Registry
  // =========================================================================================

  std::shared_ptr<const TaskDefinition> find_task(const std::string& id) const {
    std::shared_lock lock(registry_mutex);
    auto it = registry.find(id);
    return it == registry.end() ? nullptr : it->second;
  }

  void throw_if_shutdown() const {
    if (is_shutdown.load()) {
      throw DurableExecutionError::non_retryable("Durable executor shutdown");
    }
  }

  // =========================================================================================
  // Worker pool
  // =========================================================================================

  std::int32_t pool_cap() const {
    return options.max_concurrent_task_executions + zombies.load(std::memory_order_relaxed);
  }

  /** Idle workers to wake, decided under pool_mutex and sent after it is released. */
  struct Wakeups {
    std::size_t count = 0;
    bool all = false;
  };

  /**
   * Starts new workers beyond the idle ones until `want` are on the way (pool_mutex held), and
   * returns the idle ones to wake. The caller wakes them after releasing pool_mutex: a worker
   * woken while it is held (on 2 cores, it often runs at once) would only block on it again.
   */
  [[nodiscard]] Wakeups pool_add_workers(std::size_t want) {
    const auto idle = static_cast<std::size_t>(pool_idle);
    const Wakeups wake{std::min(want, idle), want >= idle && idle > 0};
    if (want <= idle) return wake;
    auto to_spawn = want - idle;
    while (to_spawn-- > 0 && static_cast<std::int32_t>(pool_threads.size()) < pool_cap()) {
      pool_threads.emplace_back([this] { worker_loop(); });
    }
    return wake;
  }

  void wake_workers(Wakeups wake) {
    if (wake.all) {
      pool_cv.notify_all();
      return;
    }
    for (std::size_t i = 0; i < wake.count; ++i) pool_cv.notify_one();
  }

  void pool_submit(std::vector<std::shared_ptr<Run>> runs) {
    if (runs.empty()) return;
    std::unique_lock lock(pool_mutex);
    const auto now = SteadyClock::now();
    for (auto& r : runs) pool_queue.push_back(Job{std::move(r), now});
    // Quick tasks: start at most a core's worth of workers at once, so that they drain the queue
    // without a wake-up per task. Tasks that wait: wake every idle worker the queue can use (a
    // batch of 1 ms sleeps should not queue behind two workers). Either way, if the queue stalls,
    // the stall check starts new workers.
    const auto busy =
        static_cast<std::int64_t>(pool_threads.size()) - static_cast<std::int64_t>(pool_idle);
    auto room = std::max<std::int64_t>(0, static_cast<std::int64_t>(eager_workers) - busy);
    if (run_wait_ns_mean.load(std::memory_order_relaxed) >= kWaitingRunNs) {
      room = std::max<std::int64_t>(room, pool_idle);
    }
    const auto wake =
        pool_add_workers(std::min<std::size_t>(pool_queue.size(), static_cast<std::size_t>(room)));
    schedule_pool_check_locked();
    lock.unlock();
    wake_workers(wake);
  }

  void schedule_pool_check_locked() {
    if (pool_check_scheduled || pool_queue.empty() || !timer) return;
    pool_check_scheduled = true;
    timer->schedule(SteadyClock::now() + kPoolStallThreshold, [this] { pool_check(); });
  }

  void pool_check() {
    std::unique_lock lock(pool_mutex);
    pool_check_scheduled = false;
    if (pool_queue.empty() || pool_stop) return;
    // The oldest queued run waited past the threshold while every busy worker is inside a task
    // function (blocked or computing, not doing engine work): the tasks, not the engine, hold
    // the workers, so queued runs get workers of their own, up to the concurrency limit. Quick
    // tasks keep their workers in engine code most of the time, so they add no thread.
    // Growth doubles the busy workers per check (2, 4, 8, ...), so a burst of blocking tasks gets
    // its threads within milliseconds.
    const auto busy = static_cast<std::int64_t>(pool_threads.size()) - pool_idle;
    // One brake: when runs mostly wait (sleeps, I/O), the pool is already large and the process
    // keeps most of the cores busy, the CPU, not the number of workers, bounds throughput, and
    // more threads only add switching (measured: 256 workers instead of 128 made the reference
    // scenario ~8 % slower). The CPU share is a moving mean over the checks. Tasks that compute
    // keep the old rule, so a long computation never holds back the runs queued behind it, and
    // a small pool always grows.
    const bool blocked = in_user_code.load(std::memory_order_relaxed) >= busy;
    const auto now = SteadyClock::now();
    const auto cpu = cpu_time_ns(CLOCK_PROCESS_CPUTIME_ID);
    if (const auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(now - wall_at_check);
        wall_at_check != SteadyClock::time_point{} && wall.count() > 0) {
      const auto sample = static_cast<double>(cpu - cpu_at_check) /
                          static_cast<double>(wall.count()) / static_cast<double>(eager_workers);
      cpu_utilization += (sample - cpu_utilization) / 4;
    }
    cpu_at_check = cpu;
    wall_at_check = now;
    Wakeups wake;
    const bool cpu_bound =
        cpu_utilization >= kGrowUnderCpuUtilization &&
        run_wait_ns_mean.load(std::memory_order_relaxed) >= kWaitingRunNs &&
        busy >= kBrakeFromWorkersPerCore * static_cast<std::int64_t>(eager_workers);
    if (blocked && !cpu_bound && now - pool_queue.front().queued >= kPoolStallThreshold) {
      wake = pool_add_workers(std::min<std::size_t>(
          pool_queue.size(), static_cast<std::size_t>(std::max<std::int64_t>(busy, 1))));
    }
    schedule_pool_check_locked();
    lock.unlock();
    wake_workers(wake);
  }

  void worker_loop() {
    std::unique_lock lock(pool_mutex);
    auto& slot = run_slots.emplace_back();
    for (;;) {
      while (pool_queue.empty() && !pool_stop) {
        ++pool_idle;
        pool_cv.wait(lock);
        --pool_idle;
      }
      if (pool_queue.empty()) return;
      auto job = std::move(pool_queue.front());
      pool_queue.pop_front();
      lock.unlock();
      execute(job.run, slot);
      job.run.reset();
      lock.lock();
    }
  }

  // =========================================================================================
  // Running one execution
  // =========================================================================================

  void execute(const std::shared_ptr<Run>& run, RunSlot& slot) {
    if (run->settled.load()) {  // cancelled while queued
      zombies.fetch_sub(1);
      return;
    }
    if (timer) {
      const auto deadline = SteadyClock::now() + run->record.timeout;
      {
        std::lock_guard lock(slot.mutex);
        slot.run = run;
        slot.deadline = deadline;
      }
      arm_deadline_check(deadline);
    }
    Completion completion = run_and_build(*run);
    if (timer) {
      std::lock_guard lock(slot.mutex);
      slot.run.reset();
    }
    if (run->settled.exchange(true)) {
      // Timed out or cancelled meanwhile: that outcome is recorded; this late result is not.
      zombies.fetch_sub(1);
      return;
    }
    finish_run(run, std::move(completion));
  }

  /**
   * Makes sure a deadline check is pending at or before `deadline`. Runs of one task share a
   * timeout, so a new run's deadline is almost never the earliest: usually nothing to do.
   */
  void arm_deadline_check(SteadyClock::time_point deadline) {
    const auto t = deadline.time_since_epoch().count();
    auto pending = next_deadline_check.load();
    while (t < pending) {
      if (next_deadline_check.compare_exchange_weak(pending, t)) {
        timer->schedule(deadline, [this] { check_deadlines(); });
        return;
      }
    }
  }

  /** Times out every run past its deadline (T8 or T9) and arms the check for the earliest other. */
  void check_deadlines() {
    // Reset first: a worker that arms from here on schedules a check of its own, and one that
    // armed before has its run in a slot that the scan below sees.
    next_deadline_check.store(std::numeric_limits<SteadyClock::rep>::max());
    std::vector<std::shared_ptr<Run>> due;
    auto earliest = SteadyClock::time_point::max();
    {
      std::lock_guard pool(pool_mutex);
      const auto now = SteadyClock::now();
      for (auto& slot : run_slots) {
        std::lock_guard lock(slot.mutex);
        if (!slot.run) continue;
        if (slot.deadline <= now) {
          due.push_back(std::move(slot.run));  // leaves the slot empty
        } else {
          earliest = std::min(earliest, slot.deadline);
        }
      }
    }
    for (const auto& run : due) on_timeout(run);
    if (earliest != SteadyClock::time_point::max()) arm_deadline_check(earliest);
  }

  void on_timeout(const std::shared_ptr<Run>& run) {
    if (run->settled.exchange(true)) return;
    zombies.fetch_add(1);
    run->reason.store(StopReason::timed_out, std::memory_order_release);
    run->stop.request_stop();
    finish_run(run, error_completion(run->record, DurableExecutionTimedOutError{}.to_stored(),
                                     now_timestamp()));
  }

  /** The run left this executor's hands: free its slot and record the outcome. */
  void finish_run(const std::shared_ptr<Run>& run, Completion completion) {
    std::size_t running = 0;
    {
      std::lock_guard lock(runs_mutex);
      ++pending_completions;
      in_flight.erase(run->record.execution_id);
      running = in_flight.size();
    }
    slot_freed(running);
    submit_completion(std::move(completion));
  }

  /**
   * Wakes a dispatcher that stopped at capacity once enough slots are free for a worthwhile
   * claim (half a batch, or everything idle), not once per finished run.
   */
  void slot_freed(std::size_t running) {
    if (!dispatcher_at_capacity.load(std::memory_order_acquire)) return;
    const auto max = static_cast<std::size_t>(options.max_concurrent_task_executions);
    const auto batch =
        std::min<std::size_t>(static_cast<std::size_t>(options.max_task_executions_per_batch), max);
    const auto free = max - std::min(running, max);
    if (free >= std::max<std::size_t>(1, batch / 2) || running == 0) {
      dispatcher_at_capacity.store(false, std::memory_order_release);
      wake_dispatcher();
    }
  }

  /** Runs the task function and turns its result or error into the result write (§3.2-§3.4). */
  Completion run_and_build(Run& run) {
    const auto& rec = run.record;
    try {
      const auto& def = run.definition;
      if (!def) throw DurableExecutionNotFoundError(fmt::format("Task {} not found", rec.task_id));
      if (def->is_sleeping_task || !def->run) {
        throw DurableExecutionError::non_retryable("Sleeping tasks cannot be run", true);
      }
      TaskRunContext ctx{TaskRunContextData{
          .execution = &rec,
          .stop_token = run.stop.get_token(),
          .stop_reason = &run.reason,
      }};
      in_user_code.fetch_add(1, std::memory_order_relaxed);
      // Each worker samples one run in kWaitSampleEvery for the wait mean: reading the thread's
      // CPU time is a system call (no vDSO), too dear to make twice per run.
      thread_local std::uint32_t runs_on_this_worker = 0;
      struct Leave {
        Impl& impl;
        bool sampled = runs_on_this_worker++ % kWaitSampleEvery == 0;
        SteadyClock::time_point wall_start =
            sampled ? SteadyClock::now() : SteadyClock::time_point{};
        std::int64_t cpu_start = sampled ? cpu_time_ns(CLOCK_THREAD_CPUTIME_ID) : 0;
        ~Leave() {
          impl.in_user_code.fetch_sub(1, std::memory_order_relaxed);
          if (!sampled) return;
          const auto wall =
              std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - wall_start)
                  .count();
          const auto waited =
              std::max<std::int64_t>(0, wall - (cpu_time_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_start));
          // A racy moving mean (weight 1/8) is enough for a pool heuristic.
          const auto mean = impl.run_wait_ns_mean.load(std::memory_order_relaxed);
          impl.run_wait_ns_mean.store(mean + (waited - mean) / 8, std::memory_order_relaxed);
        }
      } leave{*this};
      RunParentResult result = def->run(ctx, rec.input);
      return success_completion(rec, *def, std::move(result));
    } catch (...) {
      return error_completion(rec, to_stored_error(std::current_exception()), now_timestamp());
    }
  }

  /** T20: a parent's outcome, decided by its finalize child's final status. */
  static TaskExecutionUpdate settle_parent_update(Status status,
                                                  const std::optional<std::string>& output,
                                                  const std::optional<StoredError>& error,
                                                  const std::string& finalize_task_id) {
    TaskExecutionUpdate u;
    if (status == Status::completed) {
      u.status = Status::completed;
      u.output = output.value_or("null");
    } else {
      u.status = Status::finalize_failed;
      u.error = error.value_or(StoredError{
          ErrorType::generic, false, false,
          fmt::format("Finalize task {} failed with an unknown error", finalize_task_id)});
    }
    return u;
  }

  /**
   * Closes an execution in the write that finishes it when the close path would have nothing
   * more to do than mark it closed: no descendants to cancel (T11) — or it completed. A child's
   * parent count is decremented in the same storage call, as the mark step would. A finalize
   * child also settles its parent there (T20, guarded by `waiting_for_finalize`), and a settled
   * top-level parent that completed is closed with it. Two to three fewer storage round trips
   * per execution, and none on the background thread.
   */
  static void close_in_write(UpdateByIdRequest& req, const TaskExecutionRecord& rec,
                             bool has_descendants, Timestamp now) {
    auto& u = req.update;
    if (!u.status || !is_finished(*u.status)) return;
    if (has_descendants && *u.status != Status::completed) return;
    if (rec.parent && rec.parent->is_finalize_of_parent) {
      auto settle = settle_parent_update(*u.status, u.output, u.error, rec.task_id);
      // A child's root is its parent exactly when the parent is top-level: nothing to notify.
      const bool parent_is_top_level =
          rec.root && rec.root->execution_id == rec.parent->execution_id;
      if (parent_is_top_level && settle.status == Status::completed) {
        settle.close_status = CloseStatus::closed;
        settle.closed_at = now;
      }
      req.parent_update = ParentUpdateRequest{{.status = Status::waiting_for_finalize},
                                              normalize_update(now, std::move(settle))};
    }
    u.close_status = CloseStatus::closed;
    u.closed_at = now;
    req.decrement_parent_active_children_count = rec.parent.has_value();
  }

  /** The guarded result write of a run without children. */
  static UpdateByIdRequest running_update(const TaskExecutionRecord& rec,
                                          TaskExecutionUpdate update, Timestamp now) {
    UpdateByIdRequest req{rec.execution_id, GetByIdFilters{.status = Status::running},
                          std::move(update)};
    close_in_write(req, rec, false, now);
    req.update = normalize_update(now, std::move(req.update));
    return req;
  }

  Completion error_completion(const TaskExecutionRecord& rec, StoredError error, Timestamp now) {
    Completion c;
    TaskExecutionUpdate u;
    if (error.is_retryable && rec.retry_attempts < rec.retry_options.max_attempts) {
      const auto start_at = now + retry_delay(rec.retry_options, rec.retry_attempts);
      u.status = Status::ready;
      u.error = std::move(error);
      u.retry_attempts = rec.retry_attempts + 1;
      u.start_at = start_at;
      c.wake_at = start_at;
    } else {
      u.status = status_for_error(error);
      u.error = std::move(error);
    }
    c.update = running_update(rec, std::move(u), now);
    return c;
  }

  Completion success_completion(const TaskExecutionRecord& rec, const TaskDefinition& def,
                                RunParentResult result) {
    const auto now = now_timestamp();
    Completion c;
    if (result.children.empty()) {
      if (def.finalize_task_id) {
        auto fin = find_task(*def.finalize_task_id);
        if (!fin) {
          throw DurableExecutionNotFoundError(
              fmt::format("Finalize task {} not found", *def.finalize_task_id));
        }
        if (fin->is_sleeping_task) {
          throw DurableExecutionError::non_retryable(
              fmt::format("Finalize task {} cannot be a sleeping task", fin->options.id));
        }
        auto input = parent_result_json(result.output);
        check_size(input, options.max_serialized_input_data_size);
        auto child = make_child_record(
            rec, *fin, std::move(input), EnqueueOptions{},
            ParentTaskExecutionSummary{rec.task_id, rec.execution_id, 0, false, true}, now);
        TaskExecutionUpdate u;
        u.status = Status::waiting_for_finalize;
        u.children = std::vector<TaskExecutionSummary>{};
        u.finalize = TaskExecutionSummary{child.task_id, child.execution_id};
        c.update_with_children =
            UpdateByIdAndInsertChildrenRequest{rec.execution_id,
                                               GetByIdFilters{.status = Status::running},
                                               normalize_update(now, std::move(u)),
                                               {std::move(child)}};
        return c;
      }
      std::string output;
      if (def.finalize_function) {
        auto input = parent_result_json(result.output);
        try {
          output = def.finalize_function(input);
        } catch (...) {
          TaskExecutionUpdate u;
          u.status = Status::finalize_failed;
          u.error = StoredError{ErrorType::generic, false, false,
                                error_message(std::current_exception())};
          u.children = std::vector<TaskExecutionSummary>{};
          c.update = running_update(rec, std::move(u), now);
          return c;
        }
      } else if (def.is_parent) {
        output = parent_result_json(result.output);
      } else {
        output = std::move(result.output);
      }
      check_size(output, options.max_serialized_output_data_size);
      TaskExecutionUpdate u;
      u.status = Status::completed;
      u.output = std::move(output);
      u.children = std::vector<TaskExecutionSummary>{};
      c.update = running_update(rec, std::move(u), now);
      return c;
    }

    const auto count = result.children.size();
    if (count > static_cast<std::size_t>(options.max_children_per_task_execution)) {
      throw DurableExecutionError::non_retryable(
          fmt::format("Parent task {} cannot spawn more than {} children tasks. Attempted: {}",
                      rec.task_id, options.max_children_per_task_execution, count));
    }
    check_size(result.output, options.max_serialized_output_data_size);
    std::vector<TaskExecutionSummary> summaries;
    std::vector<TaskExecutionRecord> inserts;
    summaries.reserve(count);
    inserts.reserve(def.are_children_sequential ? 1 : count);
    std::shared_ptr<const TaskDefinition> child_def;
    for (std::size_t i = 0; i < count; ++i) {
      auto& spec = result.children[i];
      // Children usually share a task: one registry lookup per run of equal task ids.
      if (!child_def || child_def->options.id != spec.task_id) child_def = find_task(spec.task_id);
      if (!child_def) {
        throw DurableExecutionNotFoundError(fmt::format("Child task {} not found", spec.task_id));
      }
      if (def.are_children_sequential && i > 0) {
        summaries.push_back(TaskExecutionSummary{spec.task_id, "dummy"});
        continue;
      }
      auto child = make_child_record(
          rec, *child_def, std::move(spec.input), spec.options,
          ParentTaskExecutionSummary{rec.task_id, rec.execution_id, static_cast<std::int32_t>(i),
                                     count == 1, false},
          now);
      summaries.push_back(TaskExecutionSummary{child.task_id, child.execution_id});
      inserts.push_back(std::move(child));
    }
    TaskExecutionUpdate u;
    u.status = Status::waiting_for_children;
    u.run_output = std::move(result.output);
    u.children = std::move(summaries);
    u.active_children_count = static_cast<std::int32_t>(inserts.size());
    c.update_with_children = UpdateByIdAndInsertChildrenRequest{
        rec.execution_id, GetByIdFilters{.status = Status::running},
        normalize_update(now, std::move(u)), std::move(inserts)};
    return c;
  }

  /**
   * `{"children": [<entries>], "output": <run output>}`, the input of finalize steps (keys in the
   * order nlohmann would write them). Built as text: outputs are stored JSON already, so they are
   * spliced in verbatim instead of parsed and dumped again, which matters for wide parents.
   */
  static std::string parent_result_json(const std::string& run_output,
                                        std::string_view children_entries = {}) {
    std::string out;
    out.reserve(32 + children_entries.size() + run_output.size());
    out += R"({"children":[)";
    out += children_entries;
    out += R"(],"output":)";
    out += run_output.empty() ? std::string_view{"null"} : std::string_view{run_output};
    out += '}';
    return out;
  }

  /** Appends one child's entry (`{"executionId", "output" | "error", "status", "taskId"}`). */
  static void append_child_entry(std::string& out, const TaskExecutionRecord& child) {
    if (!out.empty()) out += ',';
    out += R"({"executionId":)";
    append_json_string(out, child.execution_id);
    if (child.status == Status::completed) {
      out += R"(,"output":)";
      out += child.output ? std::string_view{*child.output} : std::string_view{"null"};
    } else {
      out += R"(,"error":)";
      out += nlohmann::json(child.error.value_or(
                                StoredError{ErrorType::generic, false, false, "Unknown error"}))
                 .dump();
    }
    out += R"(,"status":)";
    append_json_string(out, to_string(child.status));
    out += R"(,"taskId":)";
    append_json_string(out, child.task_id);
    out += '}';
  }

  /** A child (or finalize) record with per-child overrides laid over the child's options. */
  TaskExecutionRecord make_child_record(const TaskExecutionRecord& parent,
                                        const TaskDefinition& child_def, std::string input,
                                        const EnqueueOptions& overrides,
                                        ParentTaskExecutionSummary parent_summary, Timestamp now) {
    NewTaskExecution n;
    n.root = root_for_children(parent);
    n.parent = std::move(parent_summary);
    n.task_id = child_def.options.id;
    n.execution_id = generate_execution_id();
    n.is_sleeping_task = child_def.is_sleeping_task;
    n.retry_options = overrides.retry.value_or(child_def.options.retry);
    n.sleep_before_run = overrides.sleep_before_run.value_or(child_def.options.sleep_before_run);
    n.timeout = overrides.timeout.value_or(child_def.options.timeout);
    n.are_children_sequential = child_def.are_children_sequential;
    if (child_def.is_sleeping_task) {
      validate_unique_id(input);
      n.sleeping_task_unique_id = std::move(input);
      n.input = "null";
      n.retry_options = RetryOptions{};
      n.sleep_before_run = milliseconds{0};
    } else {
      check_size(input, options.max_serialized_input_data_size);
      n.input = std::move(input);
    }
    return make_task_execution_record(now, std::move(n));
  }

  static void validate_unique_id(const std::string& id) {
    if (id.empty()) {
      throw DurableExecutionError::non_retryable(
          "A non-empty unique id string is required for a sleeping task");
    }
    if (id.size() > 255) {
      throw DurableExecutionError::non_retryable(
          "A unique id string for a sleeping task must be shorter than 256 characters");
    }
  }

  // =========================================================================================
  // Completions: group commit
  // =========================================================================================

  void submit_completion(Completion completion) {
    auto* node = new CompletionNode{std::move(completion)};
    node->next = completion_head.load();
    while (!completion_head.compare_exchange_weak(node->next, node)) {
    }
    // Whoever sets `flushing` writes everything queued, including what arrives meanwhile. After
    // clearing it, the flusher looks once more: a submitter that saw the flag set relied on it.
    // (Sequentially consistent throughout: the flag and the stack form a Dekker pair.)
    while (!flushing.exchange(true)) {
      while (auto* head = completion_head.exchange(nullptr)) {
        CompletionBatch batch;  // the nodes themselves: a completion is ~1.5 KB, moved once
        for (auto* n = head; n != nullptr;) {
          auto& owned = batch.emplace_back(n);
          n = owned->next;
        }
        std::reverse(batch.begin(), batch.end());  // arrival order
        write_completions(batch);
      }
      flushing.store(false);
      if (completion_head.load() == nullptr) return;
    }
  }

  /**
   * Local bookkeeping for children about to be inserted: sleeping ones get their expiry step
   * scheduled; the distinct start times of the others are added to `starts`, to be claimed
   * (schedule_dispatch_at) once the insert is written.
   */
  void note_children(const std::vector<TaskExecutionRecord>& children,
                     std::set<Timestamp>& starts) {
    for (const auto& child : children) {
      if (!child.is_sleeping_task) {
        starts.insert(child.start_at);
      } else if (child.expires_at) {
        schedule_expiry_at(*child.expires_at);
      }
    }
  }

  void write_completions(CompletionBatch& batch) {
    const auto start = SteadyClock::now();
    std::vector<UpdateByIdRequest> updates;
    std::vector<UpdateByIdAndInsertChildrenRequest> with_children;
    updates.reserve(batch.size());
    std::set<Timestamp> with_children_starts;
    // Work for the background thread: executions left to the close path, and parents whose
    // active children count a closed child decremented (possibly to zero).
    bool wake_close_path = false;
    for (auto& node : batch) {
      auto& c = node->completion;
      if (c.update) {
        wake_close_path = wake_close_path || c.update->decrement_parent_active_children_count ||
                          c.update->update.close_status != CloseStatus::closed;
        updates.push_back(std::move(*c.update));
      }
      if (c.update_with_children) {
        note_children(c.update_with_children->children_to_insert_if_updated, with_children_starts);
        with_children.push_back(std::move(*c.update_with_children));
        wake_close_path = true;
      }
    }
    for (std::int32_t attempt = 0;; ++attempt) {
      try {
        if (!updates.empty()) {
          caller.call(StorageMethod::update_many_by_id,
                      [&](TaskExecutionsStorage& s) { s.update_many_by_id(updates); });
          updates.clear();
        }
        if (!with_children.empty()) {
          caller.call(StorageMethod::update_many_by_id_and_insert_children_if_updated,
                      [&](TaskExecutionsStorage& s) {
                        s.update_many_by_id_and_insert_children_if_updated(with_children);
                      });
          with_children.clear();
        }
        break;
      } catch (const std::exception& e) {
        // The executions stay `running`; if every attempt fails, their lease expires and the
        // expiry process returns them to `ready` (at-least-once).
        logger.error(fmt::format("Error in complete: {} (attempt {})", e.what(), attempt + 1));
        if (attempt + 1 >= kMaxCompletionWriteAttempts) break;
        std::this_thread::sleep_for(jittered(milliseconds{std::min(50 << attempt, 1000)}));
      }
    }
    stats_complete.record(static_cast<std::int64_t>(batch.size()), SteadyClock::now() - start);
    for (const auto& node : batch) {
      if (node->completion.wake_at) schedule_dispatch_at(*node->completion.wake_at);
    }
    // Children inserted by these writes are ready work of this executor: claim them now.
    for (const auto& r : with_children_starts) schedule_dispatch_at(r);
    {
      std::lock_guard lock(runs_mutex);
      pending_completions -= static_cast<std::int64_t>(batch.size());
    }
    runs_cv.notify_all();
    notify_finished();
    if (wake_close_path) wake_background();
  }

  // =========================================================================================
  // Dispatcher (ready loop, T3)
  // =========================================================================================

  std::size_t claim_and_dispatch(bool& full_batch) {
    std::int64_t free_slots = 0;
    {
      std::lock_guard lock(runs_mutex);
      free_slots =
          options.max_concurrent_task_executions - static_cast<std::int64_t>(in_flight.size());
    }
    full_batch = false;
    if (free_slots <= 0) {
      dispatcher_at_capacity.store(true, std::memory_order_release);
      // A run may have finished between the count and the flag: re-check once.
      std::lock_guard lock(runs_mutex);
      if (static_cast<std::int64_t>(in_flight.size()) < options.max_concurrent_task_executions) {
        dispatcher_at_capacity.store(false, std::memory_order_release);
        full_batch = true;  // claim again at once
      }
      return 0;
    }
    const auto limit = std::min<std::int64_t>(options.max_task_executions_per_batch, free_slots);
    const auto start = SteadyClock::now();
    const auto now = now_timestamp();
    TaskExecutionUpdate u;
    u.status = Status::running;
    u.executor_id = executor_id;
    u.started_at = now;
    UpdateByStatusAndStartAtLessThanRequest req{
        Status::ready,
        // start_at <= now: a task enqueued in this very millisecond runs now, not next tick.
        now + milliseconds{1},
        normalize_update(now, std::move(u)),
        now + options.expire_leeway,
        limit,
    };
    auto rows = caller.call(StorageMethod::claim_ready, [&](TaskExecutionsStorage& s) {
      return s.update_by_status_and_start_at_less_than_and_return(req);
    });
    if (rows.empty()) {
      stats_ready.record(0, SteadyClock::now() - start);
      return 0;
    }
    std::vector<std::shared_ptr<Run>> runs;
    runs.reserve(rows.size());
    {
      std::lock_guard lock(runs_mutex);
      for (auto& row : rows) {
        if (in_flight.contains(row.execution_id)) continue;
        auto run = std::make_shared<Run>();
        run->definition = find_task(row.task_id);
        run->record = std::move(row);
        in_flight.emplace(run->record.execution_id, run);
        runs.push_back(std::move(run));
      }
    }
    const auto n = runs.size();
    pool_submit(std::move(runs));
    stats_ready.record(static_cast<std::int64_t>(n), SteadyClock::now() - start);
    full_batch = static_cast<std::int64_t>(rows.size()) >= limit;
    return n;
  }

  void dispatcher_loop() {
    const auto base = options.background_process_intra_batch_sleep;
    auto cur = base;
    std::int32_t errors = 0;
    while (!stop_loops.load()) {
      {
        std::lock_guard lock(dispatch_mutex);
        dispatch_wake = false;
      }
      bool full = false;
      std::size_t claimed = 0;
      try {
        claimed = claim_and_dispatch(full);
        errors = 0;
      } catch (const std::exception& e) {
        ++errors;
        logger.error(fmt::format("Error in ready: consecutive_errors={}: {}", errors, e.what()));
      }
      if (full) {
        // More may be ready: keep claiming (the claim limit already accounts for free slots).
        cur = base;
        continue;
      }
      if (errors > 0) {
        cur = errors >= 10 ? std::min(cur * 5 / 4, base * 5) : base;
      } else if (claimed == 0) {
        cur = std::min(cur * 9 / 8, base * 5 / 2);
      } else {
        cur = base;
      }
      std::unique_lock lock(dispatch_mutex);
      dispatch_cv.wait_for(lock, jittered(cur),
                           [this] { return dispatch_wake || stop_loops.load(); });
    }
  }

  // =========================================================================================
  // Background processes
  // =========================================================================================

  template <class F>
  std::int64_t step(const char* name, ProcessStats& stats, std::int32_t& errors, F&& fn) {
    const auto start = SteadyClock::now();
    try {
      const std::int64_t n = fn();
      stats.record(n, SteadyClock::now() - start);
      errors = 0;
      return n;
    } catch (const std::exception& e) {
      ++errors;
      logger.error(fmt::format("Error in {}: consecutive_errors={}: {}", name, errors, e.what()));
      return 0;
    }
  }

  std::int64_t mark_step() {
    TaskExecutionUpdate u;
    u.close_status = CloseStatus::ready;
    UpdateAndDecrementParentActiveChildrenCountRequest req{
        true, CloseStatus::idle, normalize_update(now_timestamp(), std::move(u)),
        options.mark_finished_task_executions_as_close_status_ready_batch_size};
    return caller.call(StorageMethod::mark_finished, [&](TaskExecutionsStorage& s) {
      return s.update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
          req);
    });
  }

  std::int64_t close_step() {
    const auto now = now_timestamp();
    TaskExecutionUpdate u;
    u.close_status = CloseStatus::closing;
    u.close_expires_at = now + kCloseLease + options.expire_leeway;
    UpdateByCloseStatusRequest req{CloseStatus::ready, normalize_update(now, std::move(u)),
                                   options.close_finished_task_executions_batch_size};
    auto rows = caller.call(StorageMethod::claim_close, [&](TaskExecutionsStorage& s) {
      return s.update_by_close_status_and_return(req);
    });
    if (rows.empty()) return 0;

    std::vector<UpdateByIdRequest> parent_updates;
    std::vector<UpdateByParentExecutionIdAndIsFinishedRequest> cancel_children;
    std::vector<UpdateByIdRequest> closes;
    for (const auto& row : rows) {
      if (row.parent && row.parent->is_finalize_of_parent) {
        // T20: the finalize child decides its parent's outcome.
        parent_updates.push_back(UpdateByIdRequest{
            row.parent->execution_id, GetByIdFilters{.status = Status::waiting_for_finalize},
            normalize_update(
                now, settle_parent_update(row.status, row.output, row.error, row.task_id))});
      }
      const bool has_descendants = (row.children && !row.children->empty()) || row.finalize;
      if (row.status != Status::completed && has_descendants) {
        // T11: a parent that did not complete cancels whatever of its tree still runs.
        TaskExecutionUpdate cu;
        cu.status = Status::cancelled;
        cu.error = DurableExecutionCancelledError(
                       fmt::format("Parent task {} with execution id {} "
                                   "failed: {}",
                                   row.task_id, row.execution_id,
                                   row.error ? row.error->message : std::string{"Unknown error"}))
                       .to_stored();
        cu.needs_promise_cancellation = true;
        cancel_children.push_back(UpdateByParentExecutionIdAndIsFinishedRequest{
            row.execution_id, false, normalize_update(now, std::move(cu))});
      }
      TaskExecutionUpdate close;
      close.close_status = CloseStatus::closed;
      close.closed_at = now;
      closes.push_back(UpdateByIdRequest{row.execution_id, GetByIdFilters{.is_finished = true},
                                         normalize_update(now, std::move(close))});
    }
    if (!parent_updates.empty()) {
      caller.call(StorageMethod::update_many_by_id,
                  [&](TaskExecutionsStorage& s) { s.update_many_by_id(parent_updates); });
      notify_finished();
    }
    if (!cancel_children.empty()) {
      caller.call(StorageMethod::update_many_by_parent_execution_id_and_is_finished,
                  [&](TaskExecutionsStorage& s) {
                    s.update_many_by_parent_execution_id_and_is_finished(cancel_children);
                  });
      notify_finished();
      std::lock_guard lock(bg_mutex);
      bg_cancel_now = true;
    }
    caller.call(StorageMethod::update_many_by_id,
                [&](TaskExecutionsStorage& s) { s.update_many_by_id(closes); });
    return static_cast<std::int64_t>(rows.size());
  }

  std::optional<TaskExecutionRecord> get_by_id(const std::string& id) {
    std::vector<GetByIdRequest> reqs{GetByIdRequest{id, {}}};
    auto res = caller.call(StorageMethod::get_many_by_id,
                           [&](TaskExecutionsStorage& s) { return s.get_many_by_id(reqs); });
    return res.empty() ? std::nullopt : std::move(res.front());
  }

  /** The writes of one children step, gathered so that the whole batch costs two calls. */
  struct ParentWrites {
    std::vector<UpdateByIdRequest> updates;
    std::vector<UpdateByIdAndInsertChildrenRequest> with_children;
  };

  std::int64_t children_step() {
    const auto now = now_timestamp();
    TaskExecutionUpdate u;
    u.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::processing;
    u.on_children_finished_processing_expires_at = now + kProcessingLease + options.expire_leeway;
    UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest req{
        Status::waiting_for_children, OnChildrenFinishedProcessingStatus::idle,
        normalize_update(now, std::move(u)),
        options.process_on_children_finished_task_executions_batch_size};
    auto rows = caller.call(StorageMethod::claim_children_finished, [&](TaskExecutionsStorage& s) {
      return s
          .update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
              req);
    });
    if (rows.empty()) return 0;
    // One read for the children of every claimed parent, one or two writes for all outcomes. If
    // a call fails, the parents' processing leases expire and the expiry process resets them to
    // idle: the step runs again then.
    std::vector<GetByParentExecutionIdRequest> reads;
    reads.reserve(rows.size());
    for (const auto& parent : rows) reads.push_back({parent.execution_id});
    auto loaded = caller.call(
        StorageMethod::get_many_by_parent_execution_id,
        [&](TaskExecutionsStorage& s) { return s.get_many_by_parent_execution_id(reads); });
    if (loaded.size() != rows.size()) {
      throw DurableExecutionError(
          fmt::format("get_many_by_parent_execution_id returned {} results for {} requests",
                      loaded.size(), rows.size()));
    }
    ParentWrites writes;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      try {
        process_parent(rows[i], loaded[i], writes);
      } catch (const std::exception& e) {
        logger.error(
            fmt::format("Error in children: parent {}: {}", rows[i].execution_id, e.what()));
      }
    }
    if (!writes.updates.empty()) {
      caller.call(StorageMethod::update_many_by_id,
                  [&](TaskExecutionsStorage& s) { s.update_many_by_id(writes.updates); });
    }
    if (!writes.with_children.empty()) {
      std::set<Timestamp> starts;
      for (const auto& w : writes.with_children)
        note_children(w.children_to_insert_if_updated, starts);
      caller.call(StorageMethod::update_many_by_id_and_insert_children_if_updated,
                  [&](TaskExecutionsStorage& s) {
                    s.update_many_by_id_and_insert_children_if_updated(writes.with_children);
                  });
      for (const auto& t : starts) schedule_dispatch_at(t);
    }
    notify_finished();
    return static_cast<std::int64_t>(rows.size());
  }

  /** Plans the parent's guarded write: its outcome, or its next children. */
  void plan_parent_write(const TaskExecutionRecord& parent, TaskExecutionUpdate u,
                         ParentWrites& writes, std::vector<TaskExecutionRecord> children = {}) {
    const auto now = now_timestamp();
    if (!u.on_children_finished_processing_status) {
      u.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::processed;
      u.on_children_finished_processing_finished_at = now;
    }
    GetByIdFilters guard{.status = Status::waiting_for_children};
    if (children.empty()) {
      UpdateByIdRequest req{parent.execution_id, guard, std::move(u)};
      close_in_write(req, parent, true, now);
      req.update = normalize_update(now, std::move(req.update));
      writes.updates.push_back(std::move(req));
    } else {
      writes.with_children.push_back(UpdateByIdAndInsertChildrenRequest{
          parent.execution_id, guard, normalize_update(now, std::move(u)), std::move(children)});
    }
  }

  void fail_parent(const TaskExecutionRecord& parent, Status status, StoredError error,
                   ParentWrites& writes) {
    TaskExecutionUpdate u;
    u.status = status;
    u.error = std::move(error);
    plan_parent_write(parent, std::move(u), writes);
  }

  /** The children step of SPEC.md §3.10 (and §3.8 for sequential parents) for one parent. */
  void process_parent(const TaskExecutionRecord& parent,
                      const std::vector<TaskExecutionRecord>& children, ParentWrites& writes) {
    auto def = find_task(parent.task_id);
    if (!def) {
      fail_parent(parent, Status::failed,
                  DurableExecutionNotFoundError(fmt::format("Task {} not found", parent.task_id))
                      .to_stored(),
                  writes);
      return;
    }
    std::unordered_map<std::string_view, const TaskExecutionRecord*> by_id;
    by_id.reserve(children.size());
    for (const auto& c : children) by_id.emplace(c.execution_id, &c);
    static const std::vector<TaskExecutionSummary> kNone;
    const auto& declared = parent.children ? *parent.children : kNone;
    if (def->are_children_sequential) {
      const auto it = std::find_if(declared.begin(), declared.end(),
                                   [](const auto& c) { return c.execution_id == "dummy"; });
      if (it != declared.end() && it != declared.begin()) {
        const auto j = static_cast<std::size_t>(it - declared.begin());
        const auto prev = by_id.find(declared[j - 1].execution_id);
        advance_sequence(parent, declared, j, prev == by_id.end() ? nullptr : prev->second, writes);
        return;
      }
    }
    std::shared_ptr<const TaskDefinition> fin;
    if (def->finalize_task_id) {
      fin = find_task(*def->finalize_task_id);
      if (!fin || fin->is_sleeping_task) {
        fail_parent(parent, Status::failed,
                    DurableExecutionNotFoundError(
                        fin ? fmt::format("Finalize task {} cannot be a sleeping task",
                                          *def->finalize_task_id)
                            : fmt::format("Finalize task {} not found", *def->finalize_task_id))
                        .to_stored(),
                    writes);
        return;
      }
    }
    std::string entries;
    std::size_t missing = 0;
    for (const auto& summary : declared) {
      auto found = by_id.find(summary.execution_id);
      if (found == by_id.end()) {
        ++missing;
        continue;
      }
      append_child_entry(entries, *found->second);
    }
    if (missing > 0) {
      fail_parent(parent, Status::failed,
                  DurableExecutionNotFoundError(
                      fmt::format("Some children task executions not found: {}/{} not found",
                                  missing, declared.size()))
                      .to_stored(),
                  writes);
      return;
    }
    auto result = parent_result_json(parent.run_output.value_or(""), entries);
    if (fin) {
      check_size(result, options.max_serialized_input_data_size);
      auto child = make_child_record(
          parent, *fin, std::move(result), EnqueueOptions{},
          ParentTaskExecutionSummary{parent.task_id, parent.execution_id, 0, false, true},
          now_timestamp());
      TaskExecutionUpdate u;
      u.status = Status::waiting_for_finalize;
      u.finalize = TaskExecutionSummary{child.task_id, child.execution_id};
      std::vector<TaskExecutionRecord> inserts;
      inserts.push_back(std::move(child));
      plan_parent_write(parent, std::move(u), writes, std::move(inserts));
      return;
    }
    TaskExecutionUpdate u;
    if (def->finalize_function) {
      std::string output;
      try {
        output = def->finalize_function(result);
      } catch (...) {
        fail_parent(
            parent, Status::finalize_failed,
            StoredError{ErrorType::generic, false, false, error_message(std::current_exception())},
            writes);
        return;
      }
      check_size(output, options.max_serialized_output_data_size);
      u.status = Status::completed;
      u.output = std::move(output);
    } else {
      check_size(result, options.max_serialized_output_data_size);
      u.status = Status::completed;
      u.output = std::move(result);
    }
    plan_parent_write(parent, std::move(u), writes);
  }

  /** T16: launch sequential child j with child j-1's output, or fail the parent. */
  void advance_sequence(const TaskExecutionRecord& parent,
                        std::vector<TaskExecutionSummary> declared, std::size_t j,
                        const TaskExecutionRecord* prev, ParentWrites& writes) {
    auto child_def = find_task(declared[j].task_id);
    if (!child_def) {
      fail_parent(
          parent, Status::failed,
          DurableExecutionNotFoundError(fmt::format("Child task {} not found", declared[j].task_id))
              .to_stored(),
          writes);
      return;
    }
    if (!prev) {
      fail_parent(parent, Status::failed,
                  DurableExecutionNotFoundError(fmt::format("Task at index {} not found", j - 1))
                      .to_stored(),
                  writes);
      return;
    }
    if (prev->status != Status::completed) {
      fail_parent(parent, Status::finalize_failed,
                  StoredError{ErrorType::generic, false, false,
                              fmt::format("Task at index {} failed: {}", j - 1,
                                          prev->error ? prev->error->message
                                                      : std::string{"Unknown error"})},
                  writes);
      return;
    }
    NewTaskExecution n;
    n.root = root_for_children(parent);
    n.parent = ParentTaskExecutionSummary{parent.task_id, parent.execution_id,
                                          static_cast<std::int32_t>(j), false, false};
    n.task_id = child_def->options.id;
    n.execution_id = generate_execution_id();
    n.is_sleeping_task = child_def->is_sleeping_task;
    n.retry_options = child_def->options.retry;
    n.sleep_before_run = child_def->options.sleep_before_run;
    n.timeout = child_def->options.timeout;
    n.are_children_sequential = child_def->are_children_sequential;
    n.input = prev->output.value_or("null");  // verbatim: no size check (SPEC.md §6.6)
    auto child = make_task_execution_record(now_timestamp(), std::move(n));
    declared[j].execution_id = child.execution_id;
    TaskExecutionUpdate u;
    u.children = std::move(declared);
    u.active_children_count = 1;
    u.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::idle;
    std::vector<TaskExecutionRecord> inserts;
    inserts.push_back(std::move(child));
    plan_parent_write(parent, std::move(u), writes, std::move(inserts));
  }

  std::int64_t cancel_step() {
    {
      std::lock_guard lock(runs_mutex);
      if (in_flight.empty()) return 0;
    }
    TaskExecutionUpdate u;
    u.needs_promise_cancellation = false;
    UpdateByExecutorIdAndNeedsPromiseCancellationRequest req{
        executor_id, true, normalize_update(now_timestamp(), std::move(u)),
        options.cancel_needs_promise_cancellation_task_executions_batch_size};
    auto rows = caller.call(StorageMethod::claim_cancellations, [&](TaskExecutionsStorage& s) {
      return s.update_by_executor_id_and_needs_promise_cancellation_and_return(req);
    });
    for (const auto& row : rows) cancel_local(row.execution_id);
    return static_cast<std::int64_t>(rows.size());
  }

  std::size_t running_count() const {
    std::lock_guard lock(runs_mutex);
    return in_flight.size();
  }

  /** Stops a local run whose execution was cancelled; its late result is discarded. */
  void cancel_local(const std::string& execution_id) {
    std::shared_ptr<Run> run;
    {
      std::lock_guard lock(runs_mutex);
      auto it = in_flight.find(execution_id);
      if (it == in_flight.end()) return;
      run = it->second;
      if (run->settled.exchange(true)) return;
      in_flight.erase(it);
    }
    zombies.fetch_add(1);
    run->reason.store(StopReason::cancelled, std::memory_order_release);
    run->stop.request_stop();
    runs_cv.notify_all();
    slot_freed(running_count());
  }

  std::int64_t expire_step() {
    const auto now = now_timestamp();
    const auto limit = options.retry_expired_task_executions_batch_size;
    std::int64_t total = 0;
    {
      // T14: the executor that ran these died (or stalled past its lease): run them again.
      TaskExecutionUpdate u;
      u.status = Status::ready;
      u.error = DurableExecutionError::non_retryable("Task execution expired").to_stored();
      u.start_at = now;
      UpdateByIsSleepingTaskAndExpiresAtLessThanRequest req{
          false, now, normalize_update(now, std::move(u)), limit};
      const auto n = caller.call(StorageMethod::expire_running, [&](TaskExecutionsStorage& s) {
        return s.update_by_is_sleeping_task_and_expires_at_less_than(req);
      });
      if (n > 0) {
        logger.info(fmt::format("Returned {} expired task executions to ready", n));
        wake_dispatcher();
      }
      total += n;
    }
    {
      // T13: sleeping executions that were not woken in time.
      TaskExecutionUpdate u;
      u.status = Status::timed_out;
      u.error = DurableExecutionTimedOutError{}.to_stored();
      u.start_at = now;
      UpdateByIsSleepingTaskAndExpiresAtLessThanRequest req{
          true, now, normalize_update(now, std::move(u)), limit};
      const auto n = caller.call(StorageMethod::expire_running, [&](TaskExecutionsStorage& s) {
        return s.update_by_is_sleeping_task_and_expires_at_less_than(req);
      });
      if (n > 0) notify_finished();
      total += n;
    }
    {
      // Fixes the reference quirk: a children step that died resets to idle and runs again.
      TaskExecutionUpdate u;
      u.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::idle;
      UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest req{
          now, normalize_update(now, std::move(u)), limit};
      total += caller.call(StorageMethod::expire_processing, [&](TaskExecutionsStorage& s) {
        return s.update_by_on_children_finished_processing_expires_at_less_than(req);
      });
    }
    {
      // T22: a close job that died is retried.
      TaskExecutionUpdate u;
      u.close_status = CloseStatus::ready;
      UpdateByCloseExpiresAtLessThanRequest req{now, normalize_update(now, std::move(u)), limit};
      total += caller.call(StorageMethod::expire_close, [&](TaskExecutionsStorage& s) {
        return s.update_by_close_expires_at_less_than(req);
      });
    }
    return total;
  }

  void background_loop() {
    const auto base = options.background_process_intra_batch_sleep;
    auto idle_wait = base;
    auto next_cancel = SteadyClock::now() + jittered(base * 2);
    auto next_expire = SteadyClock::now() + jittered(base * 10);
    std::int32_t mark_errors = 0;
    std::int32_t close_errors = 0;
    std::int32_t children_errors = 0;
    std::int32_t cancel_errors = 0;
    std::int32_t expire_errors = 0;
    while (!stop_loops.load()) {
      bool cancel_now = false;
      bool expire_now = false;
      {
        std::lock_guard lock(bg_mutex);
        bg_wake = false;
        cancel_now = bg_cancel_now;
        bg_cancel_now = false;
        expire_now = bg_expire_now;
        bg_expire_now = false;
      }
      std::int64_t work = 0;
      work += step("mark", stats_mark, mark_errors, [this] { return mark_step(); });
      work += step("close", stats_close, close_errors, [this] { return close_step(); });
      work += step("children", stats_children, children_errors, [this] { return children_step(); });
      auto now = SteadyClock::now();
      if (cancel_now || now >= next_cancel) {
        work += step("cancel", stats_cancel, cancel_errors, [this] { return cancel_step(); });
        next_cancel = now + jittered(base * 2);
      }
      if (expire_now || now >= next_expire) {
        const auto n =
            step("expire", stats_expire, expire_errors, [this] { return expire_step(); });
        work += n;
        const bool busy = n >= options.retry_expired_task_executions_batch_size / 2;
        next_expire = now + (busy ? milliseconds{0} : jittered(base * 10));
      }
      const auto errors =
          std::max({mark_errors, close_errors, children_errors, cancel_errors, expire_errors});
      if (work > 0 && errors == 0) {
        idle_wait = base;
        continue;
      }
      if (errors >= 10) {
        idle_wait = std::min(idle_wait * 5 / 4, base * 5);
      } else if (errors == 0) {
        idle_wait = std::min(idle_wait * 9 / 8, base * 5 / 2);
      }
      const auto until =
          std::min({SteadyClock::now() + jittered(idle_wait), next_cancel, next_expire});
      std::unique_lock lock(bg_mutex);
      bg_cv.wait_until(lock, until,
                       [this] { return bg_wake || bg_cancel_now || stop_loops.load(); });
    }
  }

  // =========================================================================================
  // Shutdown
  // =========================================================================================

  void shutdown() noexcept {
    std::lock_guard lifecycle(lifecycle_mutex);
    if (shut_down_done) return;
    shut_down_done = true;
    is_shutdown.store(true);
    logger.debug(fmt::format("Shutting down executor {}", executor_id));
    // 1-2. Stop the loops (and the storage's wake-ups of them first).
    caller.storage().unsubscribe_from_external_work(external_work_subscription);
    stop_loops.store(true);
    wake_dispatcher();
    wake_background();
    if (dispatcher.joinable()) dispatcher.join();
    if (background.joinable()) background.join();
    // 3. Runs see the stop request and finish; their results are recorded.
    {
      std::unique_lock lock(runs_mutex);
      for (auto& [id, run] : in_flight) {
        StopReason expected = StopReason::none;
        run->reason.compare_exchange_strong(expected, StopReason::shutdown);
        run->stop.request_stop();
      }
      runs_cv.wait(lock, [this] { return in_flight.empty() && pending_completions == 0; });
    }
    // 4. Join the workers (abandoned runs included), then the timer.
    {
      std::lock_guard lock(pool_mutex);
      pool_stop = true;
    }
    pool_cv.notify_all();
    for (auto& t : pool_threads) {
      if (t.joinable()) t.join();
    }
    if (timer) timer->stop();
    notify_finished();
  }
};

// =============================================================================================
// Engine: public surface
// =============================================================================================

Engine::Engine(TaskExecutionsStorage& storage, const DurableExecutorOptions& options, Mode mode) {
  validate_executor_options(options);
  impl_ = std::make_unique<Impl>(storage, options, mode);
  if (mode == Mode::executor) impl_->timer = std::make_unique<TimerThread>();
}

Engine::~Engine() { shutdown(); }

TaskDescriptor Engine::register_task(TaskDefinition def) {
  auto& s = *impl_;
  s.throw_if_shutdown();
  if (def.is_sleeping_task) {
    validate_task_id(def.options.id);
    validate_timeout(def.options.id, def.options.timeout);
    def.options.retry = RetryOptions{};
    def.options.sleep_before_run = std::chrono::milliseconds{0};
  } else {
    validate_task_options(def.options);
  }
  if (def.finalize_function && def.finalize_task_id) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Task {} has both a finalize function and a finalize task", def.options.id));
  }
  TaskDescriptor descriptor{def.options.id,      def.is_sleeping_task,
                            def.options.retry,   def.options.sleep_before_run,
                            def.options.timeout, def.are_children_sequential};
  {
    std::unique_lock lock(s.registry_mutex);
    if (def.finalize_task_id && !s.registry.contains(*def.finalize_task_id)) {
      throw DurableExecutionNotFoundError(
          fmt::format("Finalize task {} not found", *def.finalize_task_id));
    }
    if (s.registry.contains(def.options.id)) {
      throw DurableExecutionError::non_retryable(
          fmt::format("Task {} already exists. Use unique ids for tasks", def.options.id));
    }
    const auto id = def.options.id;
    s.registry.emplace(id, std::make_shared<const TaskDefinition>(std::move(def)));
  }
  s.logger.debug(fmt::format("Added task {}", descriptor.id));
  return descriptor;
}

TaskDescriptor Engine::find_descriptor(const std::string& task_id) const {
  auto def = impl_->find_task(task_id);
  if (!def) throw DurableExecutionNotFoundError(fmt::format("Task {} not found", task_id));
  return TaskDescriptor{def->options.id,      def->is_sleeping_task,
                        def->options.retry,   def->options.sleep_before_run,
                        def->options.timeout, def->are_children_sequential};
}

void Engine::register_descriptor(const TaskDescriptor& d) {
  TaskDefinition def;
  def.options = TaskOptions{d.id, d.timeout, d.retry, d.sleep_before_run};
  def.is_sleeping_task = d.is_sleeping_task;
  def.are_children_sequential = d.are_children_sequential;
  (void)register_task(std::move(def));
}

std::string Engine::enqueue(const TaskDescriptor& task, std::string input,
                            const EnqueueOptions& options) {
  auto& s = *impl_;
  s.throw_if_shutdown();
  auto def = s.find_task(task.id);
  if (!def) {
    throw DurableExecutionNotFoundError(fmt::format(
        "Task {} not found. Use DurableExecutor.task() to add it before enqueuing it", task.id));
  }
  NewTaskExecution n;
  n.task_id = task.id;
  n.execution_id = generate_execution_id();
  n.is_sleeping_task = def->is_sleeping_task;
  n.are_children_sequential = def->are_children_sequential;
  n.retry_options = def->options.retry;
  n.sleep_before_run = def->options.sleep_before_run;
  n.timeout = def->options.timeout;
  if (options.retry) {
    validate_retry_options(task.id, *options.retry);
    n.retry_options = *options.retry;
  }
  if (options.sleep_before_run) {
    validate_sleep_before_run(task.id, *options.sleep_before_run);
    n.sleep_before_run = *options.sleep_before_run;
  }
  if (options.timeout) {
    validate_timeout(task.id, *options.timeout);
    n.timeout = *options.timeout;
  }
  if (def->is_sleeping_task) {
    Impl::validate_unique_id(input);
    n.sleeping_task_unique_id = std::move(input);
    n.input = "null";
    n.retry_options = RetryOptions{};
    n.sleep_before_run = std::chrono::milliseconds{0};
  } else {
    check_size(input, s.options.max_serialized_input_data_size);
    n.input = std::move(input);
  }
  std::vector<TaskExecutionRecord> records;
  records.push_back(make_task_execution_record(now_timestamp(), std::move(n)));
  const auto start_at = records.front().start_at;
  auto id = records.front().execution_id;
  s.caller.call(StorageMethod::insert_many,
                [&](TaskExecutionsStorage& st) { st.insert_many(records); });
  if (s.mode == Mode::executor) {
    if (def->is_sleeping_task) {
      if (records.front().expires_at) s.schedule_expiry_at(*records.front().expires_at);
    } else {
      s.schedule_dispatch_at(start_at);
    }
  }
  if (s.logger.enabled(LogLevel::debug)) {
    s.logger.debug(fmt::format("Enqueued task {} as execution {}", task.id, id));
  }
  return id;
}

void Engine::check_handle(const std::string& task_id, const std::string& execution_id) {
  if (!impl_->find_task(task_id)) {
    throw DurableExecutionNotFoundError(fmt::format("Task {} not found", task_id));
  }
  (void)get_execution(task_id, execution_id);
}

TaskExecutionRecord Engine::get_execution(const std::string& task_id,
                                          const std::string& execution_id) {
  auto rec = impl_->get_by_id(execution_id);
  if (!rec) {
    throw DurableExecutionNotFoundError(fmt::format("Task execution {} not found", execution_id));
  }
  if (rec->task_id != task_id) {
    throw DurableExecutionNotFoundError(
        fmt::format("Task execution {} belongs to task {}", execution_id, rec->task_id));
  }
  return std::move(*rec);
}

TaskExecutionRecord Engine::wait_finished(const std::string& task_id,
                                          const std::string& execution_id,
                                          const WaitOptions& options) {
  auto& s = *impl_;
  const auto interval = options.polling_interval.count() > 0 ? options.polling_interval
                                                             : std::chrono::milliseconds{2500};
  std::optional<SteadyClock::time_point> deadline;
  if (options.timeout) deadline = SteadyClock::now() + *options.timeout;
  std::stop_callback on_stop(options.stop_token, [&s] { s.finished_cv.notify_all(); });
  // The first look (and one after each quiet polling interval) reads the whole record, which
  // also reports a missing or foreign execution. Wake-ups by local completions ask the store for
  // the execution only if it is finished: no copy of a large record per notification.
  bool full_check = true;
  for (;;) {
    std::uint64_t seen = 0;
    {
      std::lock_guard lock(s.finished_mutex);
      seen = s.finished_seq;
    }
    if (full_check) {
      auto rec = get_execution(task_id, execution_id);
      if (rec.is_finished) return rec;
    } else {
      std::vector<GetByIdRequest> reqs{GetByIdRequest{execution_id, {.is_finished = true}}};
      auto res = s.caller.call(StorageMethod::get_many_by_id,
                               [&](TaskExecutionsStorage& st) { return st.get_many_by_id(reqs); });
      if (!res.empty() && res.front()) return get_execution(task_id, execution_id);
    }
    if (options.stop_token.stop_requested()) {
      throw DurableExecutionCancelledError("Wait for task execution cancelled");
    }
    auto until = SteadyClock::now() + interval;
    if (deadline) {
      if (SteadyClock::now() >= *deadline) {
        throw DurableExecutionTimedOutError(
            fmt::format("Timed out waiting for task execution {}", execution_id));
      }
      until = std::min(until, *deadline);
    }
    std::unique_lock lock(s.finished_mutex);
    const bool notified = s.finished_cv.wait_until(
        lock, until, [&] { return s.finished_seq != seen || options.stop_token.stop_requested(); });
    full_check = !notified;
  }
}

void Engine::cancel(const std::string& execution_id) {
  auto& s = *impl_;
  TaskExecutionUpdate u;
  u.status = Status::cancelled;
  u.error = DurableExecutionCancelledError{}.to_stored();
  u.needs_promise_cancellation = true;
  std::vector<UpdateByIdRequest> reqs{UpdateByIdRequest{
      execution_id, GetByIdFilters{.is_finished = false}, normalize_update(now_timestamp(), u)}};
  s.caller.call(StorageMethod::update_many_by_id,
                [&](TaskExecutionsStorage& st) { st.update_many_by_id(reqs); });
  s.cancel_local(execution_id);
  s.notify_finished();
  if (s.mode == Mode::executor) s.wake_background(true);
}

TaskExecutionRecord Engine::wakeup_sleeping(const TaskDescriptor& task,
                                            const std::string& unique_id, Status status,
                                            std::string payload) {
  auto& s = *impl_;
  s.throw_if_shutdown();
  if (!task.is_sleeping_task) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Task {} is not a sleeping task", task.id));
  }
  std::vector<GetBySleepingTaskUniqueIdRequest> reqs{GetBySleepingTaskUniqueIdRequest{unique_id}};
  auto found = s.caller.call(
      StorageMethod::get_many_by_sleeping_task_unique_id,
      [&](TaskExecutionsStorage& st) { return st.get_many_by_sleeping_task_unique_id(reqs); });
  if (found.empty() || !found.front()) {
    throw DurableExecutionNotFoundError(
        fmt::format("Sleeping task execution {} not found", unique_id));
  }
  auto rec = std::move(*found.front());
  if (rec.task_id != task.id) {
    throw DurableExecutionNotFoundError(
        fmt::format("Sleeping task execution {} belongs to task {}", unique_id, rec.task_id));
  }
  if (rec.is_finished) return rec;
  TaskExecutionUpdate u;
  if (status == Status::completed) {
    u.status = Status::completed;
    u.output = std::move(payload);
  } else if (status == Status::failed) {
    u.status = Status::failed;
    u.error = StoredError{ErrorType::generic, false, false,
                          payload.empty() ? std::string{"Unknown error"} : std::move(payload)};
  } else {
    throw DurableExecutionError::non_retryable(
        fmt::format("Invalid status {} for waking up a sleeping task", to_string(status)));
  }
  std::vector<UpdateByIdRequest> updates{UpdateByIdRequest{
      rec.execution_id, GetByIdFilters{.is_sleeping_task = true, .is_finished = false},
      normalize_update(now_timestamp(), std::move(u))}};
  s.caller.call(StorageMethod::update_many_by_id,
                [&](TaskExecutionsStorage& st) { st.update_many_by_id(updates); });
  auto after = s.get_by_id(rec.execution_id);
  if (!after) {
    throw DurableExecutionNotFoundError(
        fmt::format("Task execution {} not found", rec.execution_id));
  }
  if (!after->is_finished) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Task execution {} is not a sleeping task execution", rec.execution_id));
  }
  s.notify_finished();
  if (s.mode == Mode::executor) s.wake_background();
  return std::move(*after);
}

void Engine::start() {
  auto& s = *impl_;
  std::lock_guard lock(s.lifecycle_mutex);
  s.throw_if_shutdown();
  if (s.started || s.mode == Mode::client) return;
  s.started = true;
  s.dispatcher = std::thread([&s] { s.dispatcher_loop(); });
  s.background = std::thread([&s] { s.background_loop(); });
  s.external_work_subscription = s.caller.storage().subscribe_to_external_work([&s] {
    s.wake_dispatcher();
    s.wake_background();
  });
  s.logger.debug(fmt::format("Started executor {}", s.executor_id));
}

void Engine::shutdown() noexcept {
  if (impl_) impl_->shutdown();
}

bool Engine::is_shutdown() const noexcept { return impl_->is_shutdown.load(); }

ExecutorStats Engine::stats() const {
  const auto& s = *impl_;
  ExecutorStats st;
  st.expire_leeway = s.options.expire_leeway;
  {
    std::lock_guard lock(s.runs_mutex);
    st.curr_concurrent_task_executions = static_cast<std::int32_t>(s.in_flight.size());
  }
  st.max_concurrent_task_executions = s.options.max_concurrent_task_executions;
  st.max_task_executions_per_batch = s.options.max_task_executions_per_batch;
  st.max_children_per_task_execution = s.options.max_children_per_task_execution;
  st.max_serialized_input_data_size = s.options.max_serialized_input_data_size;
  st.max_serialized_output_data_size = s.options.max_serialized_output_data_size;
  {
    std::shared_lock lock(s.registry_mutex);
    st.registered_tasks_count = static_cast<std::int32_t>(s.registry.size());
  }
  st.is_shutdown = s.is_shutdown.load();
  {
    std::lock_guard lock(s.pool_mutex);
    st.worker_threads = static_cast<std::int32_t>(s.pool_threads.size());
  }
  st.storage_calls = s.caller.call_stats();
  st.storage_calls_per_second = s.caller.per_second_counts();
  st.processes = {{"ready", s.stats_ready.get()},      {"children", s.stats_children.get()},
                  {"mark", s.stats_mark.get()},        {"close", s.stats_close.get()},
                  {"cancel", s.stats_cancel.get()},    {"expire", s.stats_expire.get()},
                  {"complete", s.stats_complete.get()}};
  return st;
}

std::vector<std::string> Engine::running_execution_ids() const {
  std::lock_guard lock(impl_->runs_mutex);
  std::vector<std::string> ids;
  ids.reserve(impl_->in_flight.size());
  for (const auto& [id, run] : impl_->in_flight) ids.emplace_back(id);
  return ids;
}

std::string Engine::executor_id() const { return impl_->executor_id; }

}  // namespace durable_execution::detail
