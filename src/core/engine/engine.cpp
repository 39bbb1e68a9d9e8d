// The engine (DESIGN.md layer 2): composes the components below and implements the public calls
// of detail::Engine. It owns no logic of its own beyond the order of start-up and shutdown; see
// docs/executor.md for the diagram of who calls whom and which thread runs what.
//
//  registry      task definitions by id                       (registry.hpp)
//  transitions   the state machine, pure planning of writes   (transitions.hpp)
//  writes        the engine's writes, failures isolated       (storage_writes.hpp)
//  signals       wake-ups of the two loops, timed ones        (loop_signals.hpp)
//  runs          runs held here, abandoned, held, cancelled   (run_table.hpp)
//  writer        group commit of run results                  (completion_writer.hpp)
//  runner        one run: start, execute, settle              (runner.hpp)
//  deadlines     run timeouts on per-worker slots             (run_deadlines.hpp)
//  pool          worker threads and their growth             (worker_pool.hpp, growth_policy.hpp)
//  dispatcher    claims (T3) and back-pressure                (dispatcher.hpp)
//  background    mark, close, children, cancel, expire steps  (background.hpp)
//  waiters       blocked waits, keyed by execution id         (waiters.hpp)

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <mutex>

#include "../executor_validation.hpp"
#include "background.hpp"
#include "dispatcher.hpp"
#include "durable_execution/batching_storage.hpp"
#include "durable_execution/detail/saturating_time.hpp"

namespace durable_execution::detail {

using Status = TaskExecutionStatus;

/**
 * What every component is built from: the options, the executor's identity and logger, the
 * storage caller (through the batching wrapper when enabled), the clock and the timer thread. Set
 * once at construction; the components hold references into it.
 */
struct Foundation {
  Foundation(TaskExecutionsStorage& storage, const DurableExecutorOptions& opts, Engine::Mode m)
      : options(opts),
        mode(m),
        executor_id(make_executor_id()),
        logger(opts.log_level, opts.logger_name, opts.log_sink),
        batching(opts.enable_storage_batching ? std::make_unique<TaskExecutionsStorageWithBatching>(
                                                    storage, opts.storage_batching)
                                              : nullptr),
        caller(batching ? *batching : storage, opts.storage_max_retry_attempts),
        clock_owner(opts.clock ? opts.clock : SystemClock::instance()),
        clock(*clock_owner),
        timer(m == Engine::Mode::executor ? std::make_unique<TimerThread>(clock) : nullptr) {}

  const DurableExecutorOptions options;
  const Engine::Mode mode;
  const std::string executor_id;
  const EngineLogger logger;
  /** With enable_storage_batching: the wrapper the caller goes through (docs/batching.md). */
  std::unique_ptr<TaskExecutionsStorageWithBatching> batching;
  StorageCaller caller;
  std::shared_ptr<const Clock> clock_owner;
  const Clock& clock;
  std::unique_ptr<TimerThread> timer;  // executor mode only
};

/**
 * The composition root: the foundation, the components wired to each other, and the lifecycle.
 * Its methods only order start-up and shutdown; the public calls below reach the components.
 */
struct Engine::Impl : Foundation, std::enable_shared_from_this<Engine::Impl> {
  Impl(TaskExecutionsStorage& storage, const DurableExecutorOptions& opts, Mode m)
      : Foundation(storage, opts, m) {
    runner.attach(pool, deadlines, [this](std::size_t running) { dispatcher.slot_freed(running); });
  }

  // Components, in the order they depend on each other.
  TaskRegistry registry;
  Transitions transitions{registry, options};
  StorageWrites writes{caller, logger, options.storage_max_retry_attempts};
  Waiters waiters;
  LoopSignals signals{clock, timer.get()};
  RunTable runs{mode == Mode::executor};
  CompletionWriter writer{clock, transitions, writes, runs, signals, waiters};
  Runner runner{clock, transitions, runs, writer, timer.get()};
  RunDeadlines deadlines{clock, timer.get(),
                         [this](const std::shared_ptr<Run>& run) { runner.time_out(run); }};
  WorkerPool pool{{options.max_concurrent_task_executions, options.worker_idle_timeout,
                   options.min_worker_threads, timer.get(), &caller},
                  deadlines,
                  [this](const std::shared_ptr<Run>& run, RunDeadlines::Slot& slot) {
                    runner.execute(run, slot);
                  }};
  EngineContext context{clock,       options, executor_id, logger, caller,  writes, registry,
                        transitions, runs,    runner,      pool,   signals, waiters};
  Dispatcher dispatcher{context};
  Background background{context};

