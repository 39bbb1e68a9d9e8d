// Sleeping task (webhook style): an execution with no function that stays `running` until
// something outside wakes it by its unique id — here another thread standing in for a webhook
// handler — with an output. A second one is never woken and times out.
//
// Build it standalone or in the project's tree (examples/README.md); in the tree it is
// ./examples/sleeping_task/sleeping_task.

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "durable_execution/durable_execution.hpp"

namespace de = durable_execution;
using namespace std::chrono_literals;

namespace {

// Reads an execution until it leaves `ready` (bounded): a sleeping execution is claimed, then
// stays `running` until woken.
template <class O>
de::TaskExecution<O> wait_started(const de::TaskExecutionHandle<O>& handle) {
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  auto e = handle.get_execution();
  while (e.status == de::TaskExecutionStatus::ready &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
    e = handle.get_execution();
  }
  return e;
}

}  // namespace

int main() {
  de::InMemoryTaskExecutionsStorage storage;
  de::DurableExecutor executor{storage, {.background_process_intra_batch_sleep = 20ms}};

  // No function: the input is the unique id the waker uses; the output type is the payload.
  auto payment = executor.sleeping_task<std::string>({.id = "payment", .timeout = 10s});
  auto approval = executor.sleeping_task<std::string>({.id = "approval", .timeout = 300ms});

  executor.start();

  // The unique id is yours to choose (an order id, a payment intent id, ...): whoever learns
  // the outcome needs only it, not the execution id.
  auto order = executor.enqueue_task(payment, "order_42");
  std::this_thread::sleep_for(100ms);  // nothing wakes it yet
  const auto before = wait_started(order);
  std::cout << "payment(order_42) after 100 ms: " << de::to_string(before.status) << "\n";

  // The "webhook handler": another thread (in a real system often another process, through a
  // DurableExecutorClient on the same storage) completes the execution with an output.
  std::jthread webhook{[&] {
    auto woken = executor.wakeup_sleeping_task_execution(payment, "order_42", "paid");
    std::cout << "webhook woke order_42: " << de::to_string(woken.status) << "\n";
  }};
  webhook.join();

  auto paid = order.wait_and_get_finished_execution({.timeout = 5s});
  std::cout << "payment(order_42): " << de::to_string(paid.status)
            << ", output: " << paid.output.value_or("") << "\n";

  // Nobody wakes this one: it becomes timed_out at its 300 ms timeout.
  auto pending = executor.enqueue_task(approval, "request_7");
  auto timed_out = pending.wait_and_get_finished_execution({.timeout = 5s});
  std::cout << "approval(request_7): " << de::to_string(timed_out.status)
            << ", error: " << (timed_out.error ? timed_out.error->message : "") << "\n";

  executor.shutdown();
  return before.status == de::TaskExecutionStatus::running &&
                 paid.status == de::TaskExecutionStatus::completed && paid.output == "paid" &&
                 timed_out.status == de::TaskExecutionStatus::timed_out
             ? 0
             : 1;
}
