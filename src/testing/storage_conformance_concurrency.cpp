// Storage conformance, part 3: concurrent callers (SPEC.md §3.12, §4.1 "Atomicity",
// "Concurrency"). Threads are lined up with std::latch so that their calls overlap; every wait
// is bounded, so a deadlocking store fails the test instead of hanging it.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <latch>
#include <map>
#include <set>
#include <thread>

#include "durable_execution/errors.hpp"
#include "durable_execution/testing/storage_conformance.hpp"
#include "storage_conformance_parts.hpp"

using durable_execution::CloseStatus;
using durable_execution::ErrorType;
using durable_execution::GetByIdFilters;
using durable_execution::StoredError;
using durable_execution::TaskExecutionRecord;
using durable_execution::TaskExecutionStatus;
using durable_execution::TaskExecutionSummary;
using durable_execution::testing::StorageConformance;
using durable_execution::testing::with_storage_retries;
using std::chrono::milliseconds;

int durable_execution::testing::detail::storage_conformance_concurrency_part() noexcept {
  return 0;
}

namespace {

constexpr auto kConcurrencyDeadline = std::chrono::seconds{60};

/**
 * Runs `body(i)` on `threads` threads at once (released together by a latch) and returns their
 * results in thread order. Exceptions from a body are rethrown here. If the bodies do not finish
 * within the deadline the store is deadlocked or livelocked: the process exits with a failure,
 * because the stuck threads still reference the test's state.
 */
template <class Body>
auto run_concurrently(int threads, Body body) {
  using Result = decltype(body(0));
  std::latch start{threads};
  std::vector<std::future<Result>> futures;
  futures.reserve(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i) {
    futures.push_back(std::async(std::launch::async, [&start, &body, i] {
      start.arrive_and_wait();
      return body(i);
    }));
  }
  const auto deadline = std::chrono::steady_clock::now() + kConcurrencyDeadline;
  for (auto& f : futures) {
    if (f.wait_until(deadline) != std::future_status::ready) {
      std::fprintf(stderr, "concurrent storage calls did not finish within %lld s\n",
                   static_cast<long long>(kConcurrencyDeadline.count()));
      std::fflush(stderr);
      std::_Exit(EXIT_FAILURE);
    }
  }
  std::vector<Result> results;
  results.reserve(futures.size());
  for (auto& f : futures) results.push_back(f.get());
  return results;
}

}  // namespace

TEST_P(StorageConformance, ConcurrentClaimsAreDisjointAndComplete) {
  for (const int threads : {1, 2, 4, 8}) {
    SCOPED_TRACE(threads);
    constexpr int kRows = 120;
    std::vector<TaskExecutionRecord> rows;
    rows.reserve(kRows);
    for (int i = 0; i < kRows; ++i) {
      auto r = new_record();
      r.start_at = now_ - milliseconds{kRows - i};
      rows.push_back(std::move(r));
    }
    insert(rows);

    const auto t = now_ + milliseconds{10};
    auto claimed = run_concurrently(threads, [&](int i) {
      const auto executor = "executor-" + std::to_string(i);
      const auto update = normalized(
          t, {.executor_id = executor, .status = TaskExecutionStatus::running, .started_at = t});
      std::vector<TaskExecutionRecord> mine;
      for (;;) {
        auto batch = with_storage_retries([&] {
          return storage().update_by_status_and_start_at_less_than_and_return(
              {.status = TaskExecutionStatus::ready,
               .start_at_less_than = t,
               .update = update,
               .update_expires_at_with_started_at = t,
               .limit = 3});
        });
        // Rows never return to ready here, so an empty batch means none is left.
        if (batch.empty()) return mine;
        for (auto& r : batch) mine.push_back(std::move(r));
      }
    });

    std::set<std::string> all;
    std::size_t total = 0;
    for (std::size_t i = 0; i < claimed.size(); ++i) {
      const auto executor = "executor-" + std::to_string(i);
      for (const auto& r : claimed[i]) {
        ++total;
        EXPECT_TRUE(all.insert(r.execution_id).second) << r.execution_id << " claimed twice";
        EXPECT_EQ(r.executor_id, executor);
        EXPECT_EQ(fetch(r.execution_id).executor_id, executor)
            << "the stored row must name the executor that claimed it";
      }
    }
    EXPECT_EQ(total, rows.size());
    EXPECT_EQ(all.size(), rows.size());
    storage().delete_all();
  }
}

