// A worker process runs an executor on a SQLite file and is killed with SIGKILL while tasks run
// (simple tasks, a parent's children, a sequential chain's step). A new executor on the same
// file must finish every execution: each top-level execution ends `completed` with the right
// output, no child is inserted twice, and each interrupted execution runs exactly once more.

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
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

// ---- kill matrix ------------------------------------------------------------------------------

pid_t spawn_worker(std::vector<std::string> args) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(DE_CRASH_WORKER_PATH));
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, DE_CRASH_WORKER_PATH, nullptr, nullptr, argv.data(), environ) != 0) {
    return -1;
  }
  return pid;
}

/** SIGKILLs the worker (if it still runs) and reaps it; true if the kill is what ended it. */
bool kill_and_reap(pid_t pid) {
  kill(pid, SIGKILL);
  int wstatus = 0;
  if (waitpid(pid, &wstatus, 0) != pid) return false;
  return WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL;
}

/** What the matrix enqueued at the top level, with the outcome each must reach. */
struct Expected {
  std::string id;
  std::string task;
  int input = 0;
};

/** "<status> <output or error>" of every finished execution of the trees below `tops`. */
std::map<std::string, std::string> finished_outcomes(de::TaskExecutionsStorage& storage,
                                                     const std::vector<Expected>& tops) {
  std::map<std::string, std::string> out;
  auto note = [&](const de::TaskExecutionRecord& r) {
    if (!r.is_finished) return;
    out[r.execution_id] = std::string{de::to_string(r.status)} + " " +
                          (r.output ? *r.output : (r.error ? r.error->message : ""));
  };
  std::vector<de::GetByIdRequest> reads;
  std::vector<de::GetByParentExecutionIdRequest> parents;
  for (const auto& t : tops) {
    reads.push_back({t.id, {}});
    parents.push_back({t.id});
  }
  for (const auto& r : storage.get_many_by_id(reads)) {
    if (r) note(*r);
  }
  for (const auto& children : storage.get_many_by_parent_execution_id(parents)) {
    for (const auto& c : children) note(c);
  }
  return out;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

// An executor process on SQLite is killed again and again, each time in a chosen phase (the
// ready claim, a task function, a result write before or after its commit, a children step, a
// finalize function, the close path), and restarted. At the end every execution is finished and
// closed with the right output, each parent has exactly its children, and no outcome recorded
// between two kills ever changed. DE_KILL_MATRIX_KILLS sets the number of kills (default 24).
TEST(CrashRecovery, KillMatrixAcrossEveryPhase) {
  const int kills = std::max(env_int("DE_KILL_MATRIX_KILLS", 24), 6);
  const fs::path db = durable_execution::testing::temp_path("de_matrix") + ".db";
  const fs::path flag = durable_execution::testing::temp_path("de_matrix_flag");
  const std::vector<std::string> phases{"claim", "run", "write", "children", "finalize", "close"};

  de::SqliteTaskExecutionsStorage storage{db.string()};
  std::vector<Expected> tops;
  std::map<std::string, std::string> recorded;  // outcomes seen so far: they never change
  std::map<std::string, int> kills_per_phase;
  std::map<std::string, int> unreached;
  {
    de::DurableExecutor submitter{storage, crash::matrix_options()};  // never started
    auto tasks = crash::register_matrix_tasks(submitter, nullptr);
    int next_input = 0;
    auto top_up = [&] {
      // Enough unfinished work that every phase can still be reached by the next worker.
      const auto outcomes = finished_outcomes(storage, tops);
      const auto unfinished = std::count_if(
          tops.begin(), tops.end(), [&](const Expected& e) { return !outcomes.contains(e.id); });
      if (unfinished >= 12) return;
      for (int i = 0; i < 3; ++i) {
        const int n = 2 + (next_input++ % 4);
        tops.push_back({submitter.enqueue_task(tasks.sum_of, n).execution_id(), "sum_of", n});
        tops.push_back({submitter.enqueue_task(tasks.bad_sum, n).execution_id(), "bad_sum", n});
        const int x = 100 * next_input;
        tops.push_back({submitter.enqueue_task(tasks.chain, x).execution_id(), "chain", x});
        tops.push_back({submitter.enqueue_task(tasks.inc, x).execution_id(), "inc", x});
      }
    };
    for (int k = 0; k < kills; ++k) {
      top_up();
      const auto& phase = phases[static_cast<std::size_t>(k) % phases.size()];
      const std::string mode = (k / static_cast<int>(phases.size())) % 2 == 0 ? "after" : "before";
      std::error_code ec;
      fs::remove(flag, ec);
      const pid_t pid = spawn_worker({"matrix", db.string(), phase, mode, flag.string()});
      ASSERT_GT(pid, 0);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{5};
      while (!fs::exists(flag) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds{2});
      }
      const bool reached = fs::exists(flag);
      ASSERT_TRUE(kill_and_reap(pid)) << "worker exited by itself";
      ++(reached ? kills_per_phase : unreached)[phase + (phase == "write" || phase == "children"
                                                             ? " (" + mode + " commit)"
                                                             : "")];
      for (const auto& [id, outcome] : finished_outcomes(storage, tops)) {
        auto [it, inserted] = recorded.emplace(id, outcome);
        EXPECT_EQ(it->second, outcome) << "outcome of " << id << " changed after kill " << k;
      }
    }
  }
  std::cout << "kill matrix: " << kills << " kills, per phase:";
  for (const auto& [phase, n] : kills_per_phase) std::cout << " " << phase << "=" << n;
  for (const auto& [phase, n] : unreached)
    std::cout << " (not reached: " << phase << "=" << n << ")";
  std::cout << "; " << tops.size() << " top-level executions" << std::endl;
  int reached_total = 0;
  for (const auto& [phase, n] : kills_per_phase) reached_total += n;
  EXPECT_GE(reached_total, kills * 3 / 4);
  for (const auto& phase : phases) {
    const bool hit = std::any_of(kills_per_phase.begin(), kills_per_phase.end(),
                                 [&](const auto& e) { return e.first.rfind(phase, 0) == 0; });
    EXPECT_TRUE(hit) << "no kill landed in phase " << phase;
  }

  // A last executor, never killed, finishes everything.
  de::DurableExecutor executor{storage, crash::matrix_options()};
  auto tasks = crash::register_matrix_tasks(executor, nullptr);
  executor.start();
  const de::WaitOptions wait{.polling_interval = std::chrono::milliseconds{20},
                             .timeout = std::chrono::seconds{60}};
  for (const auto& t : tops) {
    if (t.task == "inc") {
      auto e =
          executor.get_task_execution_handle(tasks.inc, t.id).wait_and_get_finished_execution(wait);
      EXPECT_EQ(e.status, TaskExecutionStatus::completed) << t.id;
      EXPECT_EQ(e.output, t.input + 1) << t.id;
    } else if (t.task == "chain") {
      auto e = executor.get_task_execution_handle(tasks.chain, t.id)
                   .wait_and_get_finished_execution(wait);
      EXPECT_EQ(e.status, TaskExecutionStatus::completed) << t.id;
      EXPECT_EQ(e.output, t.input + 3) << t.id;
    } else if (t.task == "sum_of") {
      auto e = executor.get_task_execution_handle(tasks.sum_of, t.id)
                   .wait_and_get_finished_execution(wait);
      EXPECT_EQ(e.status, TaskExecutionStatus::completed) << t.id;
      EXPECT_EQ(e.output, crash::sum_of_output(t.input)) << t.id;
    } else {
      auto e = executor.get_task_execution_handle(tasks.bad_sum, t.id)
                   .wait_and_get_finished_execution(wait);
      EXPECT_EQ(e.status, TaskExecutionStatus::finalize_failed) << t.id;
      ASSERT_TRUE(e.error) << t.id;
      EXPECT_EQ(e.error->message, crash::kBadSumError) << t.id;
    }
  }
  // Every execution closed; each parent has exactly its children, each completed once.
  std::vector<de::GetByIdRequest> reads;
  std::vector<de::GetByParentExecutionIdRequest> parents;
  for (const auto& t : tops) {
    reads.push_back({t.id, {}});
    parents.push_back({t.id});
  }
  auto all_closed = [&] {
    for (const auto& r : storage.get_many_by_id(reads)) {
      if (!r || r->close_status != de::CloseStatus::closed) return false;
    }
    for (const auto& children : storage.get_many_by_parent_execution_id(parents)) {
      for (const auto& c : children) {
        if (c.close_status != de::CloseStatus::closed) return false;
      }
    }
    return true;
  };
  const auto close_deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (!all_closed() && std::chrono::steady_clock::now() < close_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  EXPECT_TRUE(all_closed());
  const auto children = storage.get_many_by_parent_execution_id(parents);
  ASSERT_EQ(children.size(), tops.size());
  for (std::size_t i = 0; i < tops.size(); ++i) {
    const auto& t = tops[i];
    const std::size_t expected = t.task == "sum_of"    ? static_cast<std::size_t>(t.input)
                                 : t.task == "bad_sum" ? 2U
                                 : t.task == "chain"   ? 3U
                                                       : 0U;
    EXPECT_EQ(children[i].size(), expected) << t.task << " " << t.id;
    for (const auto& c : children[i]) {
      EXPECT_EQ(c.status, TaskExecutionStatus::completed) << c.execution_id;
    }
  }
  for (const auto& [id, outcome] : finished_outcomes(storage, tops)) {
    if (auto it = recorded.find(id); it != recorded.end()) {
      EXPECT_EQ(it->second, outcome) << "outcome of " << id << " changed at the end";
    }
  }
  executor.shutdown();
  std::error_code ec;
  fs::remove(flag, ec);
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db.string() + suffix, ec);
}

