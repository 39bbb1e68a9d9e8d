// Scenario benchmark: end-to-end runs of the executor, printed as text and, with --json, as one
// JSON object on the last line (a stable contract: later scenarios and storages add fields and
// values, never rename them).
//
//   durable_execution_bench --scenario throughput --storage memory --tasks 10000 [--json]
//     Enqueues N no-op tasks, starts the executor, waits until all are finished. wall_ms and
//     tasks_per_s cover the run phase (start() to the last finish); the enqueue phase is printed
//     as enqueue_ms. Latency is enqueue-to-finish per task (created_at -> finished_at, whole ms).
//   durable_execution_bench --scenario latency --storage memory --tasks 200 [--json]
//     One task at a time on an idle executor: enqueue, wait for it to finish (steady clock).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "durable_execution/durable_execution.hpp"

namespace de = durable_execution;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string scenario = "throughput";
  std::string storage = "memory";
  int tasks = 10000;
  bool json = false;
};

[[noreturn]] void usage(const std::string& error) {
  std::cerr << "error: " << error << "\n"
            << "usage: durable_execution_bench --scenario throughput|latency --storage memory "
               "[--tasks N] [--json]\n";
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value for " + arg);
      return argv[++i];
    };
    if (arg == "--scenario") {
      a.scenario = value();
    } else if (arg == "--storage") {
      a.storage = value();
    } else if (arg == "--tasks") {
      a.tasks = std::stoi(value());
      if (a.tasks <= 0) usage("--tasks must be positive");
    } else if (arg == "--json") {
      a.json = true;
    } else {
      usage("unknown argument " + arg);
    }
  }
  if (a.scenario != "throughput" && a.scenario != "latency") usage("unknown scenario " + a.scenario);
  return a;
}

std::unique_ptr<de::TaskExecutionsStorage> make_storage(const std::string& name) {
  if (name == "memory") return std::make_unique<de::InMemoryTaskExecutionsStorage>();
  usage("unknown storage " + name);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

struct Result {
  double wall_ms = 0;
  double tasks_per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  std::map<std::string, double> extra;
};

de::DurableExecutorOptions bench_options() {
  de::DurableExecutorOptions o;
  o.log_level = de::LogLevel::error;
  return o;
}

Result throughput(de::TaskExecutionsStorage& storage, int n) {
  de::DurableExecutor executor{storage, bench_options()};
  auto noop = executor.task({.id = "noop", .timeout = std::chrono::seconds{60}}, [] {});
  std::vector<de::TaskExecutionHandle<de::Empty>> handles;
  handles.reserve(static_cast<std::size_t>(n));
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) handles.push_back(executor.enqueue_task(noop));
  const auto t1 = Clock::now();
  executor.start();
  // Wait with batched reads over a cursor (executions finish roughly in enqueue order), so the
  // waiting itself costs the store little: one read of up to 100 records per poll.
  std::size_t cursor = 0;
  const auto deadline = Clock::now() + std::chrono::minutes{5};
  while (cursor < handles.size()) {
    std::vector<de::GetByIdRequest> reqs;
    for (std::size_t i = cursor; i < std::min(cursor + 100, handles.size()); ++i) {
      reqs.push_back({handles[i].execution_id(), {}});
    }
    auto recs = storage.get_many_by_id(reqs);
    std::size_t advanced = 0;
    while (advanced < recs.size() && recs[advanced] && recs[advanced]->is_finished) ++advanced;
    cursor += advanced;
    if (advanced < recs.size()) {
      if (Clock::now() > deadline) {
        std::cerr << "timed out waiting for tasks\n";
        std::exit(1);
      }
      std::this_thread::sleep_for(std::chrono::microseconds{500});
    }
  }
  const auto t2 = Clock::now();
  std::vector<double> latencies;
  latencies.reserve(handles.size());
  for (auto& h : handles) {
    auto e = h.get_execution();
    if (e.status != de::TaskExecutionStatus::completed) {
      std::cerr << "task " << e.execution_id << " ended " << de::to_string(e.status) << "\n";
      std::exit(1);
    }
    latencies.push_back(static_cast<double>((*e.finished_at - e.created_at).count()));
  }
  Result r;
  // Wall time is the run phase, start() to the last execution recorded as finished; the
  // enqueue phase before it is reported separately (enqueue_ms).
  r.wall_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
  r.tasks_per_s = static_cast<double>(n) / (r.wall_ms / 1000.0);
  r.p50_ms = percentile(latencies, 0.50);
  r.p99_ms = percentile(latencies, 0.99);
  r.extra["enqueue_ms"] = std::chrono::duration<double, std::milli>(t1 - t0).count();
  const auto stats = executor.stats();
  r.extra["worker_threads"] = stats.worker_threads;
  if (std::getenv("DE_BENCH_VERBOSE") != nullptr) {
    for (const auto& [name, c] : stats.storage_calls) {
      std::printf("  storage %s: %lld calls, mean %.3f ms\n", name.c_str(),
                  static_cast<long long>(c.count), c.mean_duration_ms);
    }
    for (const auto& [name, p] : stats.processes) {
      std::printf("  process %s: %lld batches, %lld items, mean %.3f ms\n", name.c_str(),
                  static_cast<long long>(p.batches), static_cast<long long>(p.items),
                  p.mean_batch_duration_ms);
    }
  }
  executor.shutdown();
  return r;
}

Result latency(de::TaskExecutionsStorage& storage, int n) {
  de::DurableExecutor executor{storage, bench_options()};
  auto noop = executor.task({.id = "noop", .timeout = std::chrono::seconds{60}}, [] {});
  executor.start();
  std::vector<double> latencies;
  latencies.reserve(static_cast<std::size_t>(n));
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    const auto start = Clock::now();
    auto h = executor.enqueue_task(noop);
    auto e = h.wait_and_get_finished_execution(
        {.polling_interval = std::chrono::milliseconds{100}, .timeout = std::chrono::minutes{1}});
    const auto end = Clock::now();
    if (e.status != de::TaskExecutionStatus::completed) std::exit(1);
    latencies.push_back(std::chrono::duration<double, std::milli>(end - start).count());
  }
  Result r;
  r.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  r.tasks_per_s = static_cast<double>(n) / (r.wall_ms / 1000.0);
  r.p50_ms = percentile(latencies, 0.50);
  r.p99_ms = percentile(latencies, 0.99);
  executor.shutdown();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const auto args = parse(argc, argv);
  auto storage = make_storage(args.storage);
  const Result r = args.scenario == "throughput" ? throughput(*storage, args.tasks)
                                                 : latency(*storage, args.tasks);
  std::printf("scenario=%s storage=%s tasks=%d\n", args.scenario.c_str(), args.storage.c_str(),
              args.tasks);
  std::printf("wall: %.1f ms, %.0f tasks/s, enqueue-to-finish p50 %.3f ms, p99 %.3f ms\n",
              r.wall_ms, r.tasks_per_s, r.p50_ms, r.p99_ms);
  for (const auto& [k, v] : r.extra) std::printf("  %s: %.1f\n", k.c_str(), v);
  if (args.json) {
    std::printf(
        "{\"scenario\":\"%s\",\"storage\":\"%s\",\"batching\":false,\"tasks\":%d,"
        "\"wall_ms\":%.3f,\"tasks_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
        args.scenario.c_str(), args.storage.c_str(), args.tasks, r.wall_ms, r.tasks_per_s,
        r.p50_ms, r.p99_ms);
  }
  return 0;
}
