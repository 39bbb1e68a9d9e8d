#pragma once

// A workload run across a disruption of its PostgreSQL server (a restart, a failover): parents
// with children, sequential chains and simple tasks on one executor. Every execution must end
// completed with the right output, once: no child inserted twice, none lost.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "durable_execution/durable_execution.hpp"
#include "durable_execution/postgres/postgres_storage.hpp"
#include "local_server.hpp"
#include "postgres_support.hpp"
#include "storage_factory.hpp"

namespace durable_execution::testing::workload {

namespace de = durable_execution;
using namespace std::chrono_literals;

/** Skips without server binaries (fails in CI, where they must be installed). */
#define DE_SKIP_WITHOUT_SERVER_BINARIES()                                              \
  do {                                                                                 \
    if (auto reason = ::durable_execution::testing::local_server_unavailable_reason(); \
        !reason.empty()) {                                                             \
      if (::durable_execution::testing::running_in_ci()) FAIL() << reason;             \
      GTEST_SKIP() << reason;                                                          \
    }                                                                                  \
  } while (false)

/** Reads an execution's state until it is finished or `deadline`, riding out storage errors. */
template <class Handle>
auto wait_finished(Handle& handle, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    try {
      auto e = handle.get_execution();
      if (de::is_finished(e.status) || std::chrono::steady_clock::now() > deadline) return e;
    } catch (const de::DurableExecutionError& e) {
      if (!e.is_retryable() || std::chrono::steady_clock::now() > deadline) throw;
    }
    std::this_thread::sleep_for(20ms);
  }
}

/**
 * Runs parents with children, chains and simple tasks on one executor over `url` (schema
 * "workload"), calls `disrupt()` once the workload is under way, then checks that every
 * execution ended completed with the right output, once, reading the result through
 * `check_url` (the server that is the primary at the end).
 */
inline void run_disrupted_workload(const std::string& url, const std::function<void()>& disrupt,
                                   const std::function<std::string()>& check_url) {
  de::PostgresTaskExecutionsStorage storage{url, {.schema = "workload", .pool_size = 6}};
  de::DurableExecutor executor{storage,
                               {.expire_leeway = 0ms,
                                .background_process_intra_batch_sleep = 20ms,
                                .log_level = de::LogLevel::error,
                                .log_sink = [](de::LogLevel, std::string_view) {},
                                // A children or close step cut off by the disruption is retried
                                // once its lease expires: well within the wait below (the
                                // 120 s defaults are not).
                                .children_step_lease = 5s,
                                .close_step_lease = 5s}};
  std::atomic<int> runs{0};
  auto leaf = executor.task<int, int>({.id = "leaf", .timeout = 5s}, [&](const int& x) {
    ++runs;
    std::this_thread::sleep_for(2ms);
    return x + 1;
  });
  auto fan_out = executor.parent_task<int>(
      {.id = "fan_out", .timeout = 5s},
      [leaf](const int& n) {
        de::ParentRunResult<int> result{n, {}};
        for (int i = 0; i < n; ++i) result.children.push_back(de::child(leaf, i * 10));
        return result;
      },
      [](const de::ParentTaskOutput<int>& p) {
        int sum = 0;
        for (const auto& c : p.children) sum += c.is_completed() ? c.output_as<int>() : -1000;
        return sum;
      });
  auto chain = executor.sequential_tasks("chain", leaf, leaf, leaf);
  executor.start();

  constexpr int kParents = 30;
  constexpr int kChildren = 10;
  constexpr int kChains = 30;
  constexpr int kLeaves = 100;
  std::vector<de::TaskExecutionHandle<int>> parents;
  std::vector<de::TaskExecutionHandle<int>> chains;
  std::vector<de::TaskExecutionHandle<int>> leaves;
  for (int i = 0; i < kParents; ++i) parents.push_back(executor.enqueue_task(fan_out, kChildren));
  for (int i = 0; i < kChains; ++i) chains.push_back(executor.enqueue_task(chain, 100 * i));
  for (int i = 0; i < kLeaves; ++i) leaves.push_back(executor.enqueue_task(leaf, i));

  // Restart once the workload is under way (some runs done, most not).
  const auto started = std::chrono::steady_clock::now();
  while (runs.load() < 60 && std::chrono::steady_clock::now() - started < 30s) {
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_GE(runs.load(), 60);
  disrupt();

  // sum over i of (i*10 + 1) for i < kChildren
  // One deadline for all the waits: a stuck workload fails within it.
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  const int expected_sum = 10 * (kChildren * (kChildren - 1) / 2) + kChildren;
  // What a stuck parent and its children look like in the store, for the failure message.
  const auto describe = [&](const std::string& id) {
    std::string text;
    for (const auto& row : de::testing::postgres_query(
             check_url(),
             "SELECT execution_id, status, on_children_finished_processing_status, "
             "active_children_count, close_status, coalesce(executor_id, '-') FROM "
             "workload.task_executions WHERE execution_id = '" +
                 id + "' OR parent_execution_id = '" + id + "' ORDER BY id")) {
      for (const auto& cell : row) text += cell + " ";
      text += "\n";
    }
    return text;
  };
  for (auto& h : parents) {
    auto e = wait_finished(h, deadline);
    ASSERT_EQ(e.status, de::TaskExecutionStatus::completed) << h.execution_id() << "\n"
                                                            << describe(h.execution_id());
    EXPECT_EQ(e.output, expected_sum);
  }
  for (int i = 0; i < kChains; ++i) {
    auto e = wait_finished(chains[static_cast<std::size_t>(i)], deadline);
    ASSERT_EQ(e.status, de::TaskExecutionStatus::completed);
    EXPECT_EQ(e.output, 100 * i + 3);
  }
  for (int i = 0; i < kLeaves; ++i) {
    auto e = wait_finished(leaves[static_cast<std::size_t>(i)], deadline);
    ASSERT_EQ(e.status, de::TaskExecutionStatus::completed);
    EXPECT_EQ(e.output, i + 1);
  }
  executor.shutdown();

  const std::string table = "workload.task_executions";
  // No child was inserted twice (one row per parent and position), every row completed.
  EXPECT_TRUE(de::testing::postgres_query(
                  check_url(),
                  "SELECT parent_execution_id, index_in_parent_children, is_finalize_of_parent "
                  "FROM " +
                      table +
                      " WHERE parent_execution_id IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1")
                  .empty());
  EXPECT_EQ(de::testing::postgres_query(check_url(), "SELECT count(*) FROM " + table +
                                                         " WHERE status <> 'completed'")[0][0],
            "0");
  EXPECT_EQ(
      de::testing::postgres_query(check_url(), "SELECT count(*) FROM " + table +
                                                   " WHERE parent_execution_id IS NULL")[0][0],
      std::to_string(kParents + kChains + kLeaves));
  // Every leaf ran at least once; runs interrupted by the restart may have run twice.
  EXPECT_GE(runs.load(), kParents * kChildren + kChains * 3 + kLeaves);
}

}  // namespace durable_execution::testing::workload
