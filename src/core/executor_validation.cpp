// Validation of executor options, task options and enqueue overrides (SPEC.md §6.1-§6.3).

#include "executor_validation.hpp"

#include <fmt/format.h>

#include "durable_execution/detail/engine.hpp"
#include "durable_execution/limits.hpp"

namespace durable_execution::detail {

namespace {

/** The polling loops multiply this interval (by up to 10); an hour keeps them far from limits. */
constexpr std::chrono::milliseconds kMaxIntraBatchSleep{3'600'000};

[[noreturn]] void invalid_option(std::string_view field, std::string_view rule,
                                 std::int64_t value) {
  throw DurableExecutionError::non_retryable(
      fmt::format("Invalid options: {} must be {} (got {})", field, rule, value));
}

void check_range(std::string_view field, std::int64_t value, std::int64_t lo, std::int64_t hi) {
  if (value < lo || value > hi) {
    invalid_option(field, fmt::format("between {} and {}", lo, hi), value);
  }
}

void check_min(std::string_view field, std::int64_t value, std::int64_t lo) {
  if (value < lo) invalid_option(field, fmt::format("at least {}", lo), value);
}

}  // namespace

void validate_executor_options(const DurableExecutorOptions& o) {
  check_range("expire_leeway", o.expire_leeway.count(), 0, max_duration.count());
  check_range("background_process_intra_batch_sleep",
              o.background_process_intra_batch_sleep.count(), 1, kMaxIntraBatchSleep.count());
  check_min("max_concurrent_task_executions", o.max_concurrent_task_executions, 1);
  check_min("max_task_executions_per_batch", o.max_task_executions_per_batch, 1);
  check_range("process_on_children_finished_task_executions_batch_size",
              o.process_on_children_finished_task_executions_batch_size, 1, 100);
  check_range("mark_finished_task_executions_as_close_status_ready_batch_size",
              o.mark_finished_task_executions_as_close_status_ready_batch_size, 1, 200);
  check_range("close_finished_task_executions_batch_size",
              o.close_finished_task_executions_batch_size, 1, 100);
  check_range("cancel_needs_promise_cancellation_task_executions_batch_size",
              o.cancel_needs_promise_cancellation_task_executions_batch_size, 1, 200);
  check_range("retry_expired_task_executions_batch_size",
              o.retry_expired_task_executions_batch_size, 1, 200);
  check_range("max_children_per_task_execution", o.max_children_per_task_execution, 1, 1000);
  check_range("max_serialized_input_data_size", o.max_serialized_input_data_size, 0, 1'048'576);
  check_range("max_serialized_output_data_size", o.max_serialized_output_data_size, 1024,
              10'485'760);
  check_range("storage_max_retry_attempts", o.storage_max_retry_attempts, 1, 10);
  check_range("max_lease_expirations", o.max_lease_expirations, 0, 1000);
  check_min("children_step_lease", o.children_step_lease.count(), 1);
  check_min("close_step_lease", o.close_step_lease.count(), 1);
  check_min("shutdown_timeout", o.shutdown_timeout.count(), 0);
  check_min("worker_idle_timeout", o.worker_idle_timeout.count(), 1);
  check_range("min_worker_threads", o.min_worker_threads, 0, o.max_concurrent_task_executions);
  validate_storage_batching_options(o.storage_batching);
  if (o.log_level != LogLevel::debug && o.log_level != LogLevel::info &&
      o.log_level != LogLevel::error) {
    invalid_option("log_level", "debug, info or error", static_cast<std::int64_t>(o.log_level));
  }
}

void validate_storage_batching_options(const StorageBatchingOptions& o) {
  check_range("storage_batching.window (µs)", o.window.count(), 1, 1'000'000);
  check_range("storage_batching.max_batch_size", o.max_batch_size, 1, 10'000);
  check_min("storage_batching.shutdown_timeout", o.shutdown_timeout.count(), 0);
  check_range("storage_batching.max_batches_in_flight", o.max_batches_in_flight, 1, 64);
}

void validate_retry_options(const std::string& task_id, const RetryOptions& r) {
  auto fail = [&](const std::string& why) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Invalid retry options for task {}: {}", task_id, why));
  };
  if (r.max_attempts < 0 || r.max_attempts > 100) {
    fail(fmt::format("max_attempts must be between 0 and 100 (got {})", r.max_attempts));
  }
  if (r.base_delay && (r.base_delay->count() < 0 || r.base_delay->count() > 3'600'000)) {
    fail(
        fmt::format("base_delay must be between 0 and 3600000 ms (got {})", r.base_delay->count()));
  }
  if (r.delay_multiplier && (!(*r.delay_multiplier >= 0.1) || !(*r.delay_multiplier <= 10.0))) {
    fail(fmt::format("delay_multiplier must be between 0.1 and 10 (got {})", *r.delay_multiplier));
  }
  if (r.max_delay) {
    if (r.max_delay->count() < 0 || r.max_delay->count() > 86'400'000) {
      fail(fmt::format("max_delay must be between 0 and 86400000 ms (got {})",
                       r.max_delay->count()));
    }
    if (r.base_delay && *r.max_delay < *r.base_delay) {
      fail("max_delay must be at least base_delay");
    }
  }
}

void validate_sleep_before_run(const std::string& task_id, std::chrono::milliseconds sleep) {
  if (sleep.count() < 0) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Invalid sleep ms before run for task {}: must be at least 0 (got {})", task_id,
                    sleep.count()));
  }
  if (sleep > max_duration) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Invalid sleep ms before run for task {}: must be at most {} ms (got {})",
                    task_id, max_duration.count(), sleep.count()));
  }
}

void validate_timeout(const std::string& task_id, std::chrono::milliseconds timeout) {
  if (timeout.count() < 1) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Invalid timeout value for task {}: must be at least 1 ms (got {})", task_id,
                    timeout.count()));
  }
  if (timeout > max_duration) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Invalid timeout value for task {}: must be at most {} ms (got {})", task_id,
                    max_duration.count(), timeout.count()));
  }
}

void validate_task_id(const std::string& id) {
  if (id.empty()) throw DurableExecutionError::non_retryable("Task id cannot be empty");
  if (id.size() > 255) {
    throw DurableExecutionError::non_retryable("Task id cannot be longer than 255 characters");
  }
  for (const char c : id) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) {
      throw DurableExecutionError::non_retryable(
          "Task id can only contain alphanumeric characters and underscores");
    }
  }
}

void validate_task_options(const TaskOptions& options) {
  // Order of the reference engine: id, retries, sleep, timeout.
  validate_task_id(options.id);
  validate_retry_options(options.id, options.retry);
  validate_sleep_before_run(options.id, options.sleep_before_run);
  validate_timeout(options.id, options.timeout);
}

}  // namespace durable_execution::detail
