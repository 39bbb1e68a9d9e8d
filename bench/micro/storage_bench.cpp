// storage_bench: the in-memory store's cost to run one execution through the engine's hot path
// (insert a ready execution, claim it with the start-at claim, complete it with a status-guarded
// update), with 1,000, 100,000 and 1,000,000 executions already stored. The history is finished
// and closed records, as a long-running deployment accumulates them; a store whose claim or update
// scans rows would slow down with it, an indexed one stays flat. The 100,000 point separates
// "the history no longer fits in the CPU caches" from growth with the row count.
//
// Each iteration is one execution. Every kBatch iterations the timer is paused to verify the
// batch (each execution claimed once and completed) and to delete it, so the store stays at its
// nominal size however many iterations the library chooses.

#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "durable_execution/in_memory_storage.hpp"
#include "durable_execution/task_execution.hpp"
#include "history_record.hpp"

namespace de = durable_execution;
using std::chrono::milliseconds;

namespace {

constexpr std::size_t kBatch = 1000;
using Clock = std::chrono::steady_clock;

using de::bench::finished_record;

// One pre-filled store per history size, built once however often the benchmark body runs.
de::InMemoryTaskExecutionsStorage& store_with_history(std::int64_t history) {
  static std::map<std::int64_t, std::unique_ptr<de::InMemoryTaskExecutionsStorage>> stores;
  auto& slot = stores[history];
  if (!slot) {
    slot = std::make_unique<de::InMemoryTaskExecutionsStorage>();
    const auto now = de::now_timestamp();
    std::vector<de::TaskExecutionRecord> chunk;
    for (std::int64_t i = 0; i < history; ++i) {
      chunk.push_back(finished_record(now, i));
      if (chunk.size() == 10'000 || i + 1 == history) {
        slot->insert_many(chunk);
        chunk.clear();
      }
    }
  }
  return *slot;
}

// kBreakdown additionally times each of the three calls with the steady clock and reports their
// mean cost as counters (insert_ns, claim_ns, complete_ns); the clock reads add ~50 ns, so the
// headline figure comes from the plain variant.
template <bool kBreakdown>
void claim_and_complete(benchmark::State& state) {
  const auto history = state.range(0);
  auto& storage = store_with_history(history);
  if (static_cast<std::int64_t>(storage.size()) != history) {
    state.SkipWithError("store does not hold the expected history");
    return;
  }

  std::vector<std::vector<de::TaskExecutionRecord>> batch(kBatch);
  std::vector<std::string> ids(kBatch);
  de::UpdateByStatusAndStartAtLessThanRequest claim;
  std::vector<de::UpdateByIdRequest> complete(1);
  std::size_t next = kBatch;  // forces a batch preparation before the first iteration
  std::int64_t claimed_total = 0;
  Clock::duration insert_time{};
  Clock::duration claim_time{};
  Clock::duration complete_time{};

  // Verifies and removes the finished batch, then prepares the next one (untimed).
  auto prepare = [&](std::size_t used) -> bool {
    for (std::size_t i = 0; i < used; ++i) {
      auto got = storage.get_many_by_id({{ids[i], {.status = de::TaskExecutionStatus::completed}}});
      if (!got[0]) return false;
      storage.delete_by_id({ids[i]});
    }
    const auto now = de::now_timestamp();
    for (std::size_t i = 0; i < kBatch; ++i) {
      ids[i] = de::generate_execution_id();
      batch[i] = {de::make_task_execution_record(now, {.task_id = "bench_task",
                                                       .execution_id = ids[i],
                                                       .retry_options = {.max_attempts = 3},
                                                       .timeout = milliseconds{30'000},
                                                       .input = R"({"n":1})"})};
    }
    const auto later = now + milliseconds{1};
    claim = {.status = de::TaskExecutionStatus::ready,
             .start_at_less_than = later,
             .update = de::normalize_update(later, {.executor_id = "de_bench",
                                                    .status = de::TaskExecutionStatus::running,
                                                    .started_at = later}),
             .update_expires_at_with_started_at = later + milliseconds{300'000},
             .limit = 1};
    complete[0].filters = {.status = de::TaskExecutionStatus::running};
    complete[0].update =
        de::normalize_update(later, {.status = de::TaskExecutionStatus::completed,
                                     .output = R"({"ok":true})",
                                     .children = std::vector<de::TaskExecutionSummary>{}});
    return true;
  };

  for (auto _ : state) {
    if (next == kBatch) {
      state.PauseTiming();
      const bool ok = prepare(claimed_total > 0 ? kBatch : 0);
      next = 0;
      state.ResumeTiming();
      if (!ok) {
        state.SkipWithError("an execution was not completed");
        break;
      }
    }
    const auto t0 = kBreakdown ? Clock::now() : Clock::time_point{};
    storage.insert_many(batch[next]);
    const auto t1 = kBreakdown ? Clock::now() : Clock::time_point{};
    auto claimed = storage.update_by_status_and_start_at_less_than_and_return(claim);
    const auto t2 = kBreakdown ? Clock::now() : Clock::time_point{};
    if (claimed.size() != 1 || claimed[0].execution_id != ids[next]) {
      state.SkipWithError("the claim did not return the inserted execution");
      break;
    }
    complete[0].execution_id = std::move(claimed[0].execution_id);
    const auto t3 = kBreakdown ? Clock::now() : Clock::time_point{};
    storage.update_many_by_id(complete);
    if constexpr (kBreakdown) {
      const auto t4 = Clock::now();
      insert_time += t1 - t0;
      claim_time += t2 - t1;
      complete_time += t4 - t3;
    }
    benchmark::DoNotOptimize(complete);
    ++claimed_total;
    ++next;
  }

  // Leave the store at its nominal size for the next run of this body.
  for (std::size_t i = 0; i < next && i < ids.size(); ++i) storage.delete_by_id({ids[i]});
  state.counters["history"] = static_cast<double>(history);
  state.counters["executions"] =
      benchmark::Counter(static_cast<double>(claimed_total), benchmark::Counter::kIsRate);
  if constexpr (kBreakdown) {
    const auto mean_ns = [&](Clock::duration d) {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
      return claimed_total == 0 ? 0.0
                                : static_cast<double>(ns) / static_cast<double>(claimed_total);
    };
    state.counters["insert_ns"] = mean_ns(insert_time);
    state.counters["claim_ns"] = mean_ns(claim_time);
    state.counters["complete_ns"] = mean_ns(complete_time);
  }
}

void BM_ClaimAndComplete(benchmark::State& state) { claim_and_complete<false>(state); }
void BM_ClaimAndCompleteBreakdown(benchmark::State& state) { claim_and_complete<true>(state); }

}  // namespace

BENCHMARK(BM_ClaimAndComplete)
    ->ArgName("history")
    ->Arg(1'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ClaimAndCompleteBreakdown)
    ->ArgName("history")
    ->Arg(1'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMicrosecond);
