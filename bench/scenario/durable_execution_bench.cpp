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
//   durable_execution_bench --scenario reference --storage memory [--iterations N] [--json]
//     The reference engine's storage benchmark (SPEC.md §4.4): per iteration, on a fresh store and
//     a fresh executor, 100 parents with 50 children and a finalize task, 100 sequential chains of
//     4 tasks and 100 polling tasks, every task function sleeping 1 ms; one warm-up iteration,
//     then N counted ones (default 2). The 300 top-level executions are enqueued one at a time,
//     or by --enqueue-threads N threads concurrently (the reference's Promise.all: all in flight
//     at once, as many running as its client allows).
//
// Every scenario takes --storage memory|sqlite|postgres; sqlite uses a fresh database file (a
// temporary file removed at exit, or --db PATH, any existing file there being deleted first).
// Every scenario takes --batching: each executor runs with enable_storage_batching (the JSON
// "batching" field says which). With DE_BENCH_VERBOSE set, each executor's storage stats (per
// method: calls, mean and p99 latency, calls/s) and what batching did are printed.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "durable_execution/durable_execution.hpp"
#ifdef DE_BENCH_WITH_SQLITE
#include "durable_execution/sqlite/sqlite_storage.hpp"
#endif
#ifdef DE_BENCH_WITH_POSTGRES
#include <spawn.h>
#include <sys/wait.h>

#include <pqxx/pqxx>

#include "durable_execution/postgres/postgres_storage.hpp"
extern char** environ;
#endif

namespace de = durable_execution;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string scenario = "throughput";
  std::string storage = "memory";
  std::string db_path{};
  std::string pg_url{};
  std::string pg_schema{};  // --role worker: the schema the parent process made
  std::string role{};       // "worker": the pickup scenario's executor process
  int tasks = 10000;
  int iterations = 2;
  bool json = false;
  bool batching = false;    // --batching: enable_storage_batching on every executor
  int enqueue_threads = 1;  // --enqueue-threads: the reference scenario's concurrent enqueues
};

[[noreturn]] void usage(const std::string& error) {
  std::cerr << "error: " << error << "\n"
            << "usage: durable_execution_bench --scenario throughput|latency|reference|pickup "
               "[--storage memory|sqlite|postgres] [--db PATH] [--pg-url URL] [--tasks N] "
               "[--iterations N] [--enqueue-threads N] [--batching] [--json]\n";
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
    } else if (arg == "--db") {
      a.db_path = value();
      if (a.db_path.empty()) usage("--db needs a path");
    } else if (arg == "--pg-url") {
      a.pg_url = value();
    } else if (arg == "--pg-schema") {
      a.pg_schema = value();
    } else if (arg == "--role") {
      a.role = value();
    } else if (arg == "--tasks") {
      a.tasks = std::stoi(value());
      if (a.tasks <= 0) usage("--tasks must be positive");
    } else if (arg == "--iterations") {
      a.iterations = std::stoi(value());
      if (a.iterations <= 0) usage("--iterations must be positive");
    } else if (arg == "--enqueue-threads") {
      a.enqueue_threads = std::stoi(value());
      if (a.enqueue_threads <= 0) usage("--enqueue-threads must be positive");
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg == "--batching") {
      a.batching = true;
    } else {
      usage("unknown argument " + arg);
    }
  }
  if (a.scenario != "throughput" && a.scenario != "latency" && a.scenario != "reference" &&
      a.scenario != "pickup") {
    usage("unknown scenario " + a.scenario);
  }
  if (a.storage != "memory" && a.storage != "sqlite" && a.storage != "postgres") {
    usage("unknown storage " + a.storage);
  }
  if (a.storage == "postgres" && a.pg_url.empty()) usage("--storage postgres needs --pg-url URL");
  if (!a.pg_url.empty() && a.storage != "postgres") usage("--pg-url needs --storage postgres");
  if (a.scenario == "pickup" && a.storage != "postgres") {
    usage("--scenario pickup (two processes) needs --storage postgres");
  }
