#pragma once

// The tasks of the crash test, registered identically by the worker that gets killed and by the
// executor that recovers its work (executors sharing a storage must register the same tasks).

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "durable_execution/durable_executor.hpp"

namespace crash {

namespace de = durable_execution;
using namespace std::chrono_literals;

/** @brief How a step behaves: the worker blocks in every step until it is killed. */
struct Behaviour {
  bool block = false;
  /** Where a blocking step drops a marker file `<parent task id>__<execution id>` when it runs. */
  std::filesystem::path marker_dir{};
  /** Called once per finished (non-blocking) run, with the execution id. */
  std::function<void(const std::string&)> on_run{};
};

struct Tasks {
  de::Task<int, int> inc;
  de::Task<int, de::ParentTaskOutput<int>> fan_out;
  de::Task<int, int> chain;
};

inline Tasks register_tasks(de::DurableExecutor& executor, Behaviour behaviour) {
  auto inc = executor.task<int, int>(
      {.id = "inc", .timeout = 8s}, [behaviour](de::TaskRunContext& ctx, const int& x) {
        if (behaviour.block) {
          const auto parent = ctx.parent() ? ctx.parent()->task_id : std::string{"root"};
          std::ofstream{behaviour.marker_dir / (parent + "__" + ctx.execution_id())};
          // Blocks until SIGKILL, which the test sends long before the 8 s timeout.
          std::this_thread::sleep_for(120s);
        }
        if (behaviour.on_run) behaviour.on_run(ctx.execution_id());
        return x + 1;
      });
  auto fan_out = executor.parent_task<int>({.id = "fan_out", .timeout = 8s}, [inc](const int& n) {
    de::ParentRunResult<int> result{n, {}};
    for (int i = 0; i < n; ++i) result.children.push_back(de::child(inc, i * 10));
    return result;
  });
  auto chain = executor.sequential_tasks("chain", inc, inc, inc);
  return Tasks{inc, fan_out, chain};
}

}  // namespace crash
