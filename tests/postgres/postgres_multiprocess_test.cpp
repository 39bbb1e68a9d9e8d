// Three executor processes on one PostgreSQL table: 2,000 top-level parents (each with two
// children) enqueued by a client in this process are all finished, each once, by the workers
// together; none lost, no child inserted twice, no leaf run twice.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "durable_execution/durable_execution.hpp"
#include "durable_execution/postgres/postgres_storage.hpp"
#include "pg_worker_tasks.hpp"
#include "postgres_support.hpp"
#include "storage_factory.hpp"

extern char** environ;

namespace {

namespace de = durable_execution;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

class PostgresMultiProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    DE_SKIP_IF_STORAGE_UNAVAILABLE(de::testing::postgres_factory());
    url_ = *de::testing::postgres_test_url();
    schema_ = de::testing::unique_schema_name();
    dir_ = de::testing::temp_path("de_pg_multiprocess");
    fs::create_directories(dir_);
  }
  void TearDown() override {
    for (const pid_t pid : pids_) {
      ::kill(pid, SIGKILL);
      int status = 0;
      (void)::waitpid(pid, &status, 0);
    }
    if (!schema_.empty()) de::testing::drop_postgres_schema(url_, schema_);
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  pid_t spawn_worker() {
    std::vector<std::string> args{DE_PG_WORKER_PATH, url_, schema_, dir_.string()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, DE_PG_WORKER_PATH, nullptr, nullptr, argv.data(), environ), 0);
    pids_.push_back(pid);
    return pid;
  }

  std::string url_;
  std::string schema_;
  fs::path dir_;
  std::vector<pid_t> pids_;
};

TEST_F(PostgresMultiProcess, ThreeExecutorProcessesFinishTwoThousandParentsOnce) {
  constexpr int kParents = 2000;
  de::PostgresTaskExecutionsStorage storage{url_, {.schema = schema_}};
  auto leaf = de::Task<int, int>::reference(pg_worker::leaf_options());
  auto fan_out = de::Task<int, int>::reference(pg_worker::fan_out_options());
  de::DurableExecutorClient client{
      storage, {leaf.descriptor(), fan_out.descriptor()}, {.log_level = de::LogLevel::error}};

  // The workers start first and wait for work: enqueues wake them (NOTIFY) or their polls do.
  for (int i = 0; i < 3; ++i) spawn_worker();
  std::vector<std::string> ids;
  ids.reserve(kParents);
  for (int i = 0; i < kParents; ++i) {
    ids.push_back(client.enqueue_task(fan_out, i).execution_id());
  }

  // Bounded wait for every top-level execution to finish (batched reads).
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  std::size_t finished = 0;
  std::vector<std::optional<de::TaskExecutionRecord>> records(ids.size());
  while (finished < ids.size() && std::chrono::steady_clock::now() < deadline) {
    std::vector<de::GetByIdRequest> reqs;
    std::vector<std::size_t> index;
    for (std::size_t i = 0; i < ids.size() && reqs.size() < 500; ++i) {
      if (records[i] && records[i]->is_finished) continue;
      reqs.push_back({.execution_id = ids[i]});
      index.push_back(i);
    }
    const auto found = storage.get_many_by_id(reqs);
    for (std::size_t k = 0; k < found.size(); ++k) {
      records[index[k]] = found[k];
      if (found[k] && found[k]->is_finished) ++finished;
    }
    if (finished < ids.size()) std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(finished, ids.size()) << "not every execution finished within the bound";
  for (int i = 0; i < kParents; ++i) {
    const auto& r = records[static_cast<std::size_t>(i)];
    ASSERT_EQ(r->status, de::TaskExecutionStatus::completed) << r->execution_id;
    ASSERT_TRUE(r->output.has_value());
    EXPECT_EQ(*r->output, std::to_string(pg_worker::expected_sum(i))) << r->execution_id;
  }

  // Stop the workers and read who ran what.
  std::ofstream{dir_ / "stop"};
  for (const pid_t pid : pids_) {
    int status = 0;
    const auto wait_deadline = std::chrono::steady_clock::now() + 30s;
    pid_t done = 0;
    while ((done = ::waitpid(pid, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < wait_deadline) {
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_EQ(done, pid) << "worker did not stop";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  pids_.clear();
  std::map<std::string, int> runs;
  std::map<std::string, int> per_process;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    const auto name = entry.path().filename().string();
    if (name.rfind("runs_", 0) != 0) continue;
    std::ifstream in{entry.path()};
    for (std::string id; std::getline(in, id);) {
      ++runs[id];
      ++per_process[name];
    }
  }
  EXPECT_EQ(runs.size(), static_cast<std::size_t>(kParents * pg_worker::kChildren));
  for (const auto& [id, count] : runs) EXPECT_EQ(count, 1) << id << " ran more than once";
  EXPECT_EQ(per_process.size(), 3u) << "every worker process should have run some leaves";

  const std::string table = "\"" + schema_ + "\".task_executions";
  EXPECT_TRUE(de::testing::postgres_query(
                  url_,
                  "SELECT parent_execution_id, index_in_parent_children, is_finalize_of_parent "
                  "FROM " +
                      table +
                      " WHERE parent_execution_id IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1")
                  .empty());
  EXPECT_EQ(de::testing::postgres_query(
                url_, "SELECT count(*) FROM " + table + " WHERE task_id = 'mp_leaf'")[0][0],
            std::to_string(kParents * pg_worker::kChildren));
  EXPECT_EQ(de::testing::postgres_query(
                url_, "SELECT count(*) FROM " + table + " WHERE status <> 'completed'")[0][0],
            "0");
}

}  // namespace