#ifndef DE_BENCH_WITH_POSTGRES
  if (a.storage == "postgres") {
    std::cerr << "error: --storage postgres is not available: this program was built without the "
                 "PostgreSQL backend (configure with -DDE_WITH_POSTGRES=ON)\n";
    std::exit(2);
  }
#endif
  if (!a.db_path.empty() && a.storage != "sqlite") usage("--db needs --storage sqlite");
#ifndef DE_BENCH_WITH_SQLITE
  if (a.storage == "sqlite") {
    std::cerr << "error: --storage sqlite is not available: this program was built without the "
                 "SQLite backend (configure with -DDE_WITH_SQLITE=ON)\n";
    std::exit(2);
  }
#endif
  return a;
}

// Temporary database files, removed at exit, also when the program exits early with an error
// (std::exit skips destructors of locals).
std::vector<std::string>& temp_files() {
  static std::vector<std::string> files;
  return files;
}

void remove_database_files(const std::string& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    std::filesystem::remove(path + suffix, ec);
  }
}

void remove_temp_files() {
  for (const auto& path : temp_files()) remove_database_files(path);
}

#ifdef DE_BENCH_WITH_POSTGRES
// Schemas made for runs, dropped at exit (also on early exits, like the temp files).
std::vector<std::pair<std::string, std::string>>& temp_schemas() {
  static std::vector<std::pair<std::string, std::string>> schemas;  // url, schema
  return schemas;
}

void drop_schema(const std::string& url, const std::string& schema) {
  try {
    pqxx::connection c{url};
    pqxx::nontransaction tx{c};
    tx.exec("SET client_min_messages = warning");
    tx.exec("DROP SCHEMA IF EXISTS \"" + schema + "\" CASCADE");
    tx.commit();
  } catch (const std::exception& e) {
    std::cerr << "warning: could not drop schema " << schema << ": " << e.what() << "\n";
  }
}

void drop_temp_schemas() {
  for (const auto& [url, schema] : temp_schemas()) drop_schema(url, schema);
  temp_schemas().clear();
}

/** A new schema name for one run: "de_bench_<pid>_<n>", dropped at exit. */
std::string new_bench_schema(const std::string& url) {
  static int counter = 0;
  const auto schema = "de_bench_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  if (temp_schemas().empty()) std::atexit(drop_temp_schemas);
  temp_schemas().emplace_back(url, schema);
  return schema;
}
#endif

/**
 * @brief One fresh store for a run: in memory, a SQLite file that did not exist before (the
 * --db path, emptied first, or a new temporary file), or a new PostgreSQL schema (dropped at
 * exit).
 */
class BenchStorage {
 public:
  explicit BenchStorage(const Args& args) {
    if (args.storage == "memory") {
      storage_ = std::make_unique<de::InMemoryTaskExecutionsStorage>();
      return;
    }
#ifdef DE_BENCH_WITH_POSTGRES
    if (args.storage == "postgres") {
      schema_ = args.pg_schema.empty() ? new_bench_schema(args.pg_url) : args.pg_schema;
      storage_ = std::make_unique<de::PostgresTaskExecutionsStorage>(
          args.pg_url, de::PostgresStorageOptions{.schema = schema_});
      return;
    }
#endif
#ifdef DE_BENCH_WITH_SQLITE
    if (args.db_path.empty()) {
      static int counter = 0;
      path_ = (std::filesystem::temp_directory_path() /
               ("durable_execution_bench_" + std::to_string(::getpid()) + "_" +
                std::to_string(counter++) + ".db"))
                  .string();
      if (temp_files().empty()) std::atexit(remove_temp_files);
      temp_files().push_back(path_);
    } else {
      path_ = args.db_path;
    }
    remove_database_files(path_);
    storage_ = std::make_unique<de::SqliteTaskExecutionsStorage>(path_);
#endif
  }
  BenchStorage(const BenchStorage&) = delete;
  BenchStorage& operator=(const BenchStorage&) = delete;
  BenchStorage(BenchStorage&&) = delete;
  BenchStorage& operator=(BenchStorage&&) = delete;
  ~BenchStorage() = default;

  [[nodiscard]] de::TaskExecutionsStorage& get() { return *storage_; }
  [[nodiscard]] const std::string& schema() const { return schema_; }