TEST_P(StorageConformance, ConcurrentDecrementsLoseNoUpdate) {
  constexpr int kParents = 4;
  constexpr int kChildrenPerParent = 40;
  constexpr int kThreads = 6;
  std::vector<TaskExecutionRecord> parents;
  std::vector<TaskExecutionRecord> rows;
  for (int p = 0; p < kParents; ++p) {
    auto parent = new_record();
    parent.status = TaskExecutionStatus::waiting_for_children;
    parent.active_children_count = kChildrenPerParent;
    parents.push_back(parent);
    rows.push_back(parent);
  }
  // Children interleaved across parents, so that every batch touches several parents.
  std::vector<std::string> child_ids;
  for (int c = 0; c < kChildrenPerParent; ++c) {
    for (int p = 0; p < kParents; ++p) {
      auto child = new_child_record(parents[static_cast<std::size_t>(p)], c);
      child.status = TaskExecutionStatus::completed;
      child.is_finished = true;
      child.updated_at = now_ - milliseconds{1000 - c};
      child_ids.push_back(child.execution_id);
      rows.push_back(std::move(child));
    }
  }
  insert(rows);

  const auto t = now_ + milliseconds{10};
  const auto mark = normalized(t, {.close_status = CloseStatus::ready});
  auto counts = run_concurrently(kThreads, [&](int) {
    std::int64_t marked = 0;
    for (;;) {
      const auto n = with_storage_retries([&] {
        return storage()
            .update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
                {.is_finished = true,
                 .close_status = CloseStatus::idle,
                 .update = mark,
                 .limit = 3});
      });
      if (n == 0) return marked;
      marked += n;
    }
  });

  std::int64_t total = 0;
  for (const auto n : counts) total += n;
  EXPECT_EQ(total, kParents * kChildrenPerParent);
  for (const auto& p : parents) {
    EXPECT_EQ(fetch(p.execution_id).active_children_count, 0) << p.execution_id;
  }
  for (const auto& r : fetch_all(child_ids)) EXPECT_EQ(r.close_status, CloseStatus::ready);
}

