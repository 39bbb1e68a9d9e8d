// Several connections and several processes on one SQLite file: claims stay exclusive.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <latch>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "durable_execution/errors.hpp"
#include "durable_execution/sqlite/sqlite_storage.hpp"
#include "sqlite_test_support.hpp"

namespace de = durable_execution;
using de::testing::claim_request;
using de::testing::ready_records;
using de::testing::SqliteFileTest;
using namespace std::chrono_literals;

namespace {

/** Claims with `limit` until nothing is left (retrying transient busy errors, bounded). */
std::vector<std::string> claim_until_empty(de::TaskExecutionsStorage& storage,
                                           const std::string& executor_id, std::int64_t limit,
                                           std::chrono::steady_clock::time_point deadline) {
  std::vector<std::string> claimed;
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<de::TaskExecutionRecord> batch;
    try {
      batch = storage.update_by_status_and_start_at_less_than_and_return(
          claim_request(executor_id, limit));
    } catch (const de::DurableExecutionError& e) {
      if (!e.is_retryable()) throw;
      continue;
    }
    if (batch.empty()) break;
    for (auto& r : batch) {
      if (r.executor_id != executor_id) throw std::runtime_error("claimed row not marked as ours");
      claimed.push_back(r.execution_id);
    }
  }
  return claimed;
}

}  // namespace

TEST_F(SqliteFileTest, TwoConnectionsOnOneFileClaimDisjointSetsFromManyThreads) {
  constexpr std::size_t kRows = 600;
  constexpr int kThreadsPerStorage = 3;
  de::SqliteTaskExecutionsStorage first{path_};
  de::SqliteTaskExecutionsStorage second{path_};
  const auto rows = ready_records(kRows);
  first.insert_many(rows);

  std::vector<std::vector<std::string>> claimed(2 * kThreadsPerStorage);
  std::vector<std::string> errors(claimed.size());
  std::latch start{static_cast<std::ptrdiff_t>(claimed.size())};
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  {
    std::vector<std::jthread> threads;
    for (std::size_t t = 0; t < claimed.size(); ++t) {
      threads.emplace_back([&, t] {
        auto& storage = t % 2 == 0 ? first : second;
        start.arrive_and_wait();
        try {
          claimed[t] = claim_until_empty(storage, "de_t" + std::to_string(t), 4, deadline);
        } catch (const std::exception& e) {
          errors[t] = e.what();
        }
      });
    }
  }
  std::set<std::string> all;
  std::size_t total = 0;
  for (std::size_t t = 0; t < claimed.size(); ++t) {
    EXPECT_TRUE(errors[t].empty()) << "thread " << t << ": " << errors[t];
    total += claimed[t].size();
    all.insert(claimed[t].begin(), claimed[t].end());
  }
  EXPECT_EQ(total, kRows) << "some rows were claimed twice or not at all";
  EXPECT_EQ(all.size(), kRows);
  // The stored executor id matches the thread that got each row.
  for (std::size_t t = 0; t < claimed.size(); ++t) {
    if (claimed[t].empty()) continue;
    auto stored = second.get_many_by_id({{claimed[t].front(), {}}}).at(0);
    ASSERT_TRUE(stored.has_value());
    EXPECT_EQ(stored->executor_id, "de_t" + std::to_string(t));
  }
}