 private:
  std::string path_{};
  std::string schema_{};
  std::unique_ptr<de::TaskExecutionsStorage> storage_{};
};

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

de::DurableExecutorOptions bench_options(const Args& args) {
  de::DurableExecutorOptions o;
  o.log_level = de::LogLevel::error;
  o.enable_storage_batching = args.batching;
  return o;
}

// With DE_BENCH_VERBOSE set: per-storage-method and per-process statistics.
void print_verbose_stats(const de::ExecutorStats& stats) {
  if (std::getenv("DE_BENCH_VERBOSE") == nullptr) return;
  for (const auto& [name, c] : stats.storage_calls) {
    std::printf("  storage %s: %lld calls, mean %.3f ms, p99 %.3f ms, %.0f calls/s\n", name.c_str(),
                static_cast<long long>(c.count), c.mean_duration_ms, c.p99_duration_ms,
                c.calls_per_second);
  }
  for (const auto& [name, b] : stats.storage_batching) {
    if (b.calls == 0) continue;
    std::printf(
        "  batching %s: %lld calls (%lld bypassed) in %lld batches, %.2f calls and %.1f requests "
        "per batch (max %lld calls), wait mean %.3f ms, p99 %.3f ms, %lld split calls\n",
        name.c_str(), static_cast<long long>(b.calls), static_cast<long long>(b.bypassed),
        static_cast<long long>(b.batches), b.mean_calls_per_batch, b.mean_requests_per_batch,
        static_cast<long long>(b.max_calls_per_batch), b.mean_wait_ms, b.p99_wait_ms,
        static_cast<long long>(b.split_calls));
  }
  for (const auto& [name, p] : stats.processes) {
    std::printf("  process %s: %lld batches, %lld items, mean %.3f ms\n", name.c_str(),
                static_cast<long long>(p.batches), static_cast<long long>(p.items),
                p.mean_batch_duration_ms);
  }
}

Result throughput(de::TaskExecutionsStorage& storage, const Args& args) {
  const int n = args.tasks;
  de::DurableExecutor executor{storage, bench_options(args)};
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
  print_verbose_stats(stats);
  executor.shutdown();
  return r;
}

Result latency(de::TaskExecutionsStorage& storage, const Args& args) {
  const int n = args.tasks;
  de::DurableExecutor executor{storage, bench_options(args)};

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
  print_verbose_stats(executor.stats());
  executor.shutdown();
  return r;
}

// ---- pickup scenario (two processes)
// -------------------------------------------------------------

#ifdef DE_BENCH_WITH_POSTGRES
std::int64_t wall_clock_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/**
 * The executor process of the pickup scenario: runs a task that returns the wall-clock time at
 * which its run started, until its parent closes stdin... or, simply, until killed by the parent.
 */
int pickup_worker(const Args& args) {
  BenchStorage storage{args};
  de::DurableExecutor executor{storage.get(), bench_options(args)};
  auto stamp = executor.task({.id = "stamp", .timeout = std::chrono::seconds{60}},
                             [] { return wall_clock_us(); });
  (void)stamp;
  executor.start();
  std::printf("ready\n");
  std::fflush(stdout);
  // Bounded: the parent stops this process when it is done.
  std::this_thread::sleep_for(std::chrono::minutes{10});
  return 0;
}

/**
 * Cross-process pick-up: this process only enqueues (a client, no executor); another process
 * runs the executor. Per task: the time from the enqueue call in this process to the start of
 * its run in the other one (both read the same wall clock), one task at a time. With
 * LISTEN/NOTIFY the executor is woken at once instead of at its next poll.
 */
