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

/**
 * @brief Options of PostgresTaskExecutionsStorage. An aggregate: set fields with designated
 * initializers; every field has a default.
 */
struct PostgresStorageOptions {
  /**
   * Schema of the tables; created if missing. Must match `[A-Za-z_][A-Za-z0-9_]*` (at most 63
   * bytes); it is always double-quoted in SQL, so its case is kept.
   */
  std::string schema = "public";
  /**
   * Name of the executions table, same rule as `schema`, and not `durable_execution_schema`
   * (the schema-version table of the same schema). Index names derive from it
   * (`ix_<table>_...`).
   */
  std::string table_name = "task_executions";
  /**
   * Most connections this storage opens (opened on demand; each is used by one call at a time).
   * Calls beyond it wait for a free connection. Size it to the executor's concurrency: the
   * engine makes few storage calls at once (its loops plus the completion writer), so 8 suits
   * most executors; see docs/postgres.md for sizing against the server's `max_connections`.
   */
  std::int32_t pool_size = 8;
  /** Connect timeout of each connection: libpq's `connect_timeout`, so rounded up to whole
   * seconds, at least 1 (libpq itself waits at least 2 s); negative is refused. */
  std::chrono::milliseconds connect_timeout{10000};
  /**
   * How many times an operation that failed for a transient reason (a lost connection, a
   * server restart or failover, a deadlock or serialization failure) is retried, with
   * exponential back-off from 50 ms up to 1 s, before a retryable DurableExecutionError is
   * thrown. A commit whose outcome is unknown is re-checked, never blindly repeated.
   */
  std::int32_t max_retries = 8;
  /**
   * Cross-process wake-ups with LISTEN/NOTIFY: after a write that may create work (an enqueue,
   * finished children or runs, a cancellation, an expiry) this storage sends a NOTIFY (at most
   * one per millisecond, from its own connection), and executors subscribed on other storages
   * (other processes) wake at once instead of at their next poll. Costs one connection per
   * storage for sending and, while an executor runs on it, one for listening, outside
   * `pool_size`. Polling stays the fallback: a lost notification only delays work.
   */
  bool notify = true;
  /**
   * Commit the engine's run results without waiting for the WAL flush (the contract's
   * `defer_durability`; storage.hpp, "Deferred durability"): a database crash or failover can
   * then cost the results nobody has read yet, whose runs re-run after their leases, never one
   * that a claim, a caller or a read of a finished execution acted on. `false`: every write
   * waits for the flush (and any synchronous standby), so a database crash never re-runs a
   * finished run; the reference scenario takes ~30 % longer. Either way, enqueues, cancels,
   * wake-ups and claims are durable when they return.
   */
  bool defer_run_results = true;
  /**
   * Receives the storage's own warnings: corrupt rows set aside by claims. Rate-limited (a burst
   * of 5, then one line per 10 s with a count of the rest). Called from the thread of the storage
   * call, never under the storage's locks; it must not call the storage. Empty: the lines go to
   * stderr.
   */
  std::function<void(std::string_view message)> log_sink{};
};

/**
 * @brief A durable TaskExecutionsStorage on PostgreSQL: any number of executor processes on any
 * number of machines may share one database.
 *
 * The constructor connects (a clear error if the server is unreachable or refuses the
 * credentials), then creates the schema, the table and its indexes, or migrates an older
 * version (recorded in `<schema>.durable_execution_schema`; a newer version is refused without
 * touching anything). Every method is one transaction, and batch methods send each column of
 * the batch as one array parameter (`unnest`), so a call costs a fixed number of round trips
 * whatever its size. Claims select with `FOR UPDATE SKIP LOCKED`, so executors claim disjoint
 * rows without waiting for each other; parent decrements are applied in execution id order, so
 * concurrent calls do not deadlock. Values are always bound as parameters.
 *
 * A lost connection is replaced and the operation retried (`max_retries`); a commit whose
 * outcome is unknown is resolved with `txid_status()` of its transaction (or, for single
 * statements, by their guards) instead of being repeated. The connection string's password
 * never appears in an error message.
 *
 * @code
 * durable_execution::PostgresTaskExecutionsStorage storage{
 *     "postgresql://app@db1,db2/jobs?target_session_attrs=read-write", {.schema = "jobs"}};
 * durable_execution::DurableExecutor executor{storage};
 * @endcode
 *
 * @throws DurableExecutionError from the constructor for invalid options, an unreachable
 *   server, bad credentials, a table that is not an executions table, or a newer schema.
 *
 * @note Thread safety: thread-safe; every method is atomic, across processes too. Methods may
 *   be called concurrently from any threads; each call uses one pooled connection.
 */
class DURABLE_EXECUTION_EXPORT PostgresTaskExecutionsStorage final : public TaskExecutionsStorage {
 public:
  /** @brief The schema version this library writes. */
  static constexpr std::int32_t schema_version = 3;

  /**
   * @brief Connects and prepares the schema.
   * @param connection_string a libpq connection string or URL, e.g.
   *   `postgresql://user:password@host:5432/db` or `host=a,b dbname=db
   * target_session_attrs=read-write`.
   * @param options the schema and table, the pool, timeouts and retries (PostgresStorageOptions).
   */
  explicit PostgresTaskExecutionsStorage(std::string connection_string,
                                         PostgresStorageOptions options = {});
  /** @brief Closes every connection; never throws. */
  ~PostgresTaskExecutionsStorage() override;

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
  /**
   * @brief Calls `on_external_work` (from this storage's listener thread) when another storage
   * on the same table, usually in another process, has written work: LISTEN/NOTIFY. Also called
   * once after the listener (re)connects, since notifications may have been missed meanwhile.
   * Returns 0 (never calls) when `notify` is off.
   */
  std::uint64_t subscribe_to_external_work(std::function<void()> on_external_work) override;
  void unsubscribe_from_external_work(std::uint64_t token) noexcept override;

  /** @brief The connection string with its password replaced by `***`. */
  [[nodiscard]] const std::string& redacted_connection_string() const noexcept;
  /** @brief The (validated) schema name. */
  [[nodiscard]] const std::string& schema() const noexcept;
  /** @brief The (validated) executions table name. */
  [[nodiscard]] const std::string& table_name() const noexcept;

  /**
   * @brief The SQL text of every statement this storage has prepared so far (schema statements
   * excluded), with `$n` placeholders. Diagnostics: the test suite runs `EXPLAIN` on each to
   * prove that every query is served by an index.
   */
  [[nodiscard]] std::vector<std::string> prepared_statement_sql() const;

  /** @brief How many connections are open now (at most `pool_size`). */
  [[nodiscard]] std::int32_t open_connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace durable_execution
