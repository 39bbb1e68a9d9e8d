#pragma once

// Helpers shared by the SQLite-specific tests: a temp database path removed after the test, and
// record builders.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "durable_execution/sqlite/sqlite_storage.hpp"
#include "durable_execution/task_execution.hpp"
#include "storage_factory.hpp"

namespace durable_execution::testing {

inline void remove_database_files(const std::string& path) {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    std::filesystem::remove(path + suffix, ignored);
  }
}

/** @brief Fixture: `path_` is a fresh database file path, deleted (with -wal/-shm) afterwards. */
class SqliteFileTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = temp_path("de_sqlite_specific") + ".db"; }
  void TearDown() override { remove_database_files(path_); }

  std::string path_;
};

inline Timestamp test_now() { return from_unix_ms(1'750'000'000'000); }

/** @brief A fresh ready record as the engine inserts it, with a new execution id. */
inline TaskExecutionRecord ready_record(Timestamp now = test_now(), std::string task_id = "task") {
  NewTaskExecution values;
  values.task_id = std::move(task_id);
  values.execution_id = generate_execution_id();
  values.timeout = std::chrono::milliseconds{1000};
  values.input = "{}";
  return make_task_execution_record(now, std::move(values));
}

inline std::vector<TaskExecutionRecord> ready_records(std::size_t count,
                                                      Timestamp now = test_now()) {
  std::vector<TaskExecutionRecord> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) out.push_back(ready_record(now));
  return out;
}

/** @brief The start-at claim the executor's ready loop makes (T3). */
inline UpdateByStatusAndStartAtLessThanRequest claim_request(const std::string& executor_id,
                                                             std::int64_t limit,
                                                             Timestamp now = test_now()) {
  TaskExecutionUpdate update;
  update.executor_id = executor_id;
  update.status = TaskExecutionStatus::running;
  update.started_at = now;
  UpdateByStatusAndStartAtLessThanRequest request;
  request.status = TaskExecutionStatus::ready;
  request.start_at_less_than = now + std::chrono::milliseconds{1};
  request.update = normalize_update(now, update);
  request.update_expires_at_with_started_at = now;
  request.limit = limit;
  return request;
}

}  // namespace durable_execution::testing
