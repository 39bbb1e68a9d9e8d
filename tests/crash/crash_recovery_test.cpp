// A worker process runs an executor on a SQLite file and is killed with SIGKILL while tasks run
// (simple tasks, a parent's children, a sequential chain's step). A new executor on the same
// file must finish every execution: each top-level execution ends `completed` with the right
// output, no child is inserted twice, and each interrupted execution runs exactly once more.

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crash_tasks.hpp"
#include "durable_execution/sqlite/sqlite_storage.hpp"
#include "storage_factory.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace de = durable_execution;
using de::TaskExecutionStatus;

// Marker files are named "<parent task id>__<execution id>".
std::set<std::string> running_parents(const fs::path& dir) {
  std::set<std::string> parents;
  for (const auto& entry : fs::directory_iterator(dir)) {
    auto name = entry.path().filename().string();
    parents.insert(name.substr(0, name.find("__")));
  }
  return parents;
}

std::size_t marker_count(const fs::path& dir) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), {}));
}

TEST(CrashRecovery, KilledWorkerWorkIsFinishedOnceByANewExecutor) {
  const fs::path db = durable_execution::testing::temp_path("de_crash") + ".db";
  const fs::path markers = durable_execution::testing::temp_path("de_crash_markers");
  fs::create_directories(markers);

  // 1. Enqueue the work (no executor runs yet).
  std::vector<std::string> inc_ids;
  std::string fan_out_id;
  std::vector<std::string> chain_ids;
  {
    de::SqliteTaskExecutionsStorage storage{db.string()};
    de::DurableExecutor executor{storage, {.log_level = de::LogLevel::error}};
    auto tasks = crash::register_tasks(executor, {});
    for (int i = 0; i < 4; ++i)
      inc_ids.push_back(executor.enqueue_task(tasks.inc, i).execution_id());
    fan_out_id = executor.enqueue_task(tasks.fan_out, 5).execution_id();
    for (int i = 0; i < 2; ++i) {
      chain_ids.push_back(executor.enqueue_task(tasks.chain, 100 * i).execution_id());
    }
  }

  // 2. Start the worker and kill it once simple tasks, the parent's children and the chain's
  // first steps are all running in it: 4 + 5 + 2 blocked steps.
  pid_t pid = 0;
  std::string db_arg = db.string();
  std::string marker_arg = markers.string();
  char* argv[] = {const_cast<char*>(DE_CRASH_WORKER_PATH), db_arg.data(), marker_arg.data(),
                  nullptr};
  ASSERT_EQ(posix_spawn(&pid, DE_CRASH_WORKER_PATH, nullptr, nullptr, argv, environ), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (marker_count(markers) < 11 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << "worker exited early";
  ASSERT_EQ(marker_count(markers), 11u) << "not every step was running when the worker died";
  EXPECT_EQ(running_parents(markers), (std::set<std::string>{"root", "fan_out", "chain"}));

  // 3. A new executor on the same file recovers the work once the dead worker's leases lapse.
  std::mutex mutex;
  std::map<std::string, int> runs;
  de::SqliteTaskExecutionsStorage storage{db.string()};
  de::DurableExecutor executor{
      storage,
      {.expire_leeway = std::chrono::milliseconds{0},
       .background_process_intra_batch_sleep = std::chrono::milliseconds{20},
       .log_level = de::LogLevel::error}};
  auto tasks = crash::register_tasks(executor, {.on_run = [&](const std::string& id) {
                                       std::lock_guard lock(mutex);
                                       ++runs[id];
                                     }});
  executor.start();
  const de::WaitOptions wait{.polling_interval = std::chrono::milliseconds{20},
                             .timeout = std::chrono::seconds{60}};

  for (std::size_t i = 0; i < inc_ids.size(); ++i) {
    auto done = executor.get_task_execution_handle(tasks.inc, inc_ids[i])
                    .wait_and_get_finished_execution(wait);
    EXPECT_EQ(done.status, TaskExecutionStatus::completed);
    EXPECT_EQ(done.output, static_cast<int>(i) + 1);
  }
  auto fan_out = executor.get_task_execution_handle(tasks.fan_out, fan_out_id)
                     .wait_and_get_finished_execution(wait);
  ASSERT_EQ(fan_out.status, TaskExecutionStatus::completed);
  ASSERT_TRUE(fan_out.output.has_value());
  EXPECT_EQ(fan_out.output->output, 5);
  ASSERT_EQ(fan_out.output->children.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(fan_out.output->children[static_cast<std::size_t>(i)].output_as<int>(), i * 10 + 1);
  }
  for (std::size_t i = 0; i < chain_ids.size(); ++i) {
    auto done = executor.get_task_execution_handle(tasks.chain, chain_ids[i])
                    .wait_and_get_finished_execution(wait);
    EXPECT_EQ(done.status, TaskExecutionStatus::completed);
    EXPECT_EQ(done.output, static_cast<int>(i) * 100 + 3);
  }

  // No child was inserted twice: the parent has exactly its 5 declared children on record.
  auto children = storage.get_many_by_parent_execution_id({{.parent_execution_id = fan_out_id}});
  ASSERT_EQ(children.size(), 1u);
  EXPECT_EQ(children[0].size(), 5u);
  for (const auto& child : children[0]) {
    EXPECT_EQ(child.status, TaskExecutionStatus::completed);
    // The interrupted run's lease lapsed: the re-run saw "Task execution expired" and was the
    // only run this executor made of it.
    std::lock_guard lock(mutex);
    EXPECT_EQ(runs[child.execution_id], 1) << child.execution_id;
  }
  {
    std::lock_guard lock(mutex);
    for (const auto& id : inc_ids) EXPECT_EQ(runs[id], 1) << id;
    // 2 chains x 3 steps, 5 children, 4 simple tasks: each ran exactly once after the crash.
    EXPECT_EQ(runs.size(), 15u);
    for (const auto& [id, count] : runs) EXPECT_EQ(count, 1) << id;
  }

  executor.shutdown();
  std::error_code ec;
  fs::remove_all(markers, ec);
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db.string() + suffix, ec);
}

}  // namespace
