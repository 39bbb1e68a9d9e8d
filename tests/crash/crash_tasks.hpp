#pragma once

// The tasks of the crash test, registered identically by the worker that gets killed and by the
// executor that recovers its work (executors sharing a storage must register the same tasks).

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
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

// ---- kill matrix ---------------------------------------------------------------------------

/**
 * @brief Where a matrix worker stops to be killed: the first time it reaches `target`, it
 * creates `flag_file` (naming the phase) and blocks that thread until SIGKILL.
 */
struct Pause {
  std::string target{};
  std::filesystem::path flag_file{};
  std::atomic<bool> fired{false};

  void at(std::string_view phase) {
    if (target != phase || fired.exchange(true)) return;
    std::ofstream{flag_file} << phase;
    std::this_thread::sleep_for(60s);  // the test kills this process within milliseconds
  }
};

struct MatrixTasks {
  de::Task<int, int> inc;
  de::Task<int, int> sum_of;   // n children inc(i * 10), summed by a finalize function
  de::Task<int, int> bad_sum;  // 2 children; its finalize function fails
  de::Task<int, int> chain;    // inc, inc, inc
};

/** The matrix's expected outputs. */
inline int sum_of_output(int n) { return 10 * n * (n - 1) / 2 + n; }
inline constexpr std::string_view kBadSumError = "finalize refuses";

inline MatrixTasks register_matrix_tasks(de::DurableExecutor& executor,
                                         std::shared_ptr<Pause> pause) {
  auto inc = executor.task<int, int>({.id = "inc", .timeout = 500ms}, [pause](const int& x) {
    if (pause) pause->at("run");
    std::this_thread::sleep_for(20ms);
    return x + 1;
  });
  auto sum_of = executor.parent_task(
      {.id = "sum_of", .timeout = 500ms},
      [inc](const int& n) {
        de::ParentRunResult<int> r{n, {}};
        for (int i = 0; i < n; ++i) r.children.push_back(de::child(inc, i * 10));
        return r;
      },
      [pause](const de::ParentTaskOutput<int>& p) {
        if (pause) pause->at("finalize");
        int sum = 0;
        for (const auto& c : p.children) sum += c.is_completed() ? c.output_as<int>() : -1000;
        return sum;
      });
  auto bad_sum = executor.parent_task(
      {.id = "bad_sum", .timeout = 500ms},
      [inc](const int& n) {
        de::ParentRunResult<int> r{n, {}};
        for (int i = 0; i < 2; ++i) r.children.push_back(de::child(inc, i));
        return r;
      },
      [pause](const de::ParentTaskOutput<int>& p) -> int {
        if (pause) pause->at("finalize");
        (void)p;
        throw de::DurableExecutionError::non_retryable(std::string{kBadSumError});
      });
  auto chain = executor.sequential_tasks("chain", inc, inc, inc);
  return MatrixTasks{inc, sum_of, bad_sum, chain};
}

/**
 * @brief The matrix's executor options: no leeway and short step leases, so work a killed worker
 * held is recovered within about a second; no crash-loop bound (the matrix may kill one
 * execution's run many times: every kill must still end in the right outcome).
 */
inline de::DurableExecutorOptions matrix_options() {
  return {.expire_leeway = 0ms,
          .background_process_intra_batch_sleep = 20ms,
          .max_concurrent_task_executions = 4,
          .log_level = de::LogLevel::error,
          .max_lease_expirations = 1000,
          .children_step_lease = 300ms,
          .close_step_lease = 300ms};
}

// ---- a run that kills its process ------------------------------------------------------------

inline de::DurableExecutorOptions poison_options() {
  return {.expire_leeway = 0ms,
          .background_process_intra_batch_sleep = 20ms,
          .log_level = de::LogLevel::error,
          .max_lease_expirations = 3};
}

struct PoisonTasks {
  de::Task<int, int> poison;
  de::Task<int, int> inc;
};

/** "poison" kills its process on every run (as a stack overflow in a decoder would). */
inline PoisonTasks register_poison_tasks(de::DurableExecutor& executor, bool lethal = true) {
  auto poison = executor.task<int, int>({.id = "poison", .timeout = 300ms}, [lethal](const int& x) {
    if (lethal) std::_Exit(9);
    return x;
  });
  auto inc =
      executor.task<int, int>({.id = "inc", .timeout = 300ms}, [](const int& x) { return x + 1; });
  return PoisonTasks{poison, inc};
}

}  // namespace crash
