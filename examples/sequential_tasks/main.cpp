// Sequential tasks: a pipeline a -> b -> c run one step at a time, each step's output being the
// next step's input (checked at compile time). A failing middle step ends the chain
// finalize_failed with "Task at index 1 failed: ..." and the later steps never run.
//
// Build it standalone or in the project's tree (examples/README.md); in the tree it is
// ./examples/sequential_tasks/sequential_tasks.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <iostream>
#include <string>
#include <type_traits>
#include <vector>

#include "durable_execution/durable_execution.hpp"

namespace de = durable_execution;
using namespace std::chrono_literals;

int main() {
  de::InMemoryTaskExecutionsStorage storage;
  de::DurableExecutor executor{storage, {.background_process_intra_batch_sleep = 20ms}};

  // Step a: std::string -> std::vector<int> (parse a comma-separated list).
  auto parse = executor.task({.id = "parse", .timeout = 1s}, [](const std::string& csv) {
    std::vector<int> values;
    std::size_t start = 0;
    while (start <= csv.size()) {
      const std::size_t comma = std::min(csv.find(',', start), csv.size());
      values.push_back(std::stoi(csv.substr(start, comma - start)));
      start = comma + 1;
    }
    return values;
  });
  // Step b: std::vector<int> -> int (sum). Rejects negative values.
  auto sum = executor.task({.id = "sum", .timeout = 1s}, [](const std::vector<int>& values) {
    int total = 0;
    for (int v : values) {
      if (v < 0) {
        throw de::DurableExecutionError::non_retryable("negative value " + std::to_string(v));
      }
      total += v;
    }
    return total;
  });
  // Step c: int -> std::string (format). Counts its runs to show it is skipped after a failure.
  std::atomic<int> format_runs{0};
  auto format = executor.task({.id = "format", .timeout = 1s}, [&](const int& total) {
    ++format_runs;
    return "total = " + std::to_string(total);
  });

  // The chain's type is Task<first step's input, last step's output>; swapping two steps whose
  // types do not line up is a compile error.
  auto pipeline = executor.sequential_tasks("pipeline", parse, sum, format);
  static_assert(std::is_same_v<decltype(pipeline), de::Task<std::string, std::string>>);

  executor.start();

  auto ok =
      executor.enqueue_task(pipeline, "1,2,3,4").wait_and_get_finished_execution({.timeout = 5s});
  std::cout << "pipeline(\"1,2,3,4\"): " << de::to_string(ok.status)
            << ", output: " << ok.output.value_or("") << "\n";

  const int runs_before = format_runs.load();
  auto bad =
      executor.enqueue_task(pipeline, "1,-2,3").wait_and_get_finished_execution({.timeout = 5s});
  std::cout << "pipeline(\"1,-2,3\"): " << de::to_string(bad.status)
            << ", error: " << (bad.error ? bad.error->message : "")
            << ", format ran: " << (format_runs.load() - runs_before) << " times\n";

  executor.shutdown();
  return ok.output == "total = 10" && bad.status == de::TaskExecutionStatus::finalize_failed &&
                 bad.error && bad.error->message == "Task at index 1 failed: negative value -2" &&
                 format_runs.load() == runs_before
             ? 0
             : 1;
}
