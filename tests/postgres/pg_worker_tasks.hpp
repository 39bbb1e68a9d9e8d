#pragma once

// The tasks of the multi-process test, registered by every worker process (executors sharing a
// storage register the same tasks) and referenced by the test's client.

#include <chrono>
#include <functional>
#include <string>

#include "durable_execution/durable_executor.hpp"

namespace pg_worker {

namespace de = durable_execution;

inline constexpr int kChildren = 2;

struct Tasks {
  de::Task<int, int> leaf;
  de::Task<int, int> fan_out;
};

inline de::TaskOptions leaf_options() {
  return {.id = "mp_leaf", .timeout = std::chrono::seconds{3}};
}
inline de::TaskOptions fan_out_options() {
  return {.id = "mp_fan_out", .timeout = std::chrono::seconds{3}};
}

/** `fan_out(n)` has kChildren leaves (inputs n*10 + i) and returns the sum of their outputs. */
inline Tasks register_tasks(de::DurableExecutor& executor,
                            std::function<void(const std::string&)> on_leaf_run) {
  auto leaf =
      executor.task<int, int>(leaf_options(), [on_leaf_run](de::TaskRunContext& ctx, const int& x) {
        on_leaf_run(ctx.execution_id());
        return x + 1;
      });
  auto fan_out = executor.parent_task<int>(
      fan_out_options(),
      [leaf](const int& n) {
        de::ParentRunResult<int> result{n, {}};
        for (int i = 0; i < kChildren; ++i) result.children.push_back(de::child(leaf, n * 10 + i));
        return result;
      },
      [](const de::ParentTaskOutput<int>& p) {
        int sum = 0;
        for (const auto& c : p.children) sum += c.is_completed() ? c.output_as<int>() : -1'000'000;
        return sum;
      });
  return {leaf, fan_out};
}

/** The output fan_out(n) must have. */
inline int expected_sum(int n) {
  int sum = 0;
  for (int i = 0; i < kChildren; ++i) sum += n * 10 + i + 1;
  return sum;
}

}  // namespace pg_worker
