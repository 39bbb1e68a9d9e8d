// sqlite_storage_bench: the SQLite backend's cost per write transaction on the engine's hot path,
// in the engine's batch shapes. Each iteration is one round of kBatch child executions of one
// parent: insert them (insert_many), claim them (update_by_status_and_start_at_less_than_and_return
// with limit kBatch), and complete them in one group-committed result write (update_many_by_id:
// status-guarded, closed in the write, each decrementing the parent's active children count).
// The store starts with 10,000 finished and closed executions, and keeps every round's rows.
//
// Counters: insert_us, claim_us and complete_us are the mean cost of one such call (one
// transaction of kBatch rows); executions is the rate of executions through all three.
// The database is a temporary file with the storage's defaults (WAL, synchronous=NORMAL).

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "durable_execution/sqlite/sqlite_storage.hpp"
#include "durable_execution/task_execution.hpp"
#include "history_record.hpp"

namespace de = durable_execution;
using std::chrono::milliseconds;

namespace {

constexpr std::size_t kBatch = 50;
constexpr std::int64_t kHistory = 10'000;
using Clock = std::chrono::steady_clock;

std::string temp_db_path() {
  return (std::filesystem::temp_directory_path() /
          ("durable_execution_sqlite_bench_" + de::generate_execution_id() + ".db"))
      .string();
}

void remove_db(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
}

using de::bench::finished_record;

void BM_SqliteClaimAndCompleteBatch(benchmark::State& state) {
  const auto path = temp_db_path();
  remove_db(path);
  {
    de::SqliteTaskExecutionsStorage storage{path};
    const auto start = de::now_timestamp();
    std::vector<de::TaskExecutionRecord> chunk;
    for (std::int64_t i = 0; i < kHistory; ++i) {
      chunk.push_back(finished_record(start, i));
      if (chunk.size() == 1'000 || i + 1 == kHistory) {
        storage.insert_many(chunk);
        chunk.clear();
      }
    }
    // The parent of every round's children, waiting for them.
    auto parent =
        de::make_task_execution_record(start, {.task_id = "parent_task",
                                               .execution_id = de::generate_execution_id(),
                                               .retry_options = {.max_attempts = 1},
                                               .timeout = milliseconds{30'000},
                                               .input = "{}"});
    parent.status = de::TaskExecutionStatus::waiting_for_children;
    parent.active_children_count = 1'000'000'000;
    storage.insert_many({parent});
    const de::ParentTaskExecutionSummary parent_summary{.task_id = parent.task_id,
                                                        .execution_id = parent.execution_id};

    std::vector<de::TaskExecutionRecord> batch(kBatch);
    std::vector<de::UpdateByIdRequest> complete(kBatch);
    std::int64_t executions = 0;
    Clock::duration insert_time{};
    Clock::duration claim_time{};
    Clock::duration complete_time{};
    std::int64_t rounds = 0;

    for (auto _ : state) {
      state.PauseTiming();
      const auto now = de::now_timestamp();
      for (std::size_t i = 0; i < kBatch; ++i) {
        auto child_parent = parent_summary;
        child_parent.index_in_parent_children = static_cast<std::int32_t>(i);
        batch[i] = de::make_task_execution_record(
            now, {.root = de::TaskExecutionSummary{parent.task_id, parent.execution_id},
                  .parent = child_parent,
                  .task_id = "child_task",
                  .execution_id = de::generate_execution_id(),
                  .retry_options = {.max_attempts = 3},
                  .timeout = milliseconds{30'000},
                  .input = R"({"n":1})"});
      }
      const auto later = now + milliseconds{1};
      const de::UpdateByStatusAndStartAtLessThanRequest claim{
          .status = de::TaskExecutionStatus::ready,
          .start_at_less_than = later,
          .update = de::normalize_update(later, {.executor_id = "de_bench",
                                                 .status = de::TaskExecutionStatus::running,
                                                 .started_at = later}),
          .update_expires_at_with_started_at = later + milliseconds{300'000},
          .limit = static_cast<std::int32_t>(kBatch)};
      state.ResumeTiming();

      const auto t0 = Clock::now();
      storage.insert_many(batch);
      const auto t1 = Clock::now();
      auto claimed = storage.update_by_status_and_start_at_less_than_and_return(claim);
      const auto t2 = Clock::now();
      if (claimed.size() != kBatch) {
        state.SkipWithError("the claim did not return the inserted executions");
        break;
      }
      state.PauseTiming();
      for (std::size_t i = 0; i < kBatch; ++i) {
        auto& req = complete[i];
        req.execution_id = std::move(claimed[i].execution_id);
        req.filters = {.status = de::TaskExecutionStatus::running};
        auto update =
            de::normalize_update(later, {.status = de::TaskExecutionStatus::completed,
                                         .output = R"({"ok":true})",
                                         .children = std::vector<de::TaskExecutionSummary>{}});
        update.close_status = de::CloseStatus::closed;
        update.closed_at = later;
        req.update = std::move(update);
        req.decrement_parent_active_children_count = true;
      }
      state.ResumeTiming();
      const auto t3 = Clock::now();
      storage.update_many_by_id(complete);
      const auto t4 = Clock::now();
      insert_time += t1 - t0;
      claim_time += t2 - t1;
      complete_time += t4 - t3;
      executions += static_cast<std::int64_t>(kBatch);
      ++rounds;
    }
    const auto mean_us = [&](Clock::duration d) {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
      return rounds == 0 ? 0.0 : static_cast<double>(ns) / 1000.0 / static_cast<double>(rounds);
    };
    state.counters["insert_us"] = mean_us(insert_time);
    state.counters["claim_us"] = mean_us(claim_time);
    state.counters["complete_us"] = mean_us(complete_time);
    state.counters["executions"] =
        benchmark::Counter(static_cast<double>(executions), benchmark::Counter::kIsRate);
  }
  remove_db(path);
}

}  // namespace

BENCHMARK(BM_SqliteClaimAndCompleteBatch)->Unit(benchmark::kMicrosecond)->UseRealTime();
