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
#include <fmt/ranges.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <list>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "durable_execution/batching_storage.hpp"
#include "durable_execution/detail/engine.hpp"
#include "durable_execution/detail/json_limits.hpp"
#include "durable_execution/detail/json_text.hpp"
#include "durable_execution/detail/saturating_time.hpp"
#include "executor_support.hpp"
#include "executor_validation.hpp"

namespace durable_execution::detail {

namespace {

using std::chrono::milliseconds;
using Status = TaskExecutionStatus;

/** How long a queued run may wait for a worker before the pool adds workers for the queue. */
constexpr std::chrono::microseconds kPoolStallThreshold{1000};
/** Retries of a result write (at least; more if storage_max_retry_attempts says so). */
constexpr std::int32_t kCompletionWriteRetries = 5;
/** Claiming paused by abandoned runs is logged at most this often. */
constexpr std::chrono::seconds kPausedLogInterval{10};
/** How long a cancellation that found no local run waits for a claim in flight to register it. */
constexpr std::chrono::seconds kEarlyCancelTtl{10};
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

/** Size limit, then the nesting limit of everything stored (a cheap scan; none for short data). */
void check_size(const std::string& data, std::int64_t limit) {
  if (static_cast<std::int64_t>(data.size()) > limit) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Serialized data size ({} bytes) exceeds maximum allowed size ({} bytes)",
                    data.size(), limit));
  }
  if (json_nesting_exceeds(data, max_stored_nesting_depth)) {
    throw DurableExecutionError::non_retryable("Serialized data " +
                                               nesting_error_message(max_stored_nesting_depth));
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

/** The string a JSON text holds (a step's output as a sleeping step's unique id), if any. */
std::optional<std::string> unique_id_from_output(const std::string& output) {
  if (auto plain = plain_json_string(output)) return std::string{*plain};
  const auto j = nlohmann::json::parse(output, nullptr, false);
  if (!j.is_string()) return std::nullopt;
  return j.get<std::string>();
}

/** Whether `text` is one JSON value (a plain string is checked without the parser). */
bool is_json_text(std::string_view text) {
  if (plain_json_string(text)) return true;
  return nlohmann::json::accept(text.begin(), text.end());
}

/** At most the first 100 bytes of `text`, printable (other bytes as \xNN), for messages. */
std::string abbreviated(std::string_view text) {
  constexpr std::size_t kMax = 100;
  std::string out;
  for (const char ch : text.substr(0, kMax)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c > 0x7E) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
  }
  if (text.size() > kMax) out += "...";
  return out;
}

TaskExecutionSummary root_for_children(const TaskExecutionRecord& parent) {
  return parent.root ? *parent.root : TaskExecutionSummary{parent.task_id, parent.execution_id};
}

}  // namespace