  // Lifecycle.
  struct Lifecycle {
    std::mutex mutex;
    std::atomic<bool> is_shutdown{false};
    bool started = false;
    bool shut_down = false;
    std::atomic<bool> shutdown_deferred{false};
    // Storage hints that other processes created work (PostgreSQL NOTIFY): wake the loops.
    std::uint64_t external_work_subscription = 0;
  } lifecycle;

  void throw_if_shutdown() const {
    if (lifecycle.is_shutdown.load()) {
      throw DurableExecutionError::non_retryable("Durable executor shutdown");
    }
  }

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

  void start() {
    std::lock_guard lock(lifecycle.mutex);
    throw_if_shutdown();
    if (lifecycle.started || mode == Mode::client) return;
    lifecycle.started = true;
    pool.set_owner(weak_from_this());
    dispatcher.start();
    background.start(shared_from_this());
    writer.start(caller);
    lifecycle.external_work_subscription = caller.storage().subscribe_to_external_work([this] {
      signals.wake_dispatcher();
      signals.wake_background();
    });
    logger.debug(fmt::format("Started executor {}", executor_id));
  }

  /**
   * Stops the executor (SPEC.md §6.5) within options.shutdown_timeout, plus at most the storage
   * calls already in progress: runs still in their task function past it are logged and left
   * (their workers detach and keep the engine alive until they return); their results are
   * dropped. After it returns, nothing of this engine touches the storage.
   */
  void shutdown() noexcept {
    std::lock_guard lock(lifecycle.mutex);
    if (lifecycle.shut_down) return;
    lifecycle.shut_down = true;
    lifecycle.is_shutdown.store(true);
    logger.debug(fmt::format("Shutting down executor {}", executor_id));
    // First the storage's wake-ups of the loops (PostgreSQL NOTIFY).
    caller.storage().unsubscribe_from_external_work(lifecycle.external_work_subscription);
    const auto deadline = saturating_deadline(SteadyClock::now(), options.shutdown_timeout);
    // 1-2. Stop the loops. The dispatcher only calls the storage; the background thread may be
    // in a finalize function, so it gets the deadline too.
    signals.stop();
    dispatcher.join();
    const bool background_left = !background.join(deadline);
    // 3. Runs see the stop request and finish; their results are recorded.
    const auto left = runs.stop_all(deadline);
    if (!left.runs.empty() || left.abandoned > 0 || background_left) {
      logger.error(fmt::format(
          "Shutdown of executor {} stopped waiting after shutdown_timeout = {} ms: {} runs left "
          "in their task functions{}{}, {} abandoned runs still running{}; their results are "
          "dropped and their leases will expire",
          executor_id, options.shutdown_timeout.count(), left.runs.size(),
          left.runs.empty() ? "" : ": ", fmt::join(left.runs, ", "), left.abandoned,
          background_left ? ", and the background thread is still in a finalize function" : ""));
    }
    // The writer writes what is queued, then stops; from then on no engine thread reaches the
    // storage (calls in progress are waited for).
    writer.stop();
    caller.close_for_engine_threads();
    // 4. Join the workers that return; detach the ones still in a task function.
    pool.stop(deadline);
    if (timer) timer->stop();
    waiters.notify_all();
  }

