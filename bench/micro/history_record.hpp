#pragma once

// The history both storage micro-benchmarks pre-fill their store with: finished and closed
// executions, as a long-running deployment accumulates them.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "durable_execution/task_execution.hpp"

namespace durable_execution::bench {

/** @brief A finished, closed execution created `10,000,000 - i` ms before `now`. */
inline TaskExecutionRecord finished_record(Timestamp now, std::int64_t i) {
  using std::chrono::milliseconds;
  auto r = make_task_execution_record(now - milliseconds{10'000'000 - i},
                                      {.task_id = "history_task_" + std::to_string(i % 100),
                                       .execution_id = generate_execution_id(),
                                       .retry_options = {.max_attempts = 3},
                                       .timeout = milliseconds{30'000},
                                       .input = R"({"n":)" + std::to_string(i) + "}"});
  r.status = TaskExecutionStatus::completed;
  r.is_finished = true;
  r.output = R"({"ok":true})";
  r.started_at = r.start_at;
  r.finished_at = r.start_at + milliseconds{5};
  r.children = std::vector<TaskExecutionSummary>{};
  r.close_status = CloseStatus::closed;
  r.closed_at = r.start_at + milliseconds{6};
  r.updated_at = r.start_at + milliseconds{6};
  return r;
}

}  // namespace durable_execution::bench
