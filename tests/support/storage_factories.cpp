#include <atomic>
#include <filesystem>
#include <random>
#include <system_error>

#include "durable_execution/in_memory_storage.hpp"
#include "storage_factory.hpp"

#ifdef DE_TEST_WITH_SQLITE
#include "durable_execution/sqlite/sqlite_storage.hpp"
#endif

namespace durable_execution::testing {

std::string temp_path(const std::string& stem) {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  auto name = stem + "_" + std::to_string(rd()) + "_" + std::to_string(counter.fetch_add(1));
  return (std::filesystem::temp_directory_path() / name).string();
}

StorageFactory in_memory_factory() {
  return {"InMemory", [] { return std::make_unique<InMemoryTaskExecutionsStorage>(); }};
}

#ifdef DE_TEST_WITH_SQLITE
namespace {

/** Removes a SQLite database file and its WAL/shared-memory companions; never throws. */
void remove_sqlite_files(const std::string& path) noexcept {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    std::filesystem::remove(path + suffix, ignored);
  }
}

/**
 * A SQLite storage on its own temp file that deletes the file (and -wal/-shm) when destroyed:
 * forwards every call to the real storage, which it closes first.
 */
class TempFileSqliteStorage final : public TaskExecutionsStorage {
 public:
  explicit TempFileSqliteStorage(std::string path) : path_(std::move(path)) {
    try {
      inner_ = std::make_unique<SqliteTaskExecutionsStorage>(path_);
    } catch (...) {
      remove_sqlite_files(path_);
      throw;
    }
  }
  TempFileSqliteStorage(const TempFileSqliteStorage&) = delete;
  TempFileSqliteStorage& operator=(const TempFileSqliteStorage&) = delete;
  TempFileSqliteStorage(TempFileSqliteStorage&&) = delete;
  TempFileSqliteStorage& operator=(TempFileSqliteStorage&&) = delete;
  ~TempFileSqliteStorage() override {
    inner_.reset();
    remove_sqlite_files(path_);
  }

  void insert_many(const std::vector<TaskExecutionRecord>& executions) override {
    inner_->insert_many(executions);
  }
  std::vector<std::optional<TaskExecutionRecord>> get_many_by_id(
      const std::vector<GetByIdRequest>& requests) override {
    return inner_->get_many_by_id(requests);
  }
  std::vector<std::optional<TaskExecutionRecord>> get_many_by_sleeping_task_unique_id(
      const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) override {
    return inner_->get_many_by_sleeping_task_unique_id(requests);
  }
  void update_many_by_id(const std::vector<UpdateByIdRequest>& requests) override {
    inner_->update_many_by_id(requests);
  }
  void update_many_by_id_and_insert_children_if_updated(
      const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) override {
    inner_->update_many_by_id_and_insert_children_if_updated(requests);
  }
  std::vector<TaskExecutionRecord> update_by_status_and_start_at_less_than_and_return(
      const UpdateByStatusAndStartAtLessThanRequest& request) override {
    return inner_->update_by_status_and_start_at_less_than_and_return(request);
  }
  std::vector<TaskExecutionRecord>
  update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
      const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) override {
    return inner_
        ->update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
            request);
  }
  std::vector<TaskExecutionRecord> update_by_close_status_and_return(
      const UpdateByCloseStatusRequest& request) override {
    return inner_->update_by_close_status_and_return(request);
  }
  std::int64_t update_by_is_sleeping_task_and_expires_at_less_than(
      const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) override {
    return inner_->update_by_is_sleeping_task_and_expires_at_less_than(request);
  }
  std::int64_t update_by_on_children_finished_processing_expires_at_less_than(
      const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) override {
    return inner_->update_by_on_children_finished_processing_expires_at_less_than(request);
  }
  std::int64_t update_by_close_expires_at_less_than(
      const UpdateByCloseExpiresAtLessThanRequest& request) override {
    return inner_->update_by_close_expires_at_less_than(request);
  }
  std::vector<TaskExecutionRecord> update_by_executor_id_and_needs_promise_cancellation_and_return(
      const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) override {
    return inner_->update_by_executor_id_and_needs_promise_cancellation_and_return(request);
  }
  std::vector<std::vector<TaskExecutionRecord>> get_many_by_parent_execution_id(
      const std::vector<GetByParentExecutionIdRequest>& requests) override {
    return inner_->get_many_by_parent_execution_id(requests);
  }
  void update_many_by_parent_execution_id_and_is_finished(
      const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) override {
    inner_->update_many_by_parent_execution_id_and_is_finished(requests);
  }
  std::int64_t update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
      const UpdateAndDecrementParentActiveChildrenCountRequest& request) override {
    return inner_->update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
        request);
  }
  void delete_by_id(const DeleteByIdRequest& request) override { inner_->delete_by_id(request); }
  void delete_all() override { inner_->delete_all(); }

 private:
  std::string path_;
  std::unique_ptr<SqliteTaskExecutionsStorage> inner_;
};

}  // namespace

StorageFactory sqlite_factory() {
  // A fresh FILE per storage (never ":memory:", which is per connection and hides locking bugs).
  return {"Sqlite", [] {
            return std::make_unique<TempFileSqliteStorage>(temp_path("de_sqlite_test") + ".db");
          }};
}
#endif

std::vector<StorageFactory> all_storage_factories() {
  std::vector<StorageFactory> factories{in_memory_factory()};
#ifdef DE_TEST_WITH_SQLITE
  factories.push_back(sqlite_factory());
#endif
  return factories;
}

}  // namespace durable_execution::testing