TEST_F(SqliteFileTest, TwoProcessesOnOneFileClaimDisjointSetsThatCoverAllRows) {
  constexpr std::size_t kRows = 500;
  {
    de::SqliteTaskExecutionsStorage setup{path_};
    setup.insert_many(ready_records(kRows));
  }
  const std::string child_out = path_ + ".child";
  int ready_pipe[2];
  int go_pipe[2];
  ASSERT_EQ(pipe(ready_pipe), 0);
  ASSERT_EQ(pipe(go_pipe), 0);

  const pid_t pid = fork();
  ASSERT_NE(pid, -1);
  if (pid == 0) {
    // Child: its own connection; reports its claims in a file; never returns into gtest.
    int code = 0;
    close(ready_pipe[0]);
    close(go_pipe[1]);
    try {
      de::SqliteTaskExecutionsStorage storage{path_};
      char byte = 'r';
      if (write(ready_pipe[1], &byte, 1) != 1) _exit(3);
      if (read(go_pipe[0], &byte, 1) != 1) _exit(4);
      auto ids = claim_until_empty(storage, "de_child", 3, std::chrono::steady_clock::now() + 60s);
      std::ofstream out(child_out);
      for (const auto& id : ids) out << id << '\n';
      out.close();
      code = out ? 0 : 5;
    } catch (...) {
      code = 2;
    }
    _exit(code);
  }

  // Parent. The guard kills and reaps the child if an assertion returns early, so no test
  // leaves a process behind; closing our copies of the child's pipe ends makes a dead child
  // show up as end-of-file instead of a hang.
  struct ChildGuard {
    pid_t pid;
    bool reaped = false;
    ~ChildGuard() {
      if (!reaped) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } guard{pid};
  close(ready_pipe[1]);
  close(go_pipe[0]);
  de::SqliteTaskExecutionsStorage storage{path_};
  char byte = 0;
  ASSERT_EQ(read(ready_pipe[0], &byte, 1), 1);
  ASSERT_EQ(write(go_pipe[1], &byte, 1), 1);
  auto parent_ids =
      claim_until_empty(storage, "de_parent", 3, std::chrono::steady_clock::now() + 60s);

  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  pid_t done = 0;
  while ((done = waitpid(pid, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  close(ready_pipe[0]);
  close(go_pipe[1]);
  ASSERT_NE(done, 0) << "child process did not finish in time";
  guard.reaped = true;
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);

  std::vector<std::string> child_ids;
  {
    std::ifstream in(child_out);
    for (std::string line; std::getline(in, line);) child_ids.push_back(line);
  }
  std::remove(child_out.c_str());

  std::set<std::string> all(parent_ids.begin(), parent_ids.end());
  for (const auto& id : child_ids) {
    EXPECT_TRUE(all.insert(id).second) << "claimed by both processes: " << id;
  }
  EXPECT_EQ(all.size(), kRows);
  EXPECT_EQ(parent_ids.size() + child_ids.size(), kRows);
  // Every row is running under the executor id of the process that claimed it.
  auto check =
      storage.get_many_by_id({{parent_ids.empty() ? child_ids.at(0) : parent_ids.at(0), {}}});
  ASSERT_TRUE(check.at(0).has_value());
  EXPECT_EQ(check.at(0)->status, de::TaskExecutionStatus::running);
  RecordProperty("parent_claims", static_cast<int>(parent_ids.size()));
  RecordProperty("child_claims", static_cast<int>(child_ids.size()));
}

TEST_F(SqliteFileTest, CommittedWritesSurviveAProcessKilledWithSigkill) {
  constexpr std::size_t kRows = 200;
  const auto rows = ready_records(kRows);
  int committed_pipe[2];
  ASSERT_EQ(pipe(committed_pipe), 0);
  const pid_t pid = fork();
  ASSERT_NE(pid, -1);
  if (pid == 0) {
    close(committed_pipe[0]);
    try {
      de::SqliteTaskExecutionsStorage storage{path_};  // default options: synchronous=normal
      for (std::size_t i = 0; i < kRows; i += 20) {
        storage.insert_many({rows.begin() + static_cast<std::ptrdiff_t>(i),
                             rows.begin() + static_cast<std::ptrdiff_t>(i + 20)});
      }
      char byte = 'c';
      if (write(committed_pipe[1], &byte, 1) != 1) _exit(3);
      std::this_thread::sleep_for(30s);  // killed long before this ends
    } catch (...) {
      _exit(2);
    }
    _exit(4);
  }
  close(committed_pipe[1]);
  char byte = 0;
  const bool committed = read(committed_pipe[0], &byte, 1) == 1;
  close(committed_pipe[0]);
  kill(pid, SIGKILL);  // no destructor, no checkpoint: the rows live only in the WAL
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(committed) << "child failed before committing";
  ASSERT_TRUE(WIFSIGNALED(status));

  de::SqliteTaskExecutionsStorage storage{path_};
  std::vector<de::GetByIdRequest> requests;
  for (const auto& r : rows) requests.push_back({r.execution_id, {}});
  auto found = storage.get_many_by_id(requests);
  ASSERT_EQ(found.size(), kRows);
  for (std::size_t i = 0; i < kRows; ++i) {
    ASSERT_TRUE(found[i].has_value()) << "row " << i << " lost";
    EXPECT_EQ(*found[i], rows[i]);
  }
}