Result pickup(const Args& args, const char* self) {
  BenchStorage storage{args};  // creates the schema; the worker opens the same one
  const std::string schema = storage.schema();
  std::vector<std::string> argv_strings{self,       "--scenario", "pickup",    "--storage",
                                        "postgres", "--pg-url",   args.pg_url, "--pg-schema",
                                        schema,     "--role",     "worker"};
  if (args.batching) argv_strings.emplace_back("--batching");
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, self, nullptr, nullptr, argv.data(), environ) != 0) {
    std::cerr << "could not start the worker process\n";
    std::exit(1);
  }
  auto stamp = de::Task<de::Empty, std::int64_t>::reference(
      {.id = "stamp", .timeout = std::chrono::seconds{60}});
  de::DurableExecutorClient client{
      storage.get(), {stamp.descriptor()}, {.log_level = de::LogLevel::error}};
  // Warm-up: wait until the worker runs tasks at all.
  {
    auto h = client.enqueue_task(stamp, de::Empty{});
    auto e = h.wait_and_get_finished_execution(
        {.polling_interval = std::chrono::milliseconds{5}, .timeout = std::chrono::minutes{1}});
    if (e.status != de::TaskExecutionStatus::completed) std::exit(1);
  }
  std::vector<double> latencies;
  const auto t0 = Clock::now();
  for (int i = 0; i < args.tasks; ++i) {
    const auto enqueued_us = wall_clock_us();
    auto h = client.enqueue_task(stamp, de::Empty{});
    auto e = h.wait_and_get_finished_execution(
        {.polling_interval = std::chrono::milliseconds{2}, .timeout = std::chrono::minutes{1}});
    if (e.status != de::TaskExecutionStatus::completed || !e.output) std::exit(1);
    latencies.push_back(static_cast<double>(*e.output - enqueued_us) / 1000.0);
  }
  Result r;
  r.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  r.tasks_per_s = static_cast<double>(args.tasks) / (r.wall_ms / 1000.0);
  r.p50_ms = percentile(latencies, 0.50);
  r.p99_ms = percentile(latencies, 0.99);
  kill(pid, SIGKILL);
  int status = 0;
  (void)waitpid(pid, &status, 0);
  return r;
}
#endif

// ---- reference scenario ------------------------------------------------------------------------

// The reference benchmark's shape (SPEC.md §4.4 defaults).
constexpr int kParents = 100;
constexpr int kChildrenPerParent = 50;
constexpr int kSequentialChains = 100;
constexpr int kSequentialLength = 4;
constexpr int kPollingTasks = 100;
// A poll reports done on this attempt; the polling task sleeps kPollSleep before each poll.
constexpr int kPollDoneAttempt = 3;
constexpr std::int32_t kPollMaxAttempts = 10;
constexpr auto kPollSleep = std::chrono::milliseconds{10};
// Bound on one iteration's wait: a hang is an error, not a stuck benchmark.
constexpr auto kIterationTimeout = std::chrono::seconds{120};
constexpr auto kTaskTimeout = std::chrono::seconds{60};

struct ChildInput {
  int parent_index = 0;
  int child_index = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ChildInput, parent_index, child_index)

// Every task function of the reference benchmark sleeps 1 ms (simulated work), so the runs must
// overlap for an iteration to be fast.
void simulated_work() { std::this_thread::sleep_for(std::chrono::milliseconds{1}); }