  std::optional<TaskExecutionRecord> get_by_id(const std::string& id) const {
    return writes.get_by_id(id);
  }
};

// =============================================================================================
// Engine: public surface
// =============================================================================================

Engine::Engine(TaskExecutionsStorage& storage, const DurableExecutorOptions& options, Mode mode) {
  validate_executor_options(options);
  impl_ = std::make_shared<Impl>(storage, options, mode);
}

Engine::~Engine() { shutdown_or_defer(); }

void Engine::shutdown_or_defer() noexcept {
  if (!impl_) return;
  if (!impl_->caller.on_engine_thread()) {
    impl_->shutdown();
    return;
  }
  if (impl_->lifecycle.is_shutdown.load() || impl_->lifecycle.shutdown_deferred.exchange(true)) {
    return;
  }
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
  impl_->throw_if_shutdown();
  auto descriptor = impl_->registry.add(std::move(def));
  impl_->logger.debug(fmt::format("Added task {}", descriptor.id));
  return descriptor;
}

TaskDescriptor Engine::find_descriptor(const std::string& task_id) const {
  auto def = impl_->registry.find(task_id);
  if (!def) throw DurableExecutionNotFoundError(fmt::format("Task {} not found", task_id));
  return describe(*def);
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
  if (task.id.empty()) {
    throw DurableExecutionNotFoundError(
        "Task not found: this Task is unset (no id); assign it a registered task before "
        "enqueuing it");
  }
  auto def = s.registry.find(task.id);
  if (!def) {
    throw DurableExecutionNotFoundError(fmt::format(
        "Task {} not found. Register it (executor.task(), or the client's task list) before "
        "enqueuing it",
        task.id));
  }
  // The input was serialized for the kind the caller's Task names (a sleeping task's is its
  // unique id, verbatim): a reference of the other kind would store an unusable execution.
  if (def->is_sleeping_task != task.is_sleeping_task) {
    throw DurableExecutionError::non_retryable(
        def->is_sleeping_task
            ? fmt::format("Task {} is a sleeping task: enqueue it with Task::sleeping_reference "
                          "or the task it was registered as, not a plain reference",
                          task.id)
            : fmt::format("Task {} is not a sleeping task: a sleeping reference cannot enqueue it",
                          task.id));
  }
  std::vector<TaskExecutionRecord> records;
  records.push_back(make_task_execution_record(
      s.clock.now(), s.transitions.new_execution(*def, std::move(input), options)));
  const auto& rec = records.front();
  s.caller.call(StorageMethod::insert_many,
                [&](TaskExecutionsStorage& st) { st.insert_many(records); });
  if (s.mode == Mode::executor) {
    if (!def->is_sleeping_task) {
      s.signals.dispatch_at(rec.start_at);
    } else if (rec.expires_at) {
      s.signals.expire_at(*rec.expires_at);
    }
  }
  if (s.logger.enabled(LogLevel::debug)) {
    s.logger.debug(fmt::format("Enqueued task {} as execution {}", task.id, rec.execution_id));
  }
  return rec.execution_id;
}

void Engine::check_handle(const std::string& task_id, const std::string& execution_id) {
  if (!impl_->registry.find(task_id)) {
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
  // Not positive: the default (SPEC.md §6.4 maps it to its own default, 2.5 s; ours is 100 ms).
  const auto interval = options.polling_interval.count() > 0 ? options.polling_interval
                                                             : WaitOptions{}.polling_interval;
  std::optional<SteadyClock::time_point> deadline;
  if (options.timeout) deadline = saturating_deadline(SteadyClock::now(), *options.timeout);
  // Registered before the first look, so a completion between that look and the wait is not
  // missed; woken only when this process may have finished this very execution.
  Waiters::Registration waiter{s.waiters, execution_id};
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
    full_check = !waiter.wait_until(until, options.stop_token);
  }
}

void Engine::cancel(const std::string& execution_id) {
  auto& s = *impl_;
  std::vector<UpdateByIdRequest> reqs{Transitions::cancel(execution_id, s.clock.now())};
  s.caller.call(StorageMethod::update_many_by_id,
                [&](TaskExecutionsStorage& st) { st.update_many_by_id(reqs); });
  s.runner.cancel(execution_id);
  s.waiters.notify(execution_id);
  if (s.mode == Mode::executor) s.signals.wake_background(all_background_steps, true);
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
  std::vector<UpdateByIdRequest> updates{
      Transitions::wake_sleeping(rec.execution_id, status, std::move(payload), s.clock.now())};
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
  s.waiters.notify(rec.execution_id);
  if (s.mode == Mode::executor) s.signals.wake_background();
  return std::move(*after);
}

void Engine::start() { impl_->start(); }

void Engine::shutdown() {
  if (!impl_) return;
  impl_->throw_if_engine_thread("shutdown()");
  impl_->shutdown();
}

bool Engine::is_shutdown() const noexcept { return impl_->lifecycle.is_shutdown.load(); }

ExecutorStats Engine::stats() const {
  const auto& s = *impl_;
  ExecutorStats st;
  st.expire_leeway = s.options.expire_leeway;
  st.curr_concurrent_task_executions = static_cast<std::int32_t>(s.runs.running());
  st.max_concurrent_task_executions = s.options.max_concurrent_task_executions;
  st.max_task_executions_per_batch = s.options.max_task_executions_per_batch;
  st.max_children_per_task_execution = s.options.max_children_per_task_execution;
  st.max_serialized_input_data_size = s.options.max_serialized_input_data_size;
  st.max_serialized_output_data_size = s.options.max_serialized_output_data_size;
  st.registered_tasks_count = static_cast<std::int32_t>(s.registry.size());
  st.is_shutdown = s.lifecycle.is_shutdown.load();
  st.worker_threads = s.pool.threads();
  st.abandoned_task_executions = s.runs.abandoned();
  st.storage_calls = s.caller.call_stats();
  st.storage_calls_per_second = s.caller.per_second_counts();
  if (s.batching) st.storage_batching = s.batching->stats();
  st.processes = s.background.stats();
  st.processes.emplace("ready", s.dispatcher.stats());
  st.processes.emplace("complete", s.writer.stats());
  return st;
}

std::vector<std::string> Engine::running_execution_ids() const { return impl_->runs.ids(); }

std::string Engine::executor_id() const { return impl_->executor_id; }

}  // namespace durable_execution::detail
