// Kill matrix on PostgreSQL (label crash): executor processes are SIGKILLed again and again (20
// times, at random moments, so across every phase: parents running and inserting children,
// children running, parents finalizing and closing) while they work through 200 parents with
// children; then one more process finishes everything. Every parent must end completed with the
// right output, no child inserted twice.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
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

class PostgresKillMatrix : public ::testing::Test {
 protected:
  void SetUp() override {
    DE_SKIP_IF_STORAGE_UNAVAILABLE(de::testing::postgres_factory());
    url_ = *de::testing::postgres_test_url();
    schema_ = de::testing::unique_schema_name();
    dir_ = de::testing::temp_path("de_pg_kill_matrix");
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      (void)::waitpid(pid_, &status, 0);
    }
    if (!schema_.empty()) de::testing::drop_postgres_schema(url_, schema_);
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  void spawn_worker() {
    std::vector<std::string> args{DE_PG_WORKER_PATH, url_, schema_, dir_.string()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ASSERT_EQ(posix_spawn(&pid_, DE_PG_WORKER_PATH, nullptr, nullptr, argv.data(), environ), 0);
  }
  void kill_worker() {
    ASSERT_EQ(::kill(pid_, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid_, &status, 0), pid_);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "worker exited early";
    pid_ = 0;
  }

  std::string url_;
  std::string schema_;
  fs::path dir_;
  pid_t pid_ = 0;
};

TEST_F(PostgresKillMatrix, ProcessesKilledInEveryPhaseLoseNothing) {
  constexpr int kParents = 100;
  constexpr int kKills = 20;
  de::PostgresTaskExecutionsStorage storage{url_, {.schema = schema_}};
  auto leaf = de::Task<int, int>::reference(pg_worker::leaf_options());
  auto fan_out = de::Task<int, int>::reference(pg_worker::fan_out_options());
  de::DurableExecutorClient client{
      storage, {leaf.descriptor(), fan_out.descriptor()}, {.log_level = de::LogLevel::error}};
  std::vector<std::string> ids;
  for (int i = 0; i < kParents; ++i) ids.push_back(client.enqueue_task(fan_out, i).execution_id());

  const auto seed = std::random_device{}();
  std::printf("kill matrix seed %u\n", seed);
  std::mt19937 gen{seed};
  std::uniform_int_distribution<int> uptime_ms(150, 700);
  for (int k = 0; k < kKills; ++k) {
    spawn_worker();
    std::this_thread::sleep_for(std::chrono::milliseconds{uptime_ms(gen)});
    kill_worker();
  }
  spawn_worker();  // the survivor: finishes everything once the dead workers' leases lapse
  const auto survivor_started = std::chrono::steady_clock::now();

  // A worker killed while processing a parent's finished children or closing it leaves a lease
  // of the engine's (120 s, not configurable) to lapse first: the bound allows for it.
  const auto deadline = std::chrono::steady_clock::now() + 200s;
  std::vector<std::optional<de::TaskExecutionRecord>> records(ids.size());
  std::size_t finished = 0;
  while (finished < ids.size() && std::chrono::steady_clock::now() < deadline) {
    std::vector<de::GetByIdRequest> reqs;
    std::vector<std::size_t> index;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (records[i] && records[i]->is_finished) continue;
      reqs.push_back({.execution_id = ids[i]});
      index.push_back(i);
    }
    const auto found = storage.get_many_by_id(reqs);
    for (std::size_t k = 0; k < found.size(); ++k) {
      records[index[k]] = found[k];
      if (found[k] && found[k]->is_finished) ++finished;
    }
    if (finished < ids.size()) std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(finished, ids.size()) << "not every parent finished within the bound (seed " << seed
                                  << ")";
  std::printf("the survivor finished in %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - survivor_started)
                                         .count()));
  for (int i = 0; i < kParents; ++i) {
    const auto& r = records[static_cast<std::size_t>(i)];
    ASSERT_EQ(r->status, de::TaskExecutionStatus::completed) << r->execution_id;
    EXPECT_EQ(r->output, std::to_string(pg_worker::expected_sum(i))) << r->execution_id;
  }
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
  std::ofstream{dir_ / "stop"};
}

}  // namespace
