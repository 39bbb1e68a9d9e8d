#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "durable_execution/export.hpp"
#include "durable_execution/storage.hpp"

namespace durable_execution {

/** @brief How hard SQLite syncs to disk on commit (`PRAGMA synchronous`), in WAL mode. */
enum class SqliteSynchronous {
  /** No fsync: an OS crash or power loss may corrupt the database. Tests and scratch data only. */
  off,
  /**
   * fsync at WAL checkpoints only: never corrupts; a power loss (not a process crash) may roll
   * back the last commits, which the engine sees as runs to repeat (at-least-once).
   */
  normal,
  /** fsync on every commit: a committed state change survives power loss. */
  full,
};

/**
 * @brief Options of SqliteTaskExecutionsStorage. An aggregate: set fields with designated
 * initializers; every field has a default.
 */
struct SqliteStorageOptions {
  /**
   * Name of the executions table. Must match `[A-Za-z_][A-Za-z0-9_]{0,62}` and must not start
   * with `sqlite_`; the index names are derived from it (`ix_<table>_...`).
   */
  std::string table_name = "task_executions";
  /** How long one statement waits for another connection's lock before SQLITE_BUSY. */
  std::chrono::milliseconds busy_timeout{5000};
  /**
   * How many times an operation that still failed with SQLITE_BUSY/SQLITE_LOCKED is retried
   * (with jittered exponential back-off starting at 1 ms) before a retryable
   * DurableExecutionError is thrown.
   */
  std::int32_t max_busy_retries = 8;
  /**
   * Durability of a commit; see SqliteSynchronous. `normal` (the default) loses nothing when a
   * process crashes; choose `full` to also survive power loss, at one fsync per commit.
   */
  SqliteSynchronous synchronous = SqliteSynchronous::normal;
  /** Page cache size per connection, in KiB (`PRAGMA cache_size=-N`). */
  std::int64_t cache_size_kib = 8192;
  /**
   * Extra read-only connections for the lookup methods (`get_many_*`), so reads never wait
   * behind a write (for example one waiting for another process's lock). 0 runs reads on the
   * writer connection.
   */
  std::int32_t read_connections = 2;
  /**
   * Receives the storage's own warnings: corrupt rows set aside, a database file found deleted or
   * replaced. Rate-limited (a burst of 5, then one line per 10 s with a count of the rest). Called
   * from the thread of the storage call, never under the storage's locks; it must not call the
   * storage. Empty: the lines go to stderr.
   */
  std::function<void(std::string_view message)> log_sink{};
};

/**
 * @brief A durable TaskExecutionsStorage on one SQLite database file: the embedded default
 * backend for one machine, shared by any number of threads and processes.
 *
 * Opening the file creates the table and its indexes, or migrates an older schema version; every
 * query the engine makes is served by an index. The database runs in WAL mode, so readers never
 * wait for the writer; every write is one `BEGIN IMMEDIATE` transaction, so each method is atomic
 * across processes too. A busy database is waited for (`busy_timeout`), then retried with
 * back-off (`max_busy_retries`); if it stays busy the call throws a retryable
 * DurableExecutionError, which the executor retries like any transient storage failure.
 *
 * @code
 * durable_execution::SqliteTaskExecutionsStorage storage{"app.db"};
 * durable_execution::SqliteTaskExecutionsStorage other{"app.db", {.table_name = "jobs"}};
 * @endcode
 *
 * A row another program damaged never blocks other work: it reads as a `failed` record whose
 * non-retryable error names the column ("corrupt record: column ..."), and a claim that selects
 * it writes it so (it is set aside) instead of returning it. If the database file is deleted or
 * replaced while the storage is open, every later call fails with a non-retryable error.
 *
 * @throws DurableExecutionError from the constructor if the file cannot be opened, is not a
 *   SQLite database, is private to one connection (`:memory:`, `""`, a `mode=memory` URI), the
 *   table name is invalid, or the table was written by a newer schema version of this library
 *   (it is then left untouched).
 *
 * @note Thread safety: thread-safe; every method is atomic. Several processes may open the same
 *   file (not over a network file system: SQLite's locking needs a local one). Methods may be
 *   called concurrently from any threads: writes are serialized on one writer connection per
 *   storage, lookups run in parallel on a small pool of read connections (WAL snapshots).
 */
class DURABLE_EXECUTION_EXPORT SqliteTaskExecutionsStorage final : public TaskExecutionsStorage {
 public:
  /** @brief The schema version this library writes (stored per table in
   * `durable_execution_schema`). Version 2 added `lease_expirations`; older tables are migrated
   * when opened. */
  static constexpr std::int32_t schema_version = 2;

  /**
   * @brief Opens (creating if missing) the database at `path` and prepares the table.
   * @param path a file path, or a SQLite URI starting with `file:`.
   * @param options the table, busy handling, the cache and the read pool (SqliteStorageOptions).
   */
  explicit SqliteTaskExecutionsStorage(std::string path, SqliteStorageOptions options = {});
  /** @brief Closes the connection; never throws. */
  ~SqliteTaskExecutionsStorage() override;

  void insert_many(const std::vector<TaskExecutionRecord>& executions) override;
  [[nodiscard]] std::vector<std::optional<TaskExecutionRecord>> get_many_by_id(
      const std::vector<GetByIdRequest>& requests) override;
  [[nodiscard]] std::vector<std::optional<TaskExecutionRecord>> get_many_by_sleeping_task_unique_id(
      const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) override;
  void update_many_by_id(const std::vector<UpdateByIdRequest>& requests) override;
  void update_many_by_id_and_insert_children_if_updated(
      const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) override;
  [[nodiscard]] std::vector<TaskExecutionRecord> update_by_status_and_start_at_less_than_and_return(
      const UpdateByStatusAndStartAtLessThanRequest& request) override;
  [[nodiscard]] std::vector<TaskExecutionRecord>
  update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
      const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) override;
  [[nodiscard]] std::vector<TaskExecutionRecord> update_by_close_status_and_return(
      const UpdateByCloseStatusRequest& request) override;
  std::int64_t update_by_is_sleeping_task_and_expires_at_less_than(
      const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) override;
  std::int64_t update_by_on_children_finished_processing_expires_at_less_than(
      const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) override;
  std::int64_t update_by_close_expires_at_less_than(
      const UpdateByCloseExpiresAtLessThanRequest& request) override;
  [[nodiscard]] std::vector<TaskExecutionRecord>
  update_by_executor_id_and_needs_promise_cancellation_and_return(
      const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) override;
  [[nodiscard]] std::vector<std::vector<TaskExecutionRecord>> get_many_by_parent_execution_id(
      const std::vector<GetByParentExecutionIdRequest>& requests) override;
  void update_many_by_parent_execution_id_and_is_finished(
      const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) override;
  std::int64_t update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
      const UpdateAndDecrementParentActiveChildrenCountRequest& request) override;
  void delete_by_id(const DeleteByIdRequest& request) override;
  void delete_all() override;

  /** @brief The database path this storage was opened with. */
  [[nodiscard]] const std::string& path() const noexcept;
  /** @brief The (validated) executions table name. */
  [[nodiscard]] const std::string& table_name() const noexcept;

  /**
   * @brief The SQL text of every statement this storage has prepared so far (schema statements
   * excluded). Diagnostics: the test suite runs `EXPLAIN QUERY PLAN` on each to prove that every
   * query is served by an index.
   */
  [[nodiscard]] std::vector<std::string> prepared_statement_sql() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace durable_execution