TEST_P(StorageConformance, ConcurrentGuardedUpdatesHaveExactlyOneWinner) {
  // Every thread tries to complete every row with its own mark, guarded by status=running,
  // and to insert a child marked the same way if (and only if) its update won. Exactly one child
  // per row proves exactly one winner; the child's mark must match the row's output.
  constexpr int kRows = 16;
  constexpr int kThreads = 8;
  std::vector<TaskExecutionRecord> rows;
  for (int i = 0; i < kRows; ++i) {
    auto r = new_record();
    r.status = TaskExecutionStatus::running;
    r.executor_id = "executor";
    r.expires_at = now_ + milliseconds{60'000};
    rows.push_back(std::move(r));
  }
  insert(rows);

  const auto t = now_ + milliseconds{10};
  run_concurrently(kThreads, [&](int thread) {
    const auto mark = "thread-" + std::to_string(thread);
    for (int k = 0; k < kRows; ++k) {
      // Each thread walks the rows from a different starting point.
      const auto& row = rows[static_cast<std::size_t>((k + thread * 3) % kRows)];
      auto child = new_child_record(row, 0);
      child.input = mark;
      with_storage_retries([&] {
        storage().update_many_by_id_and_insert_children_if_updated(
            {{row.execution_id,
              {.status = TaskExecutionStatus::running},
              normalized(t, {.status = TaskExecutionStatus::completed,
                             .output = mark,
                             .children = std::vector<TaskExecutionSummary>{{child.task_id,
                                                                            child.execution_id}}}),
              {child}}});
      });
    }
    return 0;
  });

  for (const auto& row : rows) {
    const auto got = fetch(row.execution_id);
    EXPECT_EQ(got.status, TaskExecutionStatus::completed);
    ASSERT_TRUE(got.output.has_value());
    const auto children = storage().get_many_by_parent_execution_id({{row.execution_id}}).at(0);
    ASSERT_EQ(children.size(), 1U) << "winners for " << row.execution_id;
    EXPECT_EQ(children[0].input, *got.output);
    ASSERT_TRUE(got.children.has_value());
    ASSERT_EQ(got.children->size(), 1U);
    EXPECT_EQ(got.children->front().execution_id, children[0].execution_id);
  }
}

TEST_P(StorageConformance, ConcurrentCompleteAndCancelNeverMix) {
  // A run result (guard status=running) races a cancel (guard is_finished=false) on each row:
  // each row ends either completed with the output or cancelled with the cancel error, never a
  // mixture of the two writes.
  constexpr int kRows = 40;
  std::vector<TaskExecutionRecord> rows;
  for (int i = 0; i < kRows; ++i) {
    auto r = new_record();
    r.status = TaskExecutionStatus::running;
    r.executor_id = "executor";
    r.expires_at = now_ + milliseconds{60'000};
    rows.push_back(std::move(r));
  }
  insert(rows);

  const auto t = now_ + milliseconds{10};
  const StoredError cancelled{ErrorType::cancelled, false, false, "Task execution cancelled"};
  const auto complete = normalized(t, {.status = TaskExecutionStatus::completed, .output = "out"});
  const auto cancel = normalized(t, {.status = TaskExecutionStatus::cancelled,
                                     .error = cancelled,
                                     .needs_promise_cancellation = true});
  run_concurrently(2, [&](int thread) {
    for (const auto& row : rows) {
      with_storage_retries([&] {
        if (thread == 0) {
          storage().update_many_by_id(
              {{row.execution_id, {.status = TaskExecutionStatus::running}, complete}});
        } else {
          storage().update_many_by_id({{row.execution_id, {.is_finished = false}, cancel}});
        }
      });
    }
    return 0;
  });

  for (const auto& got : fetch_all([&] {
         std::vector<std::string> ids;
         for (const auto& r : rows) ids.push_back(r.execution_id);
         return ids;
       }())) {
    EXPECT_TRUE(got.is_finished);
    if (got.status == TaskExecutionStatus::completed) {
      EXPECT_EQ(got.output, "out");
      EXPECT_FALSE(got.error.has_value());
      EXPECT_FALSE(got.needs_promise_cancellation);
      EXPECT_FALSE(got.executor_id.has_value());
    } else {
      EXPECT_EQ(got.status, TaskExecutionStatus::cancelled);
      EXPECT_EQ(got.error, cancelled);
      EXPECT_FALSE(got.output.has_value());
      EXPECT_TRUE(got.needs_promise_cancellation);
      EXPECT_EQ(got.executor_id, "executor");
    }
  }
}

TEST_P(StorageConformance, ConcurrentInsertsOfOneUniqueIdHaveExactlyOneWinner) {
  constexpr int kThreads = 8;
  const auto unique_id = "unique_" + durable_execution::generate_execution_id();
  std::vector<TaskExecutionRecord> candidates;
  for (int i = 0; i < kThreads; ++i) candidates.push_back(new_sleeping_record(unique_id));

  auto inserted = run_concurrently(kThreads, [&](int i) {
    try {
      with_storage_retries([&] { insert({candidates[static_cast<std::size_t>(i)]}); });
      return true;
    } catch (const durable_execution::DurableExecutionError&) {
      return false;
    }
  });

  const auto winners = std::count(inserted.begin(), inserted.end(), true);
  ASSERT_EQ(winners, 1);
  const auto winner = static_cast<std::size_t>(std::find(inserted.begin(), inserted.end(), true) -
                                               inserted.begin());
  const auto by_unique = storage().get_many_by_sleeping_task_unique_id({{unique_id}});
  ASSERT_TRUE(by_unique.at(0).has_value());
  EXPECT_EQ(*by_unique[0], candidates[winner]);
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    EXPECT_EQ(find(candidates[i].execution_id).has_value(), i == winner);
  }
}

TEST_P(StorageConformance, ConcurrentInsertsAndClaimsHandEachRowToExactlyOneClaimer) {
  // Producers insert ready rows while consumers claim them: every row is claimed exactly once,
  // so the claim index never misses or repeats a row inserted concurrently.
  constexpr int kProducers = 2;
  constexpr int kConsumers = 3;
  constexpr int kRowsPerProducer = 100;
  constexpr std::size_t kPerInsert = 5;
  std::atomic<int> producers_done{0};
  const auto t = now_ + milliseconds{10};

  auto results = run_concurrently(kProducers + kConsumers, [&](int i) {
    std::vector<std::string> ids;  // producers: inserted ids; consumers: claimed ids
    if (i < kProducers) {
      std::vector<TaskExecutionRecord> chunk;
      for (int k = 0; k < kRowsPerProducer; ++k) {
        chunk.push_back(new_record());
        ids.push_back(chunk.back().execution_id);
        if (chunk.size() == kPerInsert) {
          with_storage_retries([&] { insert(chunk); });
          chunk.clear();
        }
      }
      if (!chunk.empty()) with_storage_retries([&] { insert(chunk); });
      producers_done.fetch_add(1);
      return ids;
    }
    const auto update = normalized(t, {.executor_id = "executor-" + std::to_string(i),
                                       .status = TaskExecutionStatus::running,
                                       .started_at = t});
    for (;;) {
      // Read the flag before claiming: an empty claim after all producers finished is final.
      const bool producers_finished = producers_done.load() == kProducers;
      auto batch = with_storage_retries([&] {
        return storage().update_by_status_and_start_at_less_than_and_return(
            {.status = TaskExecutionStatus::ready,
             .start_at_less_than = t,
             .update = update,
             .update_expires_at_with_started_at = t,
             .limit = 4});
      });
      for (const auto& r : batch) ids.push_back(r.execution_id);
      if (batch.empty()) {
        if (producers_finished) return ids;
        std::this_thread::yield();
      }
    }
  });

  std::multiset<std::string> inserted;
  std::multiset<std::string> claimed;
  for (int i = 0; i < kProducers + kConsumers; ++i) {
    auto& target = i < kProducers ? inserted : claimed;
    for (auto& id : results[static_cast<std::size_t>(i)]) target.insert(std::move(id));
  }
  EXPECT_EQ(inserted.size(), static_cast<std::size_t>(kProducers * kRowsPerProducer));
  EXPECT_EQ(claimed, inserted);
}
