#pragma once

// Option structs of the executor, the client, task definitions, enqueues and waits, and the
// executor's stats (SPEC.md §6). Aggregates with a default on every field; validated on use.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "durable_execution/clock.hpp"
#include "durable_execution/task_execution.hpp"

namespace durable_execution {

/** @brief Log level threshold, ordered debug < info < error. */
enum class LogLevel { debug, info, error };

/**
 * @brief A log sink: receives every message at or above the configured level. Called from any
 * engine thread, possibly concurrently; it must be thread-safe and must not call the executor.
 */
using LogSink = std::function<void(LogLevel level, std::string_view message)>;

/**
 * @brief Options of a TaskExecutionsStorageWithBatching (and of an executor's
 * `enable_storage_batching`). An aggregate; validated on use ("Invalid options: <field> ...").
 *
 * The window is in microseconds, not milliseconds like the other durations: useful values run
 * from tens of microseconds (an in-process store) to a few milliseconds (a database across a
 * network).
 */
struct StorageBatchingOptions {
  /**
   * Longest a call waits for others to join its batch, counted from its arrival. A call never
   * waits when fewer than `max_batches_in_flight` batches of its operation are in flight and none
   * is queued (it goes at once); otherwise the batch leaves as soon as a batch in flight returns,
   * the batch is full, or the window has passed, whichever is first. 1 µs - 1 s.
   */
  std::chrono::microseconds window{1000};
  /**
   * Most requests (records, ids or updates, summed over the calls) one combined call carries:
   * the batch leaves when it is full, and a single call of at least this many requests goes
   * straight to the wrapped storage. 1-10 000.
   */
  std::int32_t max_batch_size = 100;
  /**
   * How long shutdown (or the destructor) waits for combined calls still in the wrapped storage;
   * past it, every caller still waiting on one of them gets "storage batching shut down" and the
   * calls' outcome is unknown to it. >= 0.
   */
  std::chrono::milliseconds shutdown_timeout{5000};
  /**
   * Combined calls of one operation that may be in the wrapped storage at once. A call that finds
   * fewer in flight, and none queued, goes at once; beyond it calls queue and coalesce. 1 packs
   * the most requests per call; more keeps calls that only rarely overlap from waiting (a
   * connection pool serves them in parallel anyway). 1-64.
   */
  std::int32_t max_batches_in_flight = 2;
};

/**
 * @brief Options of a DurableExecutor (SPEC.md §6.1), with the reference defaults.
 *
 * Validated at construction; an invalid value throws DurableExecutionError "Invalid options:
 * <field>
 * ...". Field order is API: fields are added at the end, never reordered.
 */
struct DurableExecutorOptions {
  /** Added to a run's timeout to form its lease (expires_at); >= 0. */
  std::chrono::milliseconds expire_leeway{300'000};
  /** Base interval of the polling loops (work created by other processes); >= 1 ms. */
  std::chrono::milliseconds background_process_intra_batch_sleep{500};
  /** Upper bound on runs in flight in this executor (and on busy worker threads); >= 1. */
  std::int32_t max_concurrent_task_executions = 5000;
  /** Claim size of one ready-loop batch; >= 1. */
  std::int32_t max_task_executions_per_batch = 100;
  /** Parents processed per batch once their children finished; 1-100. */
  std::int32_t process_on_children_finished_task_executions_batch_size = 100;
  /** Finished executions marked close-ready per batch; 1-200. */
  std::int32_t mark_finished_task_executions_as_close_status_ready_batch_size = 100;
  /** Executions closed per batch; 1-100. */
  std::int32_t close_finished_task_executions_batch_size = 100;
  /** Cancellations delivered per batch; 1-200. */
  std::int32_t cancel_needs_promise_cancellation_task_executions_batch_size = 100;
  /** Expired executions recovered per batch and per kind; 1-200. */
  std::int32_t retry_expired_task_executions_batch_size = 100;
  /** Children one run may declare; 1-1000. */
  std::int32_t max_children_per_task_execution = 1000;
  /** Byte limit of a serialized input; 0-1 048 576. */
  std::int64_t max_serialized_input_data_size = 1'048'576;
  /** Byte limit of a serialized output; 1024-10 485 760. */
  std::int64_t max_serialized_output_data_size = 1'048'576;
  /** Retries of a failed storage call (each after a jittered back-off); 1-10. */
  std::int32_t storage_max_retry_attempts = 1;
  /** Messages below this level are dropped. */
  LogLevel log_level = LogLevel::info;
  /**
   * Name of an spdlog logger the application registered (spdlog::register_logger); the engine
   * logs through it. Empty: a logger of the engine's own, writing to stderr.
   */
  std::string logger_name{};
  /** If set, receives every message instead of spdlog (for applications without spdlog). */
  LogSink log_sink{};
  /**
   * Crash-loop bound: an execution whose run lease expired (the executor running it died or
   * stalled) more than this many times ends `failed` ("abandoned repeatedly") instead of being
   * run again. Lease expirations are not retry attempts. 0-1000.
   */
  std::int32_t max_lease_expirations = 3;
  /**
   * Lease of a parent's children step (T15-T17), on top of `expire_leeway`: a step whose
   * executor died is run again after this plus the leeway. It must exceed the step's longest
   * duration (a finalize function, storage calls), or two executors may process one parent.
   * >= 1 ms.
   */
  std::chrono::milliseconds children_step_lease{120'000};
  /** Lease of a close step (T19-T21), on top of `expire_leeway`; as above. >= 1 ms. */
  std::chrono::milliseconds close_step_lease{120'000};
  /**
   * How long shutdown() waits for runs still in flight (task functions that ignore their stop
   * token) before it returns anyway, logging the runs it left; their results are then discarded
   * and nothing touches the storage after shutdown() returns. >= 0.
   */
  std::chrono::milliseconds shutdown_timeout{30'000};
  /** A worker thread idle this long exits (down to min_worker_threads). >= 1 ms. */
  std::chrono::milliseconds worker_idle_timeout{10'000};
  /**
   * Worker threads kept when idle, and started at once for a burst of quick tasks; the pool grows
   * past it (up to max_concurrent_task_executions, the maximum) when tasks hold their workers.
   * 0: one per core available to the process (CPU affinity and cgroup quota), at least 2.
   * 0 - max_concurrent_task_executions.
   */
  std::int32_t min_worker_threads = 0;
  /**
   * Wraps the executor's storage in a TaskExecutionsStorageWithBatching (docs/batching.md):
   * concurrent calls of the same operation share one storage call. Pays off where a call is a
   * round trip (PostgreSQL); costs a lock per call otherwise.
   */
  bool enable_storage_batching = false;
  /** The batching wrapper's options (validated even when batching is off). */
  StorageBatchingOptions storage_batching{};
  /**
   * The time the executor reads (clock.hpp: what follows it and what does not). Unset: the
   * system's clocks. Tests pass a ManualClock and advance it instead of sleeping.
   */
  std::shared_ptr<const Clock> clock{};
};

/** @brief Options of a DurableExecutorClient: the subset of DurableExecutorOptions it uses. */
struct DurableExecutorClientOptions {
  /// As DurableExecutorOptions::max_serialized_input_data_size.
  std::int64_t max_serialized_input_data_size = 1'048'576;
  /// As DurableExecutorOptions::storage_max_retry_attempts.
  std::int32_t storage_max_retry_attempts = 1;
  /// As DurableExecutorOptions::log_level.
  LogLevel log_level = LogLevel::info;
  /// As DurableExecutorOptions::logger_name.
  std::string logger_name{};
  /// As DurableExecutorOptions::log_sink.
  LogSink log_sink{};
  /** The time the client stamps on what it writes; unset: the system's clocks. */
  std::shared_ptr<const Clock> clock{};
};

/**
 * @brief The definition options of a task (SPEC.md §6.2).
 *
 * `id`: 1-255 characters of [A-Za-z0-9_], unique per executor. `timeout`: >= 1 ms, required.
 * `retry`: max_attempts 0-100 (retries, so at most max_attempts + 1 runs), base_delay
 * 0-3 600 000 ms, delay_multiplier 0.1-10, max_delay 0-86 400 000 ms and >= base_delay.
 * `sleep_before_run`: >= 0.
 */
struct TaskOptions {
  /// The task id: 1-255 characters of [A-Za-z0-9_], unique per executor.
  std::string id{};
  /// The timeout of one run; >= 1 ms, required.
  std::chrono::milliseconds timeout{0};
  /// The retry policy (default: no retries).
  RetryOptions retry{};
  /// The delay between enqueue and the first run.
  std::chrono::milliseconds sleep_before_run{0};
};

/**
 * @brief Options of a sleeping task (DurableExecutor::sleeping_task, or
 * Task::sleeping_reference for a client): only an id and a timeout (SPEC.md §6.2).
 */
struct SleepingTaskOptions {
  /// The task id, unique per executor.
  std::string id{};
  /// How long an execution may sleep before it times out.
  std::chrono::milliseconds timeout{0};
};

/** @brief Per-enqueue overrides of a task's registered options (validated like TaskOptions). */
struct EnqueueOptions {
  /// Replaces TaskOptions::retry for this execution.
  std::optional<RetryOptions> retry{};
  /// Replaces TaskOptions::sleep_before_run for this execution.
  std::optional<std::chrono::milliseconds> sleep_before_run{};
  /// Replaces TaskOptions::timeout for this execution.
  std::optional<std::chrono::milliseconds> timeout{};
};

/**
 * @brief How wait_and_get_finished_execution waits.
 *
 * The handle re-reads the execution when this process finishes it (no polling delay) and
 * otherwise every `polling_interval` (work finished by other processes). `timeout`, if set,
 * bounds the wait: past it the call throws DurableExecutionTimedOutError. A stop request on
 * `stop_token` throws DurableExecutionCancelledError.
 */
struct WaitOptions {
  /// How often to re-read an execution other processes may finish; 0 or less: the default.
  std::chrono::milliseconds polling_interval{100};
  /// Bound of the whole wait; unset: no bound.
  std::optional<std::chrono::milliseconds> timeout{};
  /// Cancels the wait when stop is requested.
  std::stop_token stop_token{};
};

/** @brief Calls, latency and rate of one storage method (every attempt counts). */
struct StorageCallStats {
  /// Calls made (every attempt).
  std::int64_t count = 0;
  /// Mean duration of a call.
  double mean_duration_ms = 0;
  /** 99th percentile of the durations, from log buckets (4 per power of two: within ~10%). */
  double p99_duration_ms = 0;
  /** Mean rate since the executor was created. */
  double calls_per_second = 0;
};

/** @brief What a TaskExecutionsStorageWithBatching did for one batchable operation. */
struct StorageBatchingOperationStats {
  /** Calls received. */
  std::int64_t calls = 0;
  /** Calls sent alone, never queued: empty, at least max_batch_size requests, or after
   * shutdown. */
  std::int64_t bypassed = 0;
  /** Combined calls sent to the wrapped storage (not counting the extra calls of splits). */
  std::int64_t batches = 0;
  /** Mean and largest number of calls per batch (1: no coalescing happened). */
  double mean_calls_per_batch = 0;
  /// The largest number of calls in one batch.
  std::int64_t max_calls_per_batch = 0;
  /** Mean number of requests (records, ids, updates) per batch. */
  double mean_requests_per_batch = 0;
  /** Wait of a call, arrival to dispatch, in the window (0 for a call that went at once). */
  double mean_wait_ms = 0;
  /// 99th percentile of that wait.
  double p99_wait_ms = 0;
  /** Extra calls made by splitting batches that failed non-retryably (error isolation). */
  std::int64_t split_calls = 0;
  /** Calls failed by shutdown because their batch did not return in time. */
  std::int64_t failed_at_shutdown = 0;
};

/** @brief Count and duration of the batches one background process ran. */
struct ProcessBatchStats {
  /// Batches run.
  std::int64_t batches = 0;
  /// Executions processed, over all batches.
  std::int64_t items = 0;
  /// Mean duration of a batch.
  double mean_batch_duration_ms = 0;
};

/** @brief A snapshot of an executor's configuration and load (SPEC.md §6.4). */
struct ExecutorStats {
  /// DurableExecutorOptions::expire_leeway.
  std::chrono::milliseconds expire_leeway{0};
  /// Runs in progress now.
  std::int32_t curr_concurrent_task_executions = 0;
  /// DurableExecutorOptions::max_concurrent_task_executions.
  std::int32_t max_concurrent_task_executions = 0;
  /// DurableExecutorOptions::max_task_executions_per_batch.
  std::int32_t max_task_executions_per_batch = 0;
  /// DurableExecutorOptions::max_children_per_task_execution.
  std::int32_t max_children_per_task_execution = 0;
  /// DurableExecutorOptions::max_serialized_input_data_size.
  std::int64_t max_serialized_input_data_size = 0;
  /// DurableExecutorOptions::max_serialized_output_data_size.
  std::int64_t max_serialized_output_data_size = 0;
  /// Tasks defined on the executor.
  std::int32_t registered_tasks_count = 0;
  /// Whether shutdown() has been called.
  bool is_shutdown = false;
  /**
   * Worker threads alive now (reused; at most max_concurrent_task_executions; idle ones retire
   * after worker_idle_timeout, down to one per core).
   */
  std::int32_t worker_threads = 0;
  /** Per storage method name. */
  std::map<std::string, StorageCallStats> storage_calls{};
  /** Per background process name (ready, children, mark, close, cancel, expire, complete). */
  std::map<std::string, ProcessBatchStats> processes{};
  /** Storage calls per epoch second. */
  std::map<std::int64_t, std::int64_t> storage_calls_per_second{};
  /**
   * Abandoned runs: timed out or cancelled while their task function still runs (it ignores its
   * stop token). Each holds a slot of max_concurrent_task_executions until it returns.
   */
  std::int32_t abandoned_task_executions = 0;
  /**
   * With `enable_storage_batching`: per batchable storage method name, what the batching wrapper
   * did (storage_calls then counts the engine's calls into the wrapper). Empty otherwise.
   */
  std::map<std::string, StorageBatchingOperationStats> storage_batching{};
};

}  // namespace durable_execution
