// An executor process on PostgreSQL for the multi-process test: runs the test's tasks until a
// stop file appears (bounded), appending the execution id of every leaf run to its own file.
// Usage: pg_worker <url> <schema> <dir>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "durable_execution/durable_execution.hpp"
#include "durable_execution/postgres/postgres_storage.hpp"
#include "pg_worker_tasks.hpp"

namespace de = durable_execution;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: pg_worker <url> <schema> <dir>\n");
    return 2;
  }
  const std::filesystem::path dir{argv[3]};
  std::mutex mutex;
  std::ofstream runs{dir / ("runs_" + std::to_string(::getpid())), std::ios::app};
  de::PostgresTaskExecutionsStorage storage{argv[1], {.schema = argv[2], .pool_size = 4}};
  de::DurableExecutor executor{storage,
                               {.expire_leeway = 0ms,
                                .background_process_intra_batch_sleep = 20ms,
                                .log_level = de::LogLevel::error}};
  [[maybe_unused]] auto tasks = pg_worker::register_tasks(executor, [&](const std::string& id) {
    std::lock_guard lock(mutex);
    runs << id << '\n' << std::flush;
  });
  executor.start();
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (!std::filesystem::exists(dir / "stop") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  executor.shutdown();
  return 0;
}