// A run that kills its process every time (a stack overflow in a decoder, say) is not retried
// forever: after max_lease_expirations (3) lease expirations the next one ends it `failed`, and
// the other executions of the same workers finish.
TEST(CrashRecovery, RunThatKillsItsProcessEveryTimeIsAbandonedAfterTheBound) {
  const fs::path db = durable_execution::testing::temp_path("de_poison") + ".db";
  de::SqliteTaskExecutionsStorage storage{db.string()};
  std::string poison_id;
  std::vector<std::string> inc_ids;
  {
    de::DurableExecutor submitter{storage, crash::poison_options()};
    auto tasks = crash::register_poison_tasks(submitter, false);
    poison_id = submitter.enqueue_task(tasks.poison, 1).execution_id();
    for (int i = 0; i < 5; ++i)
      inc_ids.push_back(submitter.enqueue_task(tasks.inc, i).execution_id());
  }
  auto poison_finished = [&] {
    auto r = storage.get_many_by_id({{poison_id, {}}});
    return r.front() && r.front()->is_finished;
  };
  int crashes = 0;
  for (int restart = 0; restart < 10 && !poison_finished(); ++restart) {
    const pid_t pid = spawn_worker({"poison", db.string()});
    ASSERT_GT(pid, 0);
    int wstatus = 0;
    // A worker dies when it runs the poison (exit code 9), or is stopped once it is finished.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
    pid_t done = 0;
    while ((done = waitpid(pid, &wstatus, WNOHANG)) == 0 && !poison_finished() &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
    if (done == pid) {
      ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 9) << wstatus;
      ++crashes;
    } else {
      kill_and_reap(pid);
    }
  }
  auto r = storage.get_many_by_id({{poison_id, {}}}).front();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, TaskExecutionStatus::failed);
  ASSERT_TRUE(r->error);
  EXPECT_NE(r->error->message.find("abandoned repeatedly"), std::string::npos) << r->error->message;
  EXPECT_EQ(r->lease_expirations, 4);
  EXPECT_EQ(r->retry_attempts, 0);
  EXPECT_EQ(crashes, 4);  // runs 1-3 expired and ran again; the 4th expiry ended it
  std::cout << "poison run: " << crashes << " crashed workers, then failed" << std::endl;
  // The other work finishes: its batch-mates were in flight at the first crash, but recovered
  // executions run alone, so the later crashes count against the poison only.
  {
    de::DurableExecutor executor{storage, crash::poison_options()};
    auto tasks = crash::register_poison_tasks(executor);
    executor.start();
    const de::WaitOptions wait{.polling_interval = std::chrono::milliseconds{20},
                               .timeout = std::chrono::seconds{30}};
    for (std::size_t i = 0; i < inc_ids.size(); ++i) {
      auto e = executor.get_task_execution_handle(tasks.inc, inc_ids[i])
                   .wait_and_get_finished_execution(wait);
      EXPECT_EQ(e.status, TaskExecutionStatus::completed) << (e.error ? e.error->message : "");
      EXPECT_EQ(e.output, static_cast<int>(i) + 1);
      // At most the first crash caught it in flight.
      EXPECT_LE(storage.get_many_by_id({{inc_ids[i], {}}}).front()->lease_expirations, 1);
    }
    // Work enqueued once the poison is out runs as usual.
    for (int i = 0; i < 3; ++i) {
      auto e = executor.enqueue_task(tasks.inc, 10 + i).wait_and_get_finished_execution(wait);
      EXPECT_EQ(e.status, TaskExecutionStatus::completed);
      EXPECT_EQ(e.output, 11 + i);
    }
  }
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db.string() + suffix, ec);
}

}  // namespace
