// Storage batching: many threads' storage calls share one call to the wrapped storage.
//
// Part 1 wraps a store in TaskExecutionsStorageWithBatching and has 16 threads update their own
// rows at once: the updates reach the store in far fewer calls than were made (what it prints),
// and each thread still gets its own result. On PostgreSQL each saved call is a round trip and a
// transaction. Part 2 turns the same wrapper on for an executor (enable_storage_batching) and
// reads what it did from executor.stats().
//
// Build it standalone or in the project's tree (examples/README.md); in the tree it is
// ./examples/batching_storage/batching_storage.

#include <atomic>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "durable_execution/durable_execution.hpp"

namespace de = durable_execution;
using namespace std::chrono_literals;

namespace {

/** A store that takes 2 ms per update call, as a database round trip would, and counts them. */
class SlowStore final : public de::ForwardingTaskExecutionsStorage {
 public:
  using ForwardingTaskExecutionsStorage::ForwardingTaskExecutionsStorage;
  void update_many_by_id(const std::vector<de::UpdateByIdRequest>& requests) override {
    calls.fetch_add(1);
    std::this_thread::sleep_for(2ms);
    ForwardingTaskExecutionsStorage::update_many_by_id(requests);
  }
  std::atomic<int> calls{0};
};

}  // namespace

int main() {
  // 1. The wrapper on its own.
  de::InMemoryTaskExecutionsStorage memory;
  SlowStore slow{memory};
  de::TaskExecutionsStorageWithBatching batching{slow, {.window = 1000us, .max_batch_size = 100}};

  constexpr int kThreads = 16;
  constexpr int kUpdatesPerThread = 20;
  for (int t = 0; t < kThreads; ++t) {
    de::NewTaskExecution n;
    n.task_id = "counter";
    n.execution_id = "row_" + std::to_string(t);
    n.timeout = 1s;
    n.input = "0";
    batching.insert_many({de::make_task_execution_record(de::now_timestamp(), std::move(n))});
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&batching, t] {
      for (int i = 1; i <= kUpdatesPerThread; ++i) {
        de::TaskExecutionUpdate u;
        u.output = std::to_string(i);
        batching.update_many_by_id({{"row_" + std::to_string(t),
                                     {},
                                     de::normalize_update(de::now_timestamp(), std::move(u))}});
      }
    });
  }
  for (auto& th : threads) th.join();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  const auto stats = batching.stats().at("update_many_by_id");
  std::cout << kThreads * kUpdatesPerThread << " updates from " << kThreads << " threads reached "
            << "the store in " << slow.calls.load() << " calls (" << ms << " ms; alone they would "
            << "take about " << kThreads * kUpdatesPerThread * 2 << " ms one after the other)\n"
            << "  mean " << stats.mean_calls_per_batch << " calls per batch, largest "
            << stats.max_calls_per_batch << ", mean wait " << stats.mean_wait_ms << " ms\n";
  const auto row = batching.get_many_by_id({{"row_3", {}}}).front();
  const bool row_ok = row && row->output == std::to_string(kUpdatesPerThread);
  std::cout << "  row_3 ends with output " << (row ? row->output.value_or("?") : "?") << "\n";

  // 2. The same wrapper around an executor's storage.
  de::InMemoryTaskExecutionsStorage storage;
  de::DurableExecutor executor{storage,
                               {.enable_storage_batching = true,
                                .storage_batching = {.window = 200us, .max_batch_size = 100}}};
  auto square = executor.task({.id = "square", .timeout = 1s}, [](const int& x) { return x * x; });
  executor.start();
  std::vector<de::TaskExecutionHandle<int>> handles;
  for (int i = 0; i < 100; ++i) handles.push_back(executor.enqueue_task(square, i));
  int sum = 0;
  for (auto& h : handles) sum += *h.wait_and_get_finished_execution({.timeout = 10s}).output;
  std::cout << "sum of 100 squares: " << sum << "\n";
  for (const auto& [method, b] : executor.stats().storage_batching) {
    if (b.calls == 0) continue;
    std::cout << "  " << method << ": " << b.calls << " calls in " << b.batches << " batches ("
              << b.bypassed << " sent alone, too large to batch)\n";
  }
  executor.shutdown();
  return row_ok && sum == 328350 ? 0 : 1;  // each update landed last-wins; every task ran
}
