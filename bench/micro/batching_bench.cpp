// batching_bench: 64 threads, each doing single updates by id (one request per call, its own
// row) against PostgreSQL, straight to the storage and through TaskExecutionsStorageWithBatching.
// Reports updates/s and round trips per update: the calls that reach the PostgreSQL storage,
// each one transaction, divided by the updates made.
//
//   DE_BENCH_PG_URL=postgresql://postgres@127.0.0.1:5432/postgres
//   build/release/bench/micro/batching_bench
//
// Without DE_BENCH_PG_URL every benchmark is skipped with a message. The variants run
// alternated, DE_BENCH_ROUNDS rounds (default 3), so a noisy machine affects both alike. The
// schema de_batching_bench_<pid> is created on first use and dropped at exit.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <tuple>
#include <vector>

#include "durable_execution/batching_storage.hpp"
#include "durable_execution/forwarding_storage.hpp"
#include "durable_execution/postgres/postgres_storage.hpp"

namespace de = durable_execution;

namespace {

constexpr int kThreads = 64;

const char* pg_url() { return std::getenv("DE_BENCH_PG_URL"); }

std::string schema_name() { return "de_batching_bench_" + std::to_string(::getpid()); }

/** Counts the update calls that reach the wrapped storage (each one round trip). */
class CountingStorage final : public de::ForwardingTaskExecutionsStorage {
 public:
  using ForwardingTaskExecutionsStorage::ForwardingTaskExecutionsStorage;
  void update_many_by_id(const std::vector<de::UpdateByIdRequest>& requests) override {
    calls.fetch_add(1, std::memory_order_relaxed);
    ForwardingTaskExecutionsStorage::update_many_by_id(requests);
  }
  std::atomic<std::int64_t> calls{0};
};

struct Fixture {
  std::unique_ptr<de::PostgresTaskExecutionsStorage> postgres;
  std::unique_ptr<CountingStorage> counting;
  /** Per max_batches_in_flight. */
  std::map<std::int32_t, std::unique_ptr<de::TaskExecutionsStorageWithBatching>> batching;
  std::atomic<std::int64_t> updates{0};
};

std::mutex fixtures_mutex;
std::map<std::int32_t, std::unique_ptr<Fixture>> fixtures;

/** One fixture per pool size, made once: the PostgreSQL storage, its rows, the wrappers. */
Fixture& fixture(std::int32_t pool_size) {
  std::lock_guard lock(fixtures_mutex);
  auto& f = fixtures[pool_size];
  if (!f) {
    f = std::make_unique<Fixture>();
    f->postgres = std::make_unique<de::PostgresTaskExecutionsStorage>(
        pg_url(), de::PostgresStorageOptions{.schema = schema_name(),
                                             .table_name = "pool_" + std::to_string(pool_size),
                                             .pool_size = pool_size,
                                             .notify = false});
    f->postgres->delete_all();
    std::vector<de::TaskExecutionRecord> rows;
    for (int i = 0; i < kThreads; ++i) {
      de::NewTaskExecution n;
      n.task_id = "bench";
      n.execution_id = "row_" + std::to_string(i);
      n.timeout = std::chrono::milliseconds{1000};
      n.input = "null";
      rows.push_back(de::make_task_execution_record(de::now_timestamp(), std::move(n)));
    }
    f->postgres->insert_many(rows);
    f->counting = std::make_unique<CountingStorage>(*f->postgres);
    for (const std::int32_t in_flight : {1, 2, 4}) {
      f->batching[in_flight] = std::make_unique<de::TaskExecutionsStorageWithBatching>(
          *f->counting, de::StorageBatchingOptions{.max_batches_in_flight = in_flight});
    }
  }
  return *f;
}

void drop_schema() {
  if (pg_url() == nullptr) return;
  try {
    pqxx::connection c{pg_url()};
    pqxx::nontransaction tx{c};
    tx.exec("SET client_min_messages = warning");
    tx.exec("DROP SCHEMA IF EXISTS \"" + schema_name() + "\" CASCADE");
    tx.commit();
  } catch (const std::exception& e) {
    std::cerr << "warning: could not drop schema " << schema_name() << ": " << e.what() << "\n";
  }
}

/** `in_flight` 0: straight to the storage; else through the wrapper with that many batches. */
void single_updates(benchmark::State& state, std::int32_t in_flight, std::int32_t pool_size) {
  if (pg_url() == nullptr) {
    state.SkipWithError("set DE_BENCH_PG_URL to a PostgreSQL server to run this benchmark");
    return;
  }
  auto& f = fixture(pool_size);
  de::TaskExecutionsStorage& storage =
      in_flight > 0 ? static_cast<de::TaskExecutionsStorage&>(*f.batching.at(in_flight))
                    : *f.counting;
  if (state.thread_index() == 0) {  // before the start barrier: no thread is updating yet
    f.counting->calls.store(0);
    f.updates.store(0);
  }
  const std::string id = "row_" + std::to_string(state.thread_index());
  std::int64_t n = 0;
  for (auto _ : state) {
    de::TaskExecutionUpdate u;
    u.output = std::to_string(++n);
    storage.update_many_by_id({{id, {}, de::normalize_update(de::now_timestamp(), std::move(u))}});
    f.updates.fetch_add(1, std::memory_order_relaxed);  // before the stop barrier
  }
  state.counters["updates_per_s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
  if (state.thread_index() == 0) {
    // After the stop barrier every thread's updates are counted; the other threads do not set
    // this counter, so its sum over threads is thread 0's value.
    state.counters["round_trips_per_update"] = benchmark::Counter(
        static_cast<double>(f.counting->calls.load()) / static_cast<double>(f.updates.load()));
  }
}

void register_all() {
  int rounds = 3;
  if (const char* r = std::getenv("DE_BENCH_ROUNDS")) rounds = std::max(1, std::atoi(r));
  for (int round = 1; round <= rounds; ++round) {
    const auto suffix = "/round:" + std::to_string(round);
    for (const auto& [name, in_flight, pool] :
         {std::tuple{"direct/pool:8", 0, 8}, std::tuple{"batching/in_flight:1/pool:8", 1, 8},
          std::tuple{"batching/in_flight:2/pool:8", 2, 8},
          std::tuple{"batching/in_flight:4/pool:8", 4, 8}, std::tuple{"direct/pool:64", 0, 64}}) {
      benchmark::RegisterBenchmark(
          ("pg_single_updates_64_threads/" + std::string{name} + suffix).c_str(),
          [in_flight = in_flight, pool = pool](benchmark::State& s) {
            single_updates(s, in_flight, pool);
          })
          ->Threads(kThreads)
          ->UseRealTime()
          ->MinTime(1.0);
    }
  }
}

}  // namespace

// Its own main, not benchmark_main: the storages close and the schema is dropped after the run,
// before libpqxx's statics go.
int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (pg_url() == nullptr) {
    std::cerr << "DE_BENCH_PG_URL is not set: the PostgreSQL benchmarks are skipped\n";
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  fixtures.clear();
  drop_schema();
  return 0;
}
