#pragma once

// What the engine's two loops (dispatcher, background) are built over: references to the
// configuration and to the components they call. Owned by the engine (engine.cpp), which
// outlives both loops.

#include <string>

#include "durable_execution/clock.hpp"
#include "loop_signals.hpp"
#include "runner.hpp"
#include "waiters.hpp"

namespace durable_execution::detail {

struct EngineContext {
  /** The engine's time (DurableExecutorOptions::clock). */
  const Clock& clock;
  const DurableExecutorOptions& options;
  const std::string& executor_id;
  const EngineLogger& logger;
  StorageCaller& caller;
  const StorageWrites& writes;
  const TaskRegistry& registry;
  const Transitions& transitions;
  RunTable& runs;
  Runner& runner;
  /** For report_thread_cpu(): the loops' CPU counts toward the pool's brake. */
  WorkerPool& pool;
  LoopSignals& signals;
  Waiters& waiters;
};

}  // namespace durable_execution::detail