struct Engine::Impl : std::enable_shared_from_this<Engine::Impl> {
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
    /** The parent a finalize child's update settles (update->parent_update), for its waiters. */
    std::string settled_parent_id{};
    /**
     * What a failure is written from if storage rejects this write (run_failure): the run's
     * place under its parent. Not the run itself: holding runs until their batch is written
     * made the flusher free them all, contended, and cost ~20% of no-op throughput.
     */
    bool has_parent = false;
    bool is_finalize_of_parent = false;
  };

  Impl(TaskExecutionsStorage& storage, const DurableExecutorOptions& opts, Mode m)
      : options(opts),
        mode(m),
        executor_id(make_executor_id()),
        logger(opts.log_level, opts.logger_name, opts.log_sink),
        batching(opts.enable_storage_batching ? std::make_unique<TaskExecutionsStorageWithBatching>(
                                                    storage, opts.storage_batching)
                                              : nullptr),
        caller(batching ? *batching : storage, opts.storage_max_retry_attempts),
        eager_workers(std::max(2U, std::thread::hardware_concurrency())) {}

  // ---- configuration ------------------------------------------------------------------------
  DurableExecutorOptions options;
  Mode mode;
  std::string executor_id;
  EngineLogger logger;
  /** With enable_storage_batching: the wrapper the caller goes through (docs/batching.md). */
  std::unique_ptr<TaskExecutionsStorageWithBatching> batching;
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
  std::atomic<bool> shutdown_deferred{false};
  // Storage hints that other processes created work (PostgreSQL NOTIFY): wake the loops.
  std::uint64_t external_work_subscription = 0;

  // ---- runs in flight -----------------------------------------------------------------------
  mutable std::mutex runs_mutex;
  std::condition_variable runs_cv;  // signalled when in-flight or pending completions drop
  // Keys view the run's own execution id (the run outlives its entry): no copy per run.
  std::unordered_map<std::string_view, std::shared_ptr<Run>> in_flight;
  std::int64_t pending_completions = 0;
  /**
   * Abandoned runs: timed out or cancelled, their callable still running here. They hold a slot
   * of max_concurrent_task_executions until the callable returns.
   */
  std::atomic<std::int32_t> zombies{0};
  /** Executions with an abandoned callable still running here, and how many (runs_mutex). */
  std::unordered_map<std::string, std::int32_t> zombie_ids;
  /**
   * Claimed runs whose previous attempt's callable still runs here (runs_mutex; also in
   * in_flight): they start when it returns, or time out at their own deadline meanwhile.
   */
  std::unordered_map<std::string_view, std::shared_ptr<Run>> held;
  /** Set when shutdown stopped waiting: results that arrive later are dropped (runs_mutex). */
  bool discard_results = false;
  SteadyClock::time_point paused_logged_at{};
  /**
   * Cancellations that found no local run (runs_mutex), kept for kEarlyCancelTtl: a claim may
   * have taken the execution just before the cancel and not registered its run yet. A claim
   * skips a run it finds here (the execution is cancelled in storage), so no cancel is lost.
   */
  std::unordered_map<std::string, SteadyClock::time_point> early_cancels;

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
  std::atomic<bool> background_done{false};

  // ---- completion writer: writes results the timer produced (timeouts) ----------------------
  std::mutex writer_mutex;
  std::condition_variable writer_cv;
  bool writer_wake = false;
  bool writer_stop = false;
  std::thread writer;

  // ---- timer and pool -----------------------------------------------------------------------
  std::unique_ptr<TimerThread> timer;
  struct Job {
    std::shared_ptr<Run> run;
    SteadyClock::time_point queued;
  };
  mutable std::mutex pool_mutex;
  std::condition_variable pool_cv;
  std::deque<Job> pool_queue;
  /** Live workers; a worker that exits moves its own entry to `exited_threads`. */
  std::list<std::thread> pool_threads;
  std::list<std::thread> exited_threads;  // joined by the next spawn or by shutdown
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
  std::deque<RunSlot> run_slots;         // one per pool thread (pool_mutex); addresses are stable
  std::vector<RunSlot*> free_run_slots;  // left by retired workers, reused by new ones
  /** The time of the earliest deadline check on the timer, or max if none is pending. */
  std::atomic<SteadyClock::rep> next_deadline_check{std::numeric_limits<SteadyClock::rep>::max()};
  /** Quarantine claims (one execution at a time) left to the dispatcher (dispatcher only). */
  std::int32_t quarantine_claims_left = 0;
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

  // ---- waiters (wait_finished) ---------------------------------------------------------------
  /** One blocked wait_finished call: woken when its own execution may have finished. */
  struct Waiter {
    std::condition_variable cv;
    bool woken = false;
  };
  std::mutex waiters_mutex;
  std::unordered_multimap<std::string, Waiter*> waiters;
  std::atomic<std::int64_t> waiter_count{0};

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

  /** Wakes the waiters of executions that this process may just have finished. */
  template <class Ids>
  void notify_finished(const Ids& ids) {
    if (waiter_count.load() == 0) return;
    std::lock_guard lock(waiters_mutex);
    for (const auto& id : ids) {
      const auto [first, last] = waiters.equal_range(std::string{id});
      for (auto it = first; it != last; ++it) {
        it->second->woken = true;
        it->second->cv.notify_one();
      }
    }
  }
  void notify_finished(const std::string& id) { notify_finished(std::array{std::string_view{id}}); }

  /** Wakes every waiter: for rare bulk changes whose ids the engine does not know. */
  void notify_all_waiters() {
    if (waiter_count.load() == 0) return;
    std::lock_guard lock(waiters_mutex);
    for (auto& [id, w] : waiters) {
      w->woken = true;
      w->cv.notify_one();
    }
  }

  /** A local sleeping execution times out at `expires_at`: run the expiry step then. */
  void schedule_expiry_at(Timestamp expires_at) {
    if (!timer) return;
    const auto delay = std::max(saturating_sub(expires_at, now_timestamp()), milliseconds{0});
    timer->schedule(saturating_deadline(SteadyClock::now(), saturating_add(delay, milliseconds{2})),
                    [this] {
                      {
                        std::lock_guard lock(bg_mutex);
                        bg_wake = true;
                        bg_expire_now = true;
                      }
                      bg_cv.notify_one();
                    });
  }

  void schedule_dispatch_at(Timestamp start_at) {
    const auto delay = saturating_sub(start_at, now_timestamp());
    if (delay <= milliseconds{0}) {
      wake_dispatcher();
      return;
    }
    if (timer) {
      timer->schedule(
          saturating_deadline(SteadyClock::now(), saturating_add(delay, milliseconds{1})),
          [this] { wake_dispatcher(); });
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

  /** Live runs and abandoned ones both hold a worker, and both count against this cap. */
  std::int32_t pool_cap() const { return options.max_concurrent_task_executions; }

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
    if (want <= idle || pool_stop) return wake;
    join_exited_workers();
    auto to_spawn = want - idle;
    while (to_spawn-- > 0 && static_cast<std::int32_t>(pool_threads.size()) < pool_cap()) {
      pool_threads.emplace_back();
      const auto self = std::prev(pool_threads.end());
      // The worker owns a reference to the engine: one that shutdown left running (a task
      // function past shutdown_timeout) keeps the engine alive until it returns.
      *self = std::thread([impl = shared_from_this(), self] { impl->worker_loop(self); });
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

  /** Joins workers that exited (pool_mutex held): they only have to return, never to lock. */
  void join_exited_workers() {
    for (auto& t : exited_threads) {
      if (t.joinable()) t.join();
    }
    exited_threads.clear();
  }

  void worker_loop(std::list<std::thread>::iterator self) {
    caller.adopt_thread();
    std::unique_lock lock(pool_mutex);
    RunSlot* slot = nullptr;
    if (free_run_slots.empty()) {
      slot = &run_slots.emplace_back();
    } else {
      slot = free_run_slots.back();
      free_run_slots.pop_back();
    }
    for (;;) {
      if (pool_queue.empty() && !pool_stop) {
        ++pool_idle;
        const bool has_work = pool_cv.wait_for(lock, options.worker_idle_timeout,
                                               [this] { return !pool_queue.empty() || pool_stop; });
        --pool_idle;
        // Idle for worker_idle_timeout: retire, down to a core's worth of workers.
        if (!has_work && pool_threads.size() <= eager_workers) continue;
        if (!has_work) break;
      }
      if (pool_queue.empty()) break;  // pool_stop
      auto job = std::move(pool_queue.front());
      pool_queue.pop_front();
      lock.unlock();
      execute(job.run, *slot);
      job.run.reset();
      lock.lock();
    }
    free_run_slots.push_back(slot);
    exited_threads.splice(exited_threads.end(), pool_threads, self);
  }

  // =========================================================================================
  // Running one execution
  // =========================================================================================

  void execute(const std::shared_ptr<Run>& run, RunSlot& slot) {
    if (run->settled.load()) {  // cancelled while queued
      abandoned_run_returned(*run);
      return;
    }
    if (timer) {
      const auto deadline = saturating_deadline(SteadyClock::now(), run->record.timeout);
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
      abandoned_run_returned(*run);
      return;
    }
    finish_run(run, std::move(completion));
  }

  /** A run was abandoned (timed out or cancelled) while queued or running: it holds a slot. */
  void abandon_locked(const Run& run) {  // runs_mutex held
    zombies.fetch_add(1);
    ++zombie_ids[run.record.execution_id];
  }

  /**
   * The callable of an abandoned run returned (or never started): its slot is free, and a
   * retry of the same execution claimed meanwhile (held) may start now.
   */
  void abandoned_run_returned(const Run& run) {
    std::shared_ptr<Run> next;
    std::size_t running = 0;
    {
      std::lock_guard lock(runs_mutex);
      zombies.fetch_sub(1);
      if (auto it = zombie_ids.find(run.record.execution_id);
          it != zombie_ids.end() && --it->second == 0) {
        zombie_ids.erase(it);
        if (auto h = held.find(run.record.execution_id); h != held.end()) {
          next = std::move(h->second);
          held.erase(h);
        }
      }
      running = in_flight.size();
    }
    runs_cv.notify_all();
    if (next) {
      std::vector<std::shared_ptr<Run>> runs;
      runs.push_back(std::move(next));
      pool_submit(std::move(runs));
    }
    slot_freed(running);
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

  /** On the timer thread: records the timeout, leaving the write to the completion writer. */
  void on_timeout(const std::shared_ptr<Run>& run) {
    if (run->settled.exchange(true)) return;
    {
      std::lock_guard lock(runs_mutex);
      abandon_locked(*run);
    }
    run->reason.store(StopReason::timed_out, std::memory_order_release);
    run->stop.request_stop();
    finish_run(
        run,
        error_completion(run->record, DurableExecutionTimedOutError{}.to_stored(), now_timestamp()),
        false);
  }

  /** On the timer thread: a held run whose deadline passed before it could start. */
  void on_held_timeout(const std::weak_ptr<Run>& weak) {
    auto run = weak.lock();
    if (!run) return;
    {
      std::lock_guard lock(runs_mutex);
      auto it = held.find(run->record.execution_id);
      if (it == held.end() || it->second != run) return;  // started meanwhile: its own deadline
      held.erase(it);
    }
    if (run->settled.exchange(true)) return;
    finish_run(
        run,
        error_completion(run->record, DurableExecutionTimedOutError{}.to_stored(), now_timestamp()),
        false);
  }

  /**
   * The run left this executor's hands: free its slot and record the outcome. A worker writes
   * it itself (group commit); the timer only queues it for the completion writer.
   */
  void finish_run(const std::shared_ptr<Run>& run, Completion completion, bool write_here = true) {
    std::size_t running = 0;
    {
      std::lock_guard lock(runs_mutex);
      in_flight.erase(run->record.execution_id);
      running = in_flight.size();
      if (discard_results) return;  // shutdown gave up on this run: nothing reaches storage
      ++pending_completions;
    }
    slot_freed(running);
    if (const auto& parent = run->record.parent) {
      completion.has_parent = true;
      completion.is_finalize_of_parent = parent->is_finalize_of_parent;
    }
    if (write_here) {
      submit_completion(std::move(completion));
    } else {
      queue_completion(std::move(completion));
    }
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
    running += static_cast<std::size_t>(std::max(0, zombies.load()));
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

  /** Sets the completion's result write (running_update) and notes a parent it settles. */
  static void set_running_update(Completion& c, const TaskExecutionRecord& rec,
                                 TaskExecutionUpdate update, Timestamp now) {
    c.update = running_update(rec, std::move(update), now);
    if (c.update->parent_update && rec.parent) c.settled_parent_id = rec.parent->execution_id;
  }

  Completion error_completion(const TaskExecutionRecord& rec, StoredError error, Timestamp now) {
    Completion c;
    TaskExecutionUpdate u;
    if (error.is_retryable && rec.retry_attempts < rec.retry_options.max_attempts) {
      const auto start_at = saturating_add(now, retry_delay(rec.retry_options, rec.retry_attempts));
      u.status = Status::ready;
      u.error = std::move(error);
      u.retry_attempts = rec.retry_attempts + 1;
      u.start_at = start_at;
      c.wake_at = start_at;
    } else {
      u.status = status_for_error(error);
      u.error = std::move(error);
    }
    set_running_update(c, rec, std::move(u), now);
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
        u.active_children_count = 1;  // the finalize child's close brings it back to 0
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
          set_running_update(c, rec, std::move(u), now);
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
      set_running_update(c, rec, std::move(u), now);
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
      // Invalid UTF-8 in a message (a binary wake-up message) is replaced, never thrown on.
      out += nlohmann::json(child.error.value_or(
                                StoredError{ErrorType::generic, false, false, "Unknown error"}))
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    out += R"(,"status":)";
    append_json_string(out, to_string(child.status));
    out += R"(,"taskId":)";
    append_json_string(out, child.task_id);
    out += '}';
  }

  /**
   * A new execution of `def`: the task's registered options with `overrides` laid over them,
   * validated by enqueue_task's rules, and its input checked (a sleeping task's input is its
   * unique id). The one place where enqueues, children, finalize children and sequential steps
   * get their options and input. `check_input_size` is off only for a sequential step, whose
   * input is the previous step's output, verbatim (SPEC.md §3.8).
   * @throws DurableExecutionError naming the bad option or input.
   */
  NewTaskExecution new_execution(const TaskDefinition& def, std::string input,
                                 const EnqueueOptions& overrides,
                                 bool check_input_size = true) const {
    const auto& id = def.options.id;
    NewTaskExecution n;
    n.task_id = id;
    n.execution_id = generate_execution_id();
    n.is_sleeping_task = def.is_sleeping_task;
    n.are_children_sequential = def.are_children_sequential;
    n.retry_options = def.options.retry;
    n.sleep_before_run = def.options.sleep_before_run;
    n.timeout = def.options.timeout;
    if (overrides.retry) {
      validate_retry_options(id, *overrides.retry);
      n.retry_options = *overrides.retry;
    }
    if (overrides.sleep_before_run) {
      validate_sleep_before_run(id, *overrides.sleep_before_run);
      n.sleep_before_run = *overrides.sleep_before_run;
    }
    if (overrides.timeout) {
      validate_timeout(id, *overrides.timeout);
      n.timeout = *overrides.timeout;
    }
    if (def.is_sleeping_task) {
      validate_unique_id(input);
      n.sleeping_task_unique_id = std::move(input);
      n.input = "null";
      n.retry_options = RetryOptions{};
      n.sleep_before_run = milliseconds{0};
    } else {
      if (check_input_size) check_size(input, options.max_serialized_input_data_size);
      n.input = std::move(input);
    }
    return n;
  }

  /** A child (or finalize) record: new_execution() placed under `parent`. */
  TaskExecutionRecord make_child_record(const TaskExecutionRecord& parent,
                                        const TaskDefinition& child_def, std::string input,
                                        const EnqueueOptions& overrides,
                                        ParentTaskExecutionSummary parent_summary, Timestamp now,
                                        bool check_input_size = true) {
    auto n = new_execution(child_def, std::move(input), overrides, check_input_size);
    n.root = root_for_children(parent);
    n.parent = std::move(parent_summary);
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

  void push_completion(Completion completion) {
    auto* node = new CompletionNode{std::move(completion)};
    node->next = completion_head.load();
    while (!completion_head.compare_exchange_weak(node->next, node)) {
    }
  }

  /** A worker's result: queued, then written by this thread unless a flusher is active. */
  void submit_completion(Completion completion) {
    push_completion(std::move(completion));
    flush_completions();
  }

  /**
   * A result produced on the timer thread: queued for an active flusher or the completion
   * writer, so a slow storage call never holds the timer (and the timeouts behind it).
   */
  void queue_completion(Completion completion) {
    push_completion(std::move(completion));
    if (flushing.load()) return;  // the active flusher looks once more before it leaves
    {
      std::lock_guard lock(writer_mutex);
      writer_wake = true;
    }
    writer_cv.notify_one();
  }

  void writer_loop() {
    caller.adopt_thread();
    std::unique_lock lock(writer_mutex);
    for (;;) {
      writer_cv.wait(lock, [this] { return writer_wake || writer_stop; });
      if (!writer_wake && writer_stop) return;
      writer_wake = false;
      lock.unlock();
      flush_completions();
      lock.lock();
    }
  }

  void flush_completions() {
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

  // =========================================================================================
  // Writes that fail: bounded retries, split batches, one execution failed per bad request
  // =========================================================================================

  /**
   * Retries of the engine's own writes (results, children steps, closes): at least
   * kCompletionWriteRetries, in the storage caller, the engine's one retry layer (jittered
   * back-off 12.5 ms doubling to 1 s: ~0.4 s over 5 retries).
   */
  std::int32_t write_retries() const {
    return std::max(options.storage_max_retry_attempts, kCompletionWriteRetries);
  }

  void store(const std::vector<UpdateByIdRequest>& requests) {
    caller.call_with_retries(StorageMethod::update_many_by_id, write_retries(),
                             [&](TaskExecutionsStorage& s) { s.update_many_by_id(requests); });
  }

  void store(const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) {
    caller.call_with_retries(StorageMethod::update_many_by_id_and_insert_children_if_updated,
                             write_retries(), [&](TaskExecutionsStorage& s) {
                               s.update_many_by_id_and_insert_children_if_updated(requests);
                             });
  }

  /** Why a write failed for good: nullopt if it was written. */
  struct WriteFailure {
    bool retryable = false;
    StoredError error;
  };

  template <class Request>
  std::optional<WriteFailure> try_store(const std::vector<Request>& requests) {
    try {
      store(requests);
      return std::nullopt;
    } catch (const DurableExecutionError& e) {
      return WriteFailure{e.is_retryable(), e.to_stored()};
    } catch (const std::exception& e) {
      return WriteFailure{true, to_stored_error(std::current_exception())};
    }
  }

  /**
   * Writes `requests` in one storage call, isolating failures (DESIGN.md: a request that can
   * never succeed ends its own execution). Transient errors are retried with bounded back-off
   * (write_retries()); if they persist the write is left to lease expiry, as a crash would be. A
   * batch rejected non-retryably is split in halves, each written on its own, recursively, so
   * that the good requests are recorded at once (about 2 log2(n) calls per bad request, on the
   * failure path only); a request rejected on its own ends its execution with the storage's
   * error: `failure(i, error)` gives the write that records it (nullopt: nothing to write).
   * @return how many requests were rejected on their own.
   */
  template <class Request, class Failure>
  std::size_t write_isolated(const char* process, const std::vector<Request>& requests,
                             Failure&& failure) {
    auto failed = try_store(requests);
    if (!failed) return 0;
    if (caller.closed_for_engine_threads()) return 0;  // shut down: left to lease expiry
    if (failed->retryable) {
      logger.error(
          fmt::format("Error in {}: {} request(s) not written after {} attempts, left to "
                      "lease expiry: {}",
                      process, requests.size(), write_retries() + 1, failed->error.message));
      return 0;
    }
    std::vector<std::size_t> all(requests.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    return isolate(process, requests, all, std::move(failed->error), failure);
  }

  /** `requests[indices]`, written together, were rejected non-retryably with `error`. */
  template <class Request, class Failure>
  std::size_t isolate(const char* process, const std::vector<Request>& requests,
                      const std::vector<std::size_t>& indices, StoredError error,
                      Failure& failure) {
    if (indices.size() == 1) {
      return reject(process, requests[indices.front()], indices.front(), std::move(error), failure);
    }
    std::size_t rejected = 0;
    const auto half = indices.begin() + static_cast<std::ptrdiff_t>(indices.size() / 2);
    for (const auto& part : {std::vector<std::size_t>(indices.begin(), half),
                             std::vector<std::size_t>(half, indices.end())}) {
      std::vector<Request> sub;
      sub.reserve(part.size());
      for (const auto i : part) sub.push_back(requests[i]);
      auto failed = try_store(sub);
      if (!failed) continue;
      if (failed->retryable) {
        logger.error(fmt::format("Error in {}: {} request(s) not written, left to lease expiry: {}",
                                 process, sub.size(), failed->error.message));
        continue;
      }
      rejected += isolate(process, requests, part, std::move(failed->error), failure);
    }
    return rejected;
  }

  /** Whether a children insert is already stored (a partial write the storage reported failed). */
  bool already_stored(const UpdateByIdAndInsertChildrenRequest& request) {
    if (request.children_to_insert_if_updated.empty()) return false;
    try {
      return get_by_id(request.children_to_insert_if_updated.front().execution_id).has_value();
    } catch (const std::exception&) {
      return false;
    }
  }
  static bool already_stored(const UpdateByIdRequest&) { return false; }

  /**
   * A request the storage rejected on its own: its execution ends with the error, if `failure`
   * gives a write for that; else the request is dropped (its lease or close lease expires).
   */
  template <class Request, class Failure>
  std::size_t reject(const char* process, const Request& request, std::size_t index,
                     StoredError error, Failure& failure) {
    // Guarded updates that took effect turn into no-ops when repeated, but a sequential step's
    // insert keeps its guard: a storage that applied part of a failed batch (the in-memory
    // store does, per request) or lost a commit's reply would see it as a duplicate.
    if (already_stored(request)) return 0;
    error.is_retryable = false;
    auto update = failure(index, error);
    if (!update) {
      logger.error(
          fmt::format("Error in {}: the write of execution {} was rejected and dropped: {}",
                      process, request.execution_id, error.message));
      return 1;
    }
    logger.error(
        fmt::format("Error in {}: the write of execution {} was rejected, it ends with "
                    "the error: {}",
                    process, request.execution_id, error.message));
    const std::vector<UpdateByIdRequest> updates{std::move(*update)};
    if (auto failed = try_store(updates)) {
      logger.error(
          fmt::format("Error in {}: could not record the failure of execution {}, left "
                      "to lease expiry: {}",
                      process, request.execution_id, failed->error.message));
    }
    return 1;
  }

  /**
   * The failure with `error` (non-retryable) of the run behind `c`: T9, written like any run
   * result. A non-retryable error's write depends on the execution's id and its place under its
   * parent only, so that is all it is built from.
   */
  std::optional<UpdateByIdRequest> run_failure(const Completion& c, std::string execution_id,
                                               const StoredError& error) {
    TaskExecutionRecord rec;
    rec.execution_id = std::move(execution_id);
    if (c.has_parent) {
      rec.parent = ParentTaskExecutionSummary{.is_finalize_of_parent = c.is_finalize_of_parent};
    }
    auto failure = error;
    failure.is_retryable = false;
    return std::move(error_completion(rec, std::move(failure), now_timestamp()).update);
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
    // Each kind of write is one storage call; a failing one is retried or split (write_isolated)
    // so that one bad request never holds back the others.
    const auto failure_of = [&](bool with_children_kind) {
      return [&, with_children_kind](std::size_t i, const StoredError& error) {
        // The failure path only: the run behind the i-th request of this kind.
        const auto& id =
            with_children_kind ? with_children[i].execution_id : updates[i].execution_id;
        for (const auto& node : batch) {
          const auto& c = node->completion;
          const bool of_kind =
              with_children_kind ? c.update_with_children.has_value() : c.update.has_value();
          if (of_kind && i-- == 0) return run_failure(c, id, error);
        }
        return std::optional<UpdateByIdRequest>{};
      };
    };
    std::size_t poisoned = 0;
    if (!updates.empty()) poisoned += write_isolated("complete", updates, failure_of(false));
    if (!with_children.empty()) {
      poisoned += write_isolated("complete", with_children, failure_of(true));
    }
    wake_close_path = wake_close_path || poisoned > 0;
    stats_complete.record(static_cast<std::int64_t>(batch.size()), SteadyClock::now() - start);
    for (const auto& node : batch) {
      if (node->completion.wake_at) schedule_dispatch_at(*node->completion.wake_at);
    }
    // Children inserted by these writes are ready work of this executor: claim them now.
    for (const auto& r : with_children_starts) schedule_dispatch_at(r);
    // Waiters are woken for their own execution only (and a finalize child's parent). Looked up
    // after the write: a waiter registers before its first read, so it is either seen here or
    // its read sees the write.
    if (waiter_count.load() > 0) {
      std::vector<std::string_view> finished;
      for (const auto& u : updates) {
        if (u.update.is_finished) finished.emplace_back(u.execution_id);
      }
      for (const auto& node : batch) {
        if (!node->completion.settled_parent_id.empty()) {
          finished.emplace_back(node->completion.settled_parent_id);
        }
      }
      notify_finished(finished);
    }
    {
      std::lock_guard lock(runs_mutex);
      pending_completions -= static_cast<std::int64_t>(batch.size());
    }
    runs_cv.notify_all();
    if (wake_close_path) wake_background();
  }

  // =========================================================================================
  // Dispatcher (ready loop, T3)
  // =========================================================================================

  /** Slots of max_concurrent_task_executions not held by a run or an abandoned run. */
  std::int64_t free_slots_locked() const {  // runs_mutex held
    return options.max_concurrent_task_executions - static_cast<std::int64_t>(in_flight.size()) -
           zombies.load();
  }

  /**
   * Writes claimed executions back to `ready`, untouched otherwise (no attempt, no lease
   * expiration counted): suspects that may not share this process with other runs.
   */
  void release_claimed(const std::vector<TaskExecutionRecord>& rows) {
    const auto now = now_timestamp();
    std::vector<UpdateByIdRequest> releases;
    releases.reserve(rows.size());
    for (const auto& row : rows) {
      TaskExecutionUpdate u;
      u.status = Status::ready;
      releases.push_back(UpdateByIdRequest{row.execution_id,
                                           GetByIdFilters{.status = Status::running},
                                           normalize_update(now, std::move(u))});
    }
    try {
      caller.call_with_retries(StorageMethod::update_many_by_id, write_retries(),
                               [&](TaskExecutionsStorage& s) { s.update_many_by_id(releases); });
    } catch (const std::exception& e) {
      logger.error(fmt::format("Error in ready: releasing {} executions: {} (left to lease expiry)",
                               releases.size(), e.what()));
    }
  }

  std::size_t claim_and_dispatch(bool& full_batch) {
    std::int64_t free_slots = 0;
    std::int32_t abandoned = 0;
    bool alone = false;
    {
      std::lock_guard lock(runs_mutex);
      free_slots = free_slots_locked();
      abandoned = zombies.load();
      alone = in_flight.empty() && abandoned == 0;
    }
    full_batch = false;
    // Quarantine: executions whose lease expired before (a process died while they ran) run
    // alone in this process, one claim at a time, so that if one of them kills the process again
    // the crash counts against it only, not against batch-mates (max_lease_expirations).
    const bool quarantine = quarantine_claims_left > 0;
    if (quarantine && !alone) {
      dispatcher_at_capacity.store(true, std::memory_order_release);
      std::lock_guard lock(runs_mutex);
      if (in_flight.empty() && zombies.load() == 0) {
        dispatcher_at_capacity.store(false, std::memory_order_release);
        full_batch = true;  // claim again at once
      }
      return 0;
    }
    if (free_slots <= 0) {
      dispatcher_at_capacity.store(true, std::memory_order_release);
      // A run may have finished between the count and the flag: re-check once.
      std::lock_guard lock(runs_mutex);
      if (free_slots_locked() > 0) {
        dispatcher_at_capacity.store(false, std::memory_order_release);
        full_batch = true;  // claim again at once
      } else if (abandoned > 0 && SteadyClock::now() - paused_logged_at >= kPausedLogInterval) {
        paused_logged_at = SteadyClock::now();
        logger.error(fmt::format(
            "Claiming paused: {} abandoned runs (timed out or cancelled, their task function "
            "still running; it should watch its stop token) hold slots of "
            "max_concurrent_task_executions = {}",
            abandoned, options.max_concurrent_task_executions));
      }
      return 0;
    }
    const auto limit =
        quarantine ? 1 : std::min<std::int64_t>(options.max_task_executions_per_batch, free_slots);
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
    if (quarantine) quarantine_claims_left = rows.empty() ? 0 : quarantine_claims_left - 1;
    if (rows.empty()) {
      stats_ready.record(0, SteadyClock::now() - start);
      return 0;
    }
    const auto claimed = static_cast<std::int64_t>(rows.size());
    if (!quarantine && (!alone || rows.size() > 1) &&
        std::any_of(rows.begin(), rows.end(),
                    [](const TaskExecutionRecord& r) { return r.lease_expirations > 0; })) {
      // Suspects claimed with other work go back to ready and are claimed again one at a time.
      std::vector<TaskExecutionRecord> suspects;
      const auto normal = std::partition(rows.begin(), rows.end(),
                                         [](const auto& r) { return r.lease_expirations == 0; });
      suspects.assign(std::make_move_iterator(normal), std::make_move_iterator(rows.end()));
      rows.erase(normal, rows.end());
      release_claimed(suspects);
      quarantine_claims_left = static_cast<std::int32_t>(2 * suspects.size() + 1);
      logger.debug(fmt::format(
          "Released {} executions whose lease expired before: they run alone, one at a time",
          suspects.size()));
      if (rows.empty()) {
        full_batch = true;  // go on with the quarantine at once
        stats_ready.record(0, SteadyClock::now() - start);
        return 0;
      }
    }
    std::vector<std::shared_ptr<Run>> runs;
    std::vector<std::shared_ptr<Run>> held_now;
    runs.reserve(rows.size());
    {
      std::lock_guard lock(runs_mutex);
      for (auto& row : rows) {
        if (in_flight.contains(row.execution_id)) continue;
        if (!early_cancels.empty() && early_cancels.erase(row.execution_id) > 0) continue;
        auto run = std::make_shared<Run>();
        run->definition = find_task(row.task_id);
        run->record = std::move(row);
        in_flight.emplace(run->record.execution_id, run);
        if (!zombie_ids.empty() && zombie_ids.contains(run->record.execution_id)) {
          // Its previous attempt's callable still runs here: never two attempts at once.
          held.emplace(run->record.execution_id, run);
          held_now.push_back(std::move(run));
          continue;
        }
        runs.push_back(std::move(run));
      }
    }
    for (const auto& run : held_now) {
      timer->schedule(SteadyClock::now() + run->record.timeout,
                      [this, weak = std::weak_ptr<Run>(run)] { on_held_timeout(weak); });
    }
    const auto n = runs.size();
    pool_submit(std::move(runs));
    stats_ready.record(static_cast<std::int64_t>(n), SteadyClock::now() - start);
    full_batch = claimed >= limit;
    return n;
  }

  void dispatcher_loop() {
    caller.adopt_thread();
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
    u.close_expires_at = now + options.close_step_lease + options.expire_leeway;
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
    // Transient failures are retried with back-off; if they persist, the close leases expire
    // and the close runs again (its writes are idempotent). A request rejected for good is
    // dropped from its batch, so that it holds back nothing else.
    const auto nothing = [](std::size_t, const StoredError&) {
      return std::optional<UpdateByIdRequest>{};
    };
    if (!parent_updates.empty()) {
      (void)write_isolated("close", parent_updates, nothing);
      std::vector<std::string_view> ids;
      ids.reserve(parent_updates.size());
      for (const auto& pu : parent_updates) ids.emplace_back(pu.execution_id);
      notify_finished(ids);
    }
    if (!cancel_children.empty()) {
      caller.call_with_retries(
          StorageMethod::update_many_by_parent_execution_id_and_is_finished, write_retries(),
          [&](TaskExecutionsStorage& s) {
            s.update_many_by_parent_execution_id_and_is_finished(cancel_children);
          });
      notify_all_waiters();  // the cancelled children's ids are not known here
      std::lock_guard lock(bg_mutex);
      bg_cancel_now = true;
    }
    (void)write_isolated("close", closes, nothing);
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
    u.on_children_finished_processing_expires_at =
        now + options.children_step_lease + options.expire_leeway;
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
    // One read for the children of every claimed parent, one or two writes for all outcomes.
    // Transient failures are retried with back-off; if they persist, the parents' processing
    // leases expire and the expiry process resets them to idle: the step runs again then.
    std::vector<GetByParentExecutionIdRequest> reads;
    reads.reserve(rows.size());
    for (const auto& parent : rows) reads.push_back({parent.execution_id});
    const auto read = [this](const std::vector<GetByParentExecutionIdRequest>& r) {
      auto result = caller.call_with_retries(
          StorageMethod::get_many_by_parent_execution_id, write_retries(),
          [&](TaskExecutionsStorage& s) { return s.get_many_by_parent_execution_id(r); });
      if (result.size() != r.size()) {
        throw DurableExecutionError(
            fmt::format("get_many_by_parent_execution_id returned {} results for {} requests",
                        result.size(), r.size()));
      }
      return result;
    };
    std::vector<std::vector<TaskExecutionRecord>> loaded;
    // Only when the batch read is rejected for good: each parent's own read's failure.
    std::vector<std::optional<WriteFailure>> unread;
    try {
      loaded = read(reads);
    } catch (const DurableExecutionError& e) {
      if (e.is_retryable()) throw;
      // One parent's unreadable children (a damaged row) must not hold back the others: read
      // each parent's children alone.
      loaded.resize(rows.size());
      unread.resize(rows.size());
      for (std::size_t i = 0; i < rows.size(); ++i) {
        try {
          loaded[i] = std::move(read({reads[i]}).front());
        } catch (const DurableExecutionError& each) {
          unread[i] = WriteFailure{each.is_retryable(), each.to_stored()};
        }
      }
    }
    ParentWrites writes;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (!unread.empty() && unread[i]) {
        // Retryable: its processing lease expires and the step runs again. Else it ends here.
        if (unread[i]->retryable) continue;
        logger.error(fmt::format("Error in children: the children of parent {} cannot be read: {}",
                                 rows[i].execution_id, unread[i]->error.message));
        fail_parent(rows[i], Status::failed,
                    DurableExecutionError::non_retryable(
                        fmt::format("Children of parent task {} cannot be read: {}",
                                    rows[i].task_id, unread[i]->error.message))
                        .to_stored(),
                    writes);
        continue;
      }
      try {
        process_parent(rows[i], loaded[i], writes);
      } catch (const std::exception& e) {
        // Planning reads nothing from storage: what throws here would throw again at every
        // attempt of the step, so the parent ends with the error instead.
        logger.error(
            fmt::format("Error in children: parent {}: {}", rows[i].execution_id, e.what()));
        fail_parent(rows[i], Status::failed,
                    DurableExecutionError::non_retryable(
                        fmt::format("Children step of parent task {} failed: {}", rows[i].task_id,
                                    e.what()),
                        true)
                        .to_stored(),
                    writes);
      }
    }
    // A write the storage rejects fails its parent (the failure path only: a linear search).
    const auto failure = [&rows, this](const auto& requests) {
      return [&rows, &requests, this](std::size_t i, const StoredError& error) {
        std::optional<UpdateByIdRequest> update;
        for (const auto& parent : rows) {
          if (parent.execution_id != requests[i].execution_id) continue;
          ParentWrites failed;
          fail_parent(parent, Status::failed, error, failed);
          if (!failed.updates.empty()) update = std::move(failed.updates.front());
          break;
        }
        return update;
      };
    };
    if (!writes.updates.empty()) {
      (void)write_isolated("children", writes.updates, failure(writes.updates));
    }
    if (!writes.with_children.empty()) {
      std::set<Timestamp> starts;
      for (const auto& w : writes.with_children)
        note_children(w.children_to_insert_if_updated, starts);
      (void)write_isolated("children", writes.with_children, failure(writes.with_children));
      for (const auto& t : starts) schedule_dispatch_at(t);
    }
    std::vector<std::string_view> finished;
    for (const auto& w : writes.updates) {
      if (w.update.is_finished) finished.emplace_back(w.execution_id);
    }
    notify_finished(finished);
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
    for (std::size_t k = 0; k < declared.size(); ++k) {
      auto found = by_id.find(declared[k].execution_id);
      if (found == by_id.end()) {
        ++missing;
        continue;
      }
      const auto& child = *found->second;
      if (child.status == Status::completed && child.output && !is_json_text(*child.output)) {
        // Spliced verbatim, it would make the whole result undecodable.
        fail_parent(parent, Status::failed,
                    DurableExecutionError::non_retryable(
                        fmt::format("Output of child {} (task {}, execution {}) of parent task {} "
                                    "cannot be decoded: it is not JSON ({} bytes: {})",
                                    k, child.task_id, child.execution_id, parent.task_id,
                                    child.output->size(), abbreviated(*child.output)))
                        .to_stored(),
                    writes);
        return;
      }
      append_child_entry(entries, child);
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
    // The sizes below are deterministic: the parent ends with an error naming them instead of
    // failing again at every attempt of the step.
    if (fin) {
      if (static_cast<std::int64_t>(result.size()) > options.max_serialized_input_data_size) {
        fail_parent(
            parent, Status::failed,
            DurableExecutionError::non_retryable(
                fmt::format("Input of finalize task {} of parent task {} (its output and {} "
                            "children's results) is {} bytes, over the input limit of {} bytes "
                            "(max_serialized_input_data_size)",
                            fin->options.id, parent.task_id, declared.size(), result.size(),
                            options.max_serialized_input_data_size))
                .to_stored(),
            writes);
        return;
      }
      auto child = make_child_record(
          parent, *fin, std::move(result), EnqueueOptions{},
          ParentTaskExecutionSummary{parent.task_id, parent.execution_id, 0, false, true},
          now_timestamp());
      TaskExecutionUpdate u;
      u.status = Status::waiting_for_finalize;
      u.finalize = TaskExecutionSummary{child.task_id, child.execution_id};
      u.active_children_count = 1;  // the finalize child's close brings it back to 0
      std::vector<TaskExecutionRecord> inserts;
      inserts.push_back(std::move(child));
      plan_parent_write(parent, std::move(u), writes, std::move(inserts));
      return;
    }
    const auto limit = options.max_serialized_output_data_size;
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
      if (static_cast<std::int64_t>(output.size()) > limit) {
        fail_parent(parent, Status::finalize_failed,
                    DurableExecutionError::non_retryable(
                        fmt::format("Output of the finalize function of parent task {} is {} "
                                    "bytes, over the output limit of {} bytes "
                                    "(max_serialized_output_data_size)",
                                    parent.task_id, output.size(), limit))
                        .to_stored(),
                    writes);
        return;
      }
      u.status = Status::completed;
      u.output = std::move(output);
    } else {
      if (static_cast<std::int64_t>(result.size()) > limit) {
        fail_parent(parent, Status::failed,
                    DurableExecutionError::non_retryable(
                        fmt::format("Output of parent task {} (its output and {} children's "
                                    "results) is {} bytes, over the output limit of {} bytes "
                                    "(max_serialized_output_data_size)",
                                    parent.task_id, declared.size(), result.size(), limit))
                        .to_stored(),
                    writes);
        return;
      }
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
    // The step's input is the previous step's output, verbatim (no size check, SPEC.md §3.8); a
    // sleeping step is enqueued with that output, a string, as its unique id.
    std::string input = prev->output.value_or("null");
    if (child_def->is_sleeping_task) {
      auto unique_id = unique_id_from_output(input);
      if (!unique_id) {
        fail_parent(
            parent, Status::failed,
            DurableExecutionError::non_retryable(
                fmt::format("Task at index {} is sleeping task {}: the output of the task at "
                            "index {} must be a unique id string, got {}",
                            j, child_def->options.id, j - 1, abbreviated(input)))
                .to_stored(),
            writes);
        return;
      }
      input = std::move(*unique_id);
    }
    auto child =
        make_child_record(parent, *child_def, std::move(input), EnqueueOptions{},
                          ParentTaskExecutionSummary{parent.task_id, parent.execution_id,
                                                     static_cast<std::int32_t>(j), false, false},
                          now_timestamp(), false);
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

  /** runs_mutex held. Only executions cancelled in storage get here: none runs again. */
  void remember_early_cancel(const std::string& execution_id) {
    if (mode != Mode::executor) return;
    const auto now = SteadyClock::now();
    if (early_cancels.size() >= 1024) {
      std::erase_if(early_cancels, [now](const auto& e) { return e.second <= now; });
    }
    early_cancels.insert_or_assign(execution_id, now + kEarlyCancelTtl);
  }

  /** Stops a local run whose execution was cancelled; its late result is discarded. */
  void cancel_local(const std::string& execution_id) {
    std::shared_ptr<Run> run;
    {
      std::lock_guard lock(runs_mutex);
      auto it = in_flight.find(execution_id);
      if (it == in_flight.end()) {
        remember_early_cancel(execution_id);
        return;
      }
      run = it->second;
      if (run->settled.exchange(true)) return;
      in_flight.erase(it);
      if (auto h = held.find(execution_id); h != held.end() && h->second == run) {
        held.erase(h);  // never started: nothing abandoned
      } else {
        abandon_locked(*run);
      }
    }
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
      // T14: the executor that ran these died (or stalled past its lease): run them again,
      // unless that happened more than max_lease_expirations times (a run that kills its
      // process every time must not crash-loop every executor forever): then it fails.
      TaskExecutionUpdate u;
      u.status = Status::ready;
      u.error = DurableExecutionError::non_retryable("Task execution expired").to_stored();
      u.start_at = now;
      u.increment_lease_expirations = true;
      TaskExecutionUpdate exhausted;
      exhausted.status = Status::failed;
      exhausted.error =
          DurableExecutionError::non_retryable(
              fmt::format("Task execution abandoned repeatedly: its lease expired more than {} "
                          "times (the executor running it died or stalled each time; option "
                          "max_lease_expirations)",
                          options.max_lease_expirations))
              .to_stored();
      exhausted.increment_lease_expirations = true;
      UpdateByIsSleepingTaskAndExpiresAtLessThanRequest req{
          false,
          now,
          normalize_update(now, std::move(u)),
          limit,
          options.max_lease_expirations,
          normalize_update(now, std::move(exhausted))};
      const auto n = caller.call(StorageMethod::expire_running, [&](TaskExecutionsStorage& s) {
        return s.update_by_is_sleeping_task_and_expires_at_less_than(req);
      });
      if (n > 0) {
        logger.info(
            fmt::format("Returned {} expired task executions to ready (or failed them past "
                        "max_lease_expirations = {})",
                        n, options.max_lease_expirations));
        wake_dispatcher();
        notify_all_waiters();  // some may have failed past max_lease_expirations
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
      if (n > 0) notify_all_waiters();
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
    caller.adopt_thread();
    struct Done {
      std::atomic<bool>& flag;
      ~Done() { flag.store(true); }
    } done{background_done};
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

  /** Throws if the calling thread is one of this executor's (a task or finalize function). */
  void throw_if_engine_thread(std::string_view call) const {
    if (caller.on_engine_thread()) {
      throw DurableExecutionError::non_retryable(fmt::format(
          "{} called from a task function or finalize function of executor {}: it would wait "
          "for its own thread. Call it from another thread (use children for work a task "
          "waits for)",
          call, executor_id));
    }
  }

  /**
   * Stops the executor (SPEC.md §6.5) within options.shutdown_timeout, plus at most the
   * storage calls already in progress: runs still in their task function past it are logged
   * and left (their workers detach and keep the engine alive until they return); their results
   * are dropped. After it returns, nothing of this engine touches the storage.
   */
  void shutdown() noexcept {
    std::lock_guard lifecycle(lifecycle_mutex);
    if (shut_down_done) return;
    shut_down_done = true;
    is_shutdown.store(true);
    logger.debug(fmt::format("Shutting down executor {}", executor_id));
    // First the storage's wake-ups of the loops (PostgreSQL NOTIFY).
    caller.storage().unsubscribe_from_external_work(external_work_subscription);
    const auto deadline = SteadyClock::now() + options.shutdown_timeout;
    auto wait_until_deadline = [&](auto&& done) {
      while (!done() && SteadyClock::now() < deadline) {
        std::this_thread::sleep_for(milliseconds{1});
      }
      return done();
    };
    // 1-2. Stop the loops. The dispatcher only calls the storage; the background thread may be
    // in a finalize function, so it gets the deadline too.
    stop_loops.store(true);
    wake_dispatcher();
    wake_background();
    if (dispatcher.joinable()) dispatcher.join();
    bool background_left = false;
    if (background.joinable()) {
      if (wait_until_deadline([this] { return background_done.load(); })) {
        background.join();
      } else {
        background_left = true;
        background.detach();  // owns a reference to the engine (start())
      }
    }
    // 3. Runs see the stop request and finish; their results are recorded.
    std::vector<std::string> left;
    std::int32_t abandoned_left = 0;
    {
      std::unique_lock lock(runs_mutex);
      for (auto& [id, run] : in_flight) {
        StopReason expected = StopReason::none;
        run->reason.compare_exchange_strong(expected, StopReason::shutdown);
        run->stop.request_stop();
      }
      const bool done = runs_cv.wait_until(lock, deadline, [this] {
        return in_flight.empty() && pending_completions == 0 && zombies.load() == 0;
      });
      if (!done) {
        discard_results = true;
        for (const auto& [id, run] : in_flight) {
          left.push_back(fmt::format("{} ({})", id, run->record.task_id));
        }
        abandoned_left = zombies.load();
      }
    }
    if (!left.empty() || abandoned_left > 0 || background_left) {
      logger.error(fmt::format(
          "Shutdown of executor {} stopped waiting after shutdown_timeout = {} ms: {} runs left "
          "in their task functions{}{}, {} abandoned runs still running{}; their results are "
          "dropped and their leases will expire",
          executor_id, options.shutdown_timeout.count(), left.size(), left.empty() ? "" : ": ",
          fmt::join(left, ", "), abandoned_left,
          background_left ? ", and the background thread is still in a finalize function" : ""));
    }
    // The writer writes what is queued, then stops; from then on no engine thread reaches the
    // storage (calls in progress are waited for).
    {
      std::lock_guard lock(writer_mutex);
      writer_stop = true;
      writer_wake = true;
    }
    writer_cv.notify_one();
    if (writer.joinable()) writer.join();
    caller.close_for_engine_threads();
    // 4. Join the workers that return; detach the ones still in a task function.
    {
      std::lock_guard lock(pool_mutex);
      pool_stop = true;
    }
    pool_cv.notify_all();
    (void)wait_until_deadline([this] {
      std::lock_guard lock(pool_mutex);
      return pool_threads.empty();
    });
    {
      std::lock_guard lock(pool_mutex);
      join_exited_workers();
      for (auto& t : pool_threads) t.detach();
    }
    if (timer) timer->stop();
    notify_all_waiters();
  }
};

// =============================================================================================
// Engine: public surface
// =============================================================================================

Engine::Engine(TaskExecutionsStorage& storage, const DurableExecutorOptions& options, Mode mode) {
  validate_executor_options(options);
  impl_ = std::make_shared<Impl>(storage, options, mode);
  if (mode == Mode::executor) impl_->timer = std::make_unique<TimerThread>();
}

Engine::~Engine() { shutdown_or_defer(); }

void Engine::shutdown_or_defer() noexcept {
  if (!impl_) return;
  if (!impl_->caller.on_engine_thread()) {
    impl_->shutdown();
    return;
  }
  if (impl_->is_shutdown.load() || impl_->shutdown_deferred.exchange(true)) return;
  // Destroyed from one of its own task or finalize functions: shutting down here would wait for
  // this very thread. A destructor cannot throw, so the shutdown finishes on a thread of its own
  // (which keeps the engine alive) once this function returns.
  impl_->logger.error(fmt::format(
      "Executor {} destroyed from one of its own task or finalize functions; it shuts down in the "
      "background",
      impl_->executor_id));
  try {
    std::thread([impl = impl_] { impl->shutdown(); }).detach();
  } catch (const std::exception&) {
    impl_->logger.error("Could not start the shutdown thread; the executor keeps running");
  }
}

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
  auto n = s.new_execution(*def, std::move(input), options);
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
  s.throw_if_engine_thread("wait_and_get_finished_execution()");
  const auto interval = options.polling_interval.count() > 0 ? options.polling_interval
                                                             : std::chrono::milliseconds{2500};
  std::optional<SteadyClock::time_point> deadline;
  if (options.timeout) deadline = saturating_deadline(SteadyClock::now(), *options.timeout);
  // Registered before the first look, so a completion between that look and the wait is not
  // missed; woken only when this process may have finished this very execution.
  Impl::Waiter waiter;
  {
    std::lock_guard lock(s.waiters_mutex);
    s.waiters.emplace(execution_id, &waiter);
    s.waiter_count.fetch_add(1);
  }
  struct Unregister {
    Impl& s;
    Impl::Waiter& w;
    const std::string& id;
    ~Unregister() {
      std::lock_guard lock(s.waiters_mutex);
      const auto [first, last] = s.waiters.equal_range(id);
      for (auto it = first; it != last; ++it) {
        if (it->second == &w) {
          s.waiters.erase(it);
          break;
        }
      }
      s.waiter_count.fetch_sub(1);
    }
  } unregister{s, waiter, execution_id};
  std::stop_callback on_stop(options.stop_token, [&] {
    std::lock_guard lock(s.waiters_mutex);
    waiter.cv.notify_one();
  });
  // The first look (and one after each quiet polling interval) reads the whole record, which
  // also reports a missing or foreign execution. A wake-up asks the store for the execution only
  // if it is finished: no copy of a large record per notification.
  bool full_check = true;
  for (;;) {
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
    auto until = saturating_deadline(SteadyClock::now(), interval);
    if (deadline) {
      if (SteadyClock::now() >= *deadline) {
        throw DurableExecutionTimedOutError(
            fmt::format("Timed out waiting for task execution {}", execution_id));
      }
      until = std::min(until, *deadline);
    }
    std::unique_lock lock(s.waiters_mutex);
    const bool woken = waiter.cv.wait_until(
        lock, until, [&] { return waiter.woken || options.stop_token.stop_requested(); });
    waiter.woken = false;
    full_check = !woken;
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
  s.notify_finished(execution_id);
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
  s.notify_finished(rec.execution_id);
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
  // The background thread may be left by a bounded shutdown (a finalize function that does not
  // return): it owns a reference to the engine.
  s.background = std::thread([impl = impl_] { impl->background_loop(); });
  s.writer = std::thread([&s] { s.writer_loop(); });
  s.external_work_subscription = s.caller.storage().subscribe_to_external_work([&s] {
    s.wake_dispatcher();
    s.wake_background();
  });
  s.logger.debug(fmt::format("Started executor {}", s.executor_id));
}

void Engine::shutdown() {
  if (!impl_) return;
  impl_->throw_if_engine_thread("shutdown()");
  impl_->shutdown();
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
    st.abandoned_task_executions = s.zombies.load();
  }
  st.storage_calls = s.caller.call_stats();
  st.storage_calls_per_second = s.caller.per_second_counts();
  if (s.batching) st.storage_batching = s.batching->stats();
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