/** @brief Poll attempts per polling input; the poll function runs on many worker threads. */
class PollCounter {
 public:
  int next(const std::string& input) {
    const std::lock_guard lock{mutex_};
    return ++attempts_[input];
  }
  [[nodiscard]] std::int64_t total() const {
    const std::lock_guard lock{mutex_};
    std::int64_t sum = 0;
    for (const auto& [input, n] : attempts_) sum += n;
    return sum;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, int> attempts_;
};

struct IterationResult {
  double wall_ms = 0;
  double enqueue_ms = 0;
  std::map<std::string, double> kind_mean_ms;  // parent, sequential, polling
  std::int64_t executions = 0;
  std::int32_t worker_threads = 0;
  std::vector<std::string> failures;
};

double mean_of(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

/**
 * Calls f(0) ... f(n - 1) on `threads` threads (each takes the next index until none is left);
 * an exception of any call is rethrown after all threads have stopped.
 */
template <class F>
void concurrently(int n, int threads, F f) {
  std::atomic<int> next{0};
  std::mutex mutex;
  std::exception_ptr error;
  auto work = [&] {
    for (int i; (i = next++) < n;) {
      try {
        f(i);
      } catch (...) {
        const std::lock_guard lock{mutex};
        if (!error) error = std::current_exception();
        next = n;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min(threads, n); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

IterationResult reference_iteration(const Args& args) {
  BenchStorage storage{args};
  de::DurableExecutor executor{storage.get(), bench_options(args)};
  const de::TaskOptions defaults{.id = "", .timeout = kTaskTimeout};
  auto with_id = [&](const char* id) {
    auto o = defaults;
    o.id = id;
    return o;
  };

  auto child_task = executor.task(with_id("child"), [](const ChildInput& in) {
    simulated_work();
    return "child_output_" + std::to_string(in.parent_index) + "_" + std::to_string(in.child_index);
  });
  // The finalize step is a task (as in the reference): it runs as one more child execution.
  auto finalize = executor.task(
      with_id("finalize"), [](const de::ParentTaskOutput<std::string>& p) -> std::string {
        simulated_work();
        if (p.output != "parent_output") {
          throw de::DurableExecutionError::non_retryable("Invalid parent output");
        }
        if (p.children.size() != static_cast<std::size_t>(kChildrenPerParent)) {
          throw de::DurableExecutionError::non_retryable(
              "Expected " + std::to_string(kChildrenPerParent) + " children, got " +
              std::to_string(p.children.size()));
        }
        int failed = 0;
        for (std::size_t i = 0; i < p.children.size(); ++i) {
          const auto& c = p.children[i];
          // Appended, not "_" + to_string(i): GCC 12 warns (-Wrestrict, a false positive)
          // about the prepend in std::operator+(const char*, std::string&&) at -O2.
          std::string suffix{"_"};
          suffix += std::to_string(i);
          if (!c.is_completed()) {
            ++failed;
            continue;
          }
          const auto out = c.output_as<std::string>();
          if (out.rfind("child_output_", 0) != 0 || out.size() < suffix.size() ||
              out.compare(out.size() - suffix.size(), suffix.size(), suffix) != 0) {
            throw de::DurableExecutionError::non_retryable("Unexpected child output " + out);
          }
        }
        if (failed > 0) {
          throw de::DurableExecutionError::non_retryable(std::to_string(failed) + "/" +
                                                         std::to_string(p.children.size()) +
                                                         " children failed");
        }
        return "finalize_output";
      });
  auto parent_task = executor.parent_task(
      with_id("parent"),
      [child_task](const int& parent_index) {
        simulated_work();
        de::ParentRunResult<std::string> r{"parent_output", {}};
        r.children.reserve(static_cast<std::size_t>(kChildrenPerParent));
        for (int i = 0; i < kChildrenPerParent; ++i) {
          r.children.push_back(de::child(child_task, ChildInput{parent_index, i}));
        }
        return r;
      },
      finalize);

  auto single = executor.task(with_id("single"), [](const std::string& in) {
    simulated_work();
    return "single_output_" + in;
  });
  auto sequential = executor.sequential_tasks("sequential", single, single, single, single);

  PollCounter poll_counter;
  auto poll = executor.task(with_id("poll"), [&poll_counter](const std::string& in) {
    simulated_work();
    if (poll_counter.next(in) < kPollDoneAttempt) return de::PollResult<std::string>{};
    return de::PollResult<std::string>{true, "poll_output_" + in};
  });
  auto polling = executor.polling_task("polling", poll, kPollMaxAttempts, kPollSleep);

  executor.start();

  const auto t0 = Clock::now();
  std::vector<std::optional<de::TaskExecutionHandle<std::string>>> parents(kParents);
  std::vector<std::optional<de::TaskExecutionHandle<std::string>>> chains(kSequentialChains);
  std::vector<std::optional<de::TaskExecutionHandle<de::PollingResult<std::string>>>> pollings(
      kPollingTasks);
  // The reference's Promise.all: every enqueue in flight at once, as many concurrently as the
  // client runs (--enqueue-threads), in this order.
  concurrently(kParents + kSequentialChains + kPollingTasks, args.enqueue_threads, [&](int i) {
    if (i < kParents) {
      parents[static_cast<std::size_t>(i)].emplace(executor.enqueue_task(parent_task, i));
    } else if ((i -= kParents) < kSequentialChains) {
      chains[static_cast<std::size_t>(i)].emplace(
          executor.enqueue_task(sequential, std::string{"test"}));
    } else {
      i -= kSequentialChains;
      pollings[static_cast<std::size_t>(i)].emplace(
          executor.enqueue_task(polling, "p" + std::to_string(i)));
    }
  });
  const auto t_enqueued = Clock::now();

  IterationResult r;
  const auto deadline = t0 + kIterationTimeout;
  std::map<std::string, std::vector<double>> latencies;
  // Waits for one top-level execution (bounded by the iteration deadline), checks it completed
  // with the expected output, and records its enqueue-to-finish latency.
  auto check = [&](const std::string& kind, int index, const auto& handle, auto is_expected) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const std::string what =
        kind + " " + std::to_string(index) + " (" + handle.execution_id() + ")";
    try {
      auto e = handle.wait_and_get_finished_execution(
          {.polling_interval = std::chrono::milliseconds{50},
           .timeout = std::max(left, std::chrono::milliseconds{1})});
      if (e.status != de::TaskExecutionStatus::completed) {
        r.failures.push_back(what + " ended " + std::string{de::to_string(e.status)} +
                             (e.error ? ": " + e.error->message : std::string{}));
      } else if (!e.output || !is_expected(*e.output)) {
        r.failures.push_back(what + " completed with an unexpected output");
      } else {
        latencies[kind].push_back(static_cast<double>((*e.finished_at - e.created_at).count()));
      }
    } catch (const std::exception& ex) {
      r.failures.push_back(what + " did not finish: " + ex.what());
    }
  };
  for (int i = 0; i < kParents; ++i) {
    check("parent", i, *parents[static_cast<std::size_t>(i)],
          [](const std::string& out) { return out == "finalize_output"; });
  }
  std::string chain_output = "test";
  for (int i = 0; i < kSequentialLength; ++i) chain_output = "single_output_" + chain_output;
  for (int i = 0; i < kSequentialChains; ++i) {
    check("sequential", i, *chains[static_cast<std::size_t>(i)],
          [&](const std::string& out) { return out == chain_output; });
  }
  for (int i = 0; i < kPollingTasks; ++i) {
    const std::string expected = "poll_output_p" + std::to_string(i);
    check("polling", i, *pollings[static_cast<std::size_t>(i)],
          [&](const de::PollingResult<std::string>& out) {
            return out.is_success && out.output == expected;
          });
  }
  const auto t1 = Clock::now();

  r.wall_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  r.enqueue_ms = std::chrono::duration<double, std::milli>(t_enqueued - t0).count();
  for (const char* kind : {"parent", "sequential", "polling"}) {
    r.kind_mean_ms[kind] = mean_of(latencies[kind]);
  }
  // Executions created: a parent, its children and its finalize task; a chain and its steps; a
  // polling task and, per poll attempt, an inner parent, the poll and the inner finalize parent.
  r.executions = std::int64_t{kParents} * (kChildrenPerParent + 2) +
                 std::int64_t{kSequentialChains} * (kSequentialLength + 1) + kPollingTasks +
                 3 * poll_counter.total();
  const auto stats = executor.stats();
  r.worker_threads = stats.worker_threads;
  print_verbose_stats(stats);
  executor.shutdown();
  return r;
}

int reference(const Args& args) {
  std::vector<double> iterations_ms;
  std::map<std::string, std::vector<double>> kind_means;
  std::int64_t executions = 0;
  for (int i = 0; i <= args.iterations; ++i) {
    const bool warmup = i == 0;
    const auto r = reference_iteration(args);
    const std::string name = warmup ? "warm-up" : "iteration " + std::to_string(i);
    if (!r.failures.empty()) {
      std::fprintf(stderr, "%s: %zu top-level executions did not complete as expected:\n",
                   name.c_str(), r.failures.size());
      for (const auto& f : r.failures) std::fprintf(stderr, "  %s\n", f.c_str());
      return 1;
    }
    std::printf(
        "%s: %.1f ms (enqueue %.1f ms), %lld executions, %d worker threads; mean "
        "enqueue-to-finish: parent %.1f ms, sequential %.1f ms, polling %.1f ms\n",
        name.c_str(), r.wall_ms, r.enqueue_ms, static_cast<long long>(r.executions),
        r.worker_threads, r.kind_mean_ms.at("parent"), r.kind_mean_ms.at("sequential"),
        r.kind_mean_ms.at("polling"));
    std::fflush(stdout);
    if (warmup) continue;
    iterations_ms.push_back(r.wall_ms);
    for (const auto& [kind, ms] : r.kind_mean_ms) kind_means[kind].push_back(ms);
    executions = r.executions;
  }
  const double mean = mean_of(iterations_ms);
  const double min = *std::min_element(iterations_ms.begin(), iterations_ms.end());
  const double max = *std::max_element(iterations_ms.begin(), iterations_ms.end());
  std::printf(
      "scenario=reference storage=%s batching=%s iterations=%d executions=%lld "
      "enqueue_threads=%d\n",
      args.storage.c_str(), args.batching ? "on" : "off", args.iterations,
      static_cast<long long>(executions), args.enqueue_threads);
  std::printf(
      "mean %.1f ms, min %.1f ms, max %.1f ms; per kind: parent %.1f ms, sequential "
      "%.1f ms, polling %.1f ms\n",
      mean, min, max, mean_of(kind_means["parent"]), mean_of(kind_means["sequential"]),
      mean_of(kind_means["polling"]));
  if (args.json) {
    std::string list;
    for (const double ms : iterations_ms) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%s%.3f", list.empty() ? "" : ",", ms);
      list += buf;
    }
    std::printf(
        "{\"scenario\":\"reference\",\"storage\":\"%s\",\"batching\":%s,\"executions\":%lld,"
        "\"enqueue_threads\":%d,"
        "\"iterations_ms\":[%s],\"mean_ms\":%.3f,\"min_ms\":%.3f,\"max_ms\":%.3f,"
        "\"parent_mean_ms\":%.3f,\"sequential_mean_ms\":%.3f,\"polling_mean_ms\":%.3f}\n",
        args.storage.c_str(), args.batching ? "true" : "false", static_cast<long long>(executions),
        args.enqueue_threads, list.c_str(), mean, min, max, mean_of(kind_means["parent"]),
        mean_of(kind_means["sequential"]), mean_of(kind_means["polling"]));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto args = parse(argc, argv);
  try {
    if (args.scenario == "reference") {
      const int rc = reference(args);
#ifdef DE_BENCH_WITH_POSTGRES
      drop_temp_schemas();
#endif
      return rc;
    }
    Result r;
#ifdef DE_BENCH_WITH_POSTGRES
    if (args.scenario == "pickup") {
      if (args.role == "worker") return pickup_worker(args);
      r = pickup(args, argv[0]);
    }
#endif
    if (args.scenario != "pickup") {
      BenchStorage storage{args};
      r = args.scenario == "throughput" ? throughput(storage.get(), args)
                                        : latency(storage.get(), args);
    }
    std::printf("scenario=%s storage=%s batching=%s tasks=%d\n", args.scenario.c_str(),
                args.storage.c_str(), args.batching ? "on" : "off", args.tasks);
    std::printf("wall: %.1f ms, %.0f tasks/s, enqueue-to-finish p50 %.3f ms, p99 %.3f ms\n",
                r.wall_ms, r.tasks_per_s, r.p50_ms, r.p99_ms);
    for (const auto& [k, v] : r.extra) std::printf("  %s: %.1f\n", k.c_str(), v);
    if (args.json) {
      std::printf(
          "{\"scenario\":\"%s\",\"storage\":\"%s\",\"batching\":%s,\"tasks\":%d,"
          "\"wall_ms\":%.3f,\"tasks_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
          args.scenario.c_str(), args.storage.c_str(), args.batching ? "true" : "false", args.tasks,
          r.wall_ms, r.tasks_per_s, r.p50_ms, r.p99_ms);
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
#ifdef DE_BENCH_WITH_POSTGRES
  // Here, not only at exit: libpqxx's own statics are gone by the time atexit handlers run.
  drop_temp_schemas();
#endif
  return 0;
}
