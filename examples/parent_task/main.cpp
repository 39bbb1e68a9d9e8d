// Parent tasks: children that run in parallel, and a finalize function that combines their
// outputs. The second parent shows the "all settled" pattern: a child fails, and finalize
// reports partial success instead of failing the whole workflow.
//
// Build it standalone or in the project's tree (examples/README.md); in the tree it is
// ./examples/parent_task/parent_task.

#include <chrono>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "durable_execution/durable_execution.hpp"

namespace de = durable_execution;
using namespace std::chrono_literals;

int main() {
  de::InMemoryTaskExecutionsStorage storage;
  // A short loop interval: the parent's children finish on this executor, so the engine is
  // woken at once anyway; the interval only paces polling for other processes' work.
  de::DurableExecutor executor{storage, {.background_process_intra_batch_sleep = 20ms}};

  // Two leaf tasks the parents fan out to.
  auto fetch_price =
      executor.task({.id = "fetch_price", .timeout = 1s}, [](const std::string& item) {
        if (item == "unknown") {
          // Non-retryable: no point asking again.
          throw de::DurableExecutionError::non_retryable("no price for " + item);
        }
        return static_cast<int>(item.size()) * 100;  // cents
      });
  auto fetch_stock = executor.task({.id = "fetch_stock", .timeout = 1s},
                                   [](const std::string& item) { return item == "pen" ? 3 : 0; });

  // 1. A parent with two parallel children and a finalize function combining their outputs.
  //    run_parent returns its own output and the children; finalize sees
  //    ParentTaskOutput<std::string>{output, children} once both finished. The parent's output
  //    type is what finalize returns (std::string here).
  auto quote = executor.parent_task(
      {.id = "quote", .timeout = 1s},
      [&](const std::string& item) {
        return de::ParentRunResult<std::string>{
            item, {de::child(fetch_price, item), de::child(fetch_stock, item)}};
      },
      [](const de::ParentTaskOutput<std::string>& p) {
        // Children results are in declaration order; outputs stay JSON until read as a type.
        const int cents = p.children[0].output_as<int>();
        const int stock = p.children[1].output_as<int>();
        return p.output + ": " + std::to_string(cents) + " cents, " + std::to_string(stock) +
               " in stock";
      });

  // 2. Promise.allSettled: one child per item; a failed child does not fail the parent, the
  //    finalize function sees its error and reports what succeeded.
  auto price_all = executor.parent_task(
      {.id = "price_all", .timeout = 1s},
      [&](const std::vector<std::string>& items) {
        de::ParentRunResult<de::Empty> r;
        for (const auto& item : items) r.children.push_back(de::child(fetch_price, item));
        return r;
      },
      [](const de::ParentTaskOutput<de::Empty>& p) {
        int priced = 0;
        int failed = 0;
        std::string errors;
        for (const auto& c : p.children) {
          if (c.is_completed()) {
            ++priced;
          } else {
            ++failed;
            errors += c.error ? c.error->message : "unknown error";
          }
        }
        // Throwing here would make the parent finalize_failed; partial success is a result.
        return std::to_string(priced) + " priced, " + std::to_string(failed) + " failed (" +
               errors + ")";
      });

  executor.start();

  auto q = executor.enqueue_task(quote, "pen").wait_and_get_finished_execution({.timeout = 5s});
  std::cout << "quote: " << de::to_string(q.status) << ", output: " << q.output.value_or("")
            << "\n";

  auto all = executor.enqueue_task(price_all, std::vector<std::string>{"pen", "unknown", "book"})
                 .wait_and_get_finished_execution({.timeout = 5s});
  std::cout << "price_all: " << de::to_string(all.status) << ", output: " << all.output.value_or("")
            << "\n";

  executor.shutdown();
  return q.output == "pen: 300 cents, 3 in stock" &&
                 all.status == de::TaskExecutionStatus::completed &&
                 all.output == "2 priced, 1 failed (no price for unknown)"
             ? 0
             : 1;
}
