// A recursive task: a parent whose run declares children of itself (a tree of executions that
// computes Fibonacci numbers), and a task whose run enqueues itself again (a countdown). Each
// names itself through a default-constructed de::Task, declared before the executor and
// assigned before start().
//
// Build with -DDE_BUILD_EXAMPLES=ON and run ./examples/recursive_task/recursive_task.

#include <chrono>
#include <cstdint>
#include <future>
#include <iostream>
#include <mutex>

#include "durable_execution/durable_execution.hpp"

namespace de = durable_execution;
using namespace std::chrono_literals;

int main() {
  de::InMemoryTaskExecutionsStorage storage;
  // Declared before the executor, so that they outlive the worker threads that run them (the
  // executor's destructor waits for its tasks), and still unset: the runs below capture them
  // by reference, and they are assigned before start(), so every run sees the registered task.
  de::Task<int, std::int64_t> fib;
  de::Task<int, int> countdown;
  std::promise<void> reached_zero;
  std::once_flag reached_once;  // a run may repeat (at-least-once): signal the first one
  de::DurableExecutor executor{storage, {.background_process_intra_batch_sleep = 20ms}};

  // fib(n): a parent whose children are fib(n - 1) and fib(n - 2); its finalize adds their
  // outputs. A leaf (n < 2) declares no children, and its finalize returns its own output.
  fib = executor.parent_task(
      {.id = "fib", .timeout = 5s},
      [&fib](const int& n) {
        de::ParentRunResult<std::int64_t> r{n < 2 ? n : 0, {}};
        if (n >= 2) r.children = {de::child(fib, n - 1), de::child(fib, n - 2)};
        return r;
      },
      [](const de::ParentTaskOutput<std::int64_t>& p) {
        std::int64_t total = p.output;
        for (const auto& c : p.children) total += c.output_as<std::int64_t>();
        return total;
      });

  // countdown(n): enqueues countdown(n - 1) (each a separate, durable execution) until 0.
  countdown = executor.task({.id = "countdown", .timeout = 1s}, [&](const int& n) {
    if (n > 0) {
      (void)executor.enqueue_task(countdown, n - 1);
    } else {
      std::call_once(reached_once, [&] { reached_zero.set_value(); });
    }
    return n;
  });

  executor.start();
  auto result = executor.enqueue_task(fib, 10).wait_and_get_finished_execution({.timeout = 30s});
  std::cout << "fib(10): " << de::to_string(result.status)
            << ", output: " << result.output.value_or(-1) << "\n";
  (void)executor.enqueue_task(countdown, 3);
  const bool reached = reached_zero.get_future().wait_for(5s) == std::future_status::ready;
  std::cout << "countdown(3): " << (reached ? "reached 0" : "did not reach 0") << "\n";
  executor.shutdown();
  return result.output == 55 && reached ? 0 : 1;
}
