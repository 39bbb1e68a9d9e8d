#pragma once

#include <chrono>
#include <string>

#include "durable_execution/options.hpp"

namespace durable_execution::detail {

void validate_executor_options(const DurableExecutorOptions& options);
/** @brief The batching wrapper's options (fields named `storage_batching.<field>`). */
void validate_storage_batching_options(const StorageBatchingOptions& options);
void validate_task_id(const std::string& id);
void validate_retry_options(const std::string& task_id, const RetryOptions& retry);
void validate_sleep_before_run(const std::string& task_id, std::chrono::milliseconds sleep);
void validate_timeout(const std::string& task_id, std::chrono::milliseconds timeout);

}  // namespace durable_execution::detail
