// Runs an executor on a SQLite file with the crash test's tasks, all blocking, until killed.
// Usage: crash_worker <db path> <marker dir>

#include <cstdio>
#include <thread>

#include "crash_tasks.hpp"
#include "durable_execution/sqlite/sqlite_storage.hpp"

namespace de = durable_execution;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: crash_worker <db path> <marker dir>\n");
    return 2;
  }
  de::SqliteTaskExecutionsStorage storage{argv[1]};
  // No leeway: the leases this worker takes lapse at claim + timeout, so the test's recovering
  // executor need not wait the default 5 minutes.
  de::DurableExecutor executor{storage,
                               {.expire_leeway = 0ms,
                                .background_process_intra_batch_sleep = 20ms,
                                .log_level = de::LogLevel::error}};
  [[maybe_unused]] auto tasks =
      crash::register_tasks(executor, {.block = true, .marker_dir = argv[2]});
  executor.start();
  // Bounded: the test kills this process long before; if it does not, exit instead of lingering.
  std::this_thread::sleep_for(150s);
  std::_Exit(3);
}
