#pragma once

/**
 * @file
 * @brief Umbrella header: every public header of the core library. Each storage backend has
 * its own header (durable_execution/sqlite/sqlite_storage.hpp,
 * durable_execution/postgres/postgres_storage.hpp).
 */

#include "durable_execution/batching_storage.hpp"
#include "durable_execution/durable_executor.hpp"
#include "durable_execution/durable_executor_client.hpp"
#include "durable_execution/errors.hpp"
#include "durable_execution/fault_injection_storage.hpp"
#include "durable_execution/forwarding_storage.hpp"
#include "durable_execution/in_memory_storage.hpp"
#include "durable_execution/limits.hpp"
#include "durable_execution/options.hpp"
#include "durable_execution/parent_task.hpp"
#include "durable_execution/storage.hpp"
#include "durable_execution/task.hpp"
#include "durable_execution/task_context.hpp"
#include "durable_execution/task_descriptor.hpp"
#include "durable_execution/task_execution.hpp"
#include "durable_execution/task_submitter.hpp"

/**
 * @brief Everything public of the library. The nested namespace `detail` is the
 * implementation's and is not part of the API.
 */
namespace durable_execution {}
