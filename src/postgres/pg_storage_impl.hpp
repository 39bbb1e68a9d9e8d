#pragma once

// The state behind PostgresTaskExecutionsStorage (its PIMPL), composed of the backend's parts:
// the table schema (pg_schema), the connection pool (pg_pool), the statements (pg_statements),
// the wake-ups (pg_notify); and the table operations the contract methods are built from
// (pg_operations.cpp). Threads: every thread that calls the storage, each on its own pooled
// connection; the shared parts guard themselves.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "durable_execution/postgres/postgres_storage.hpp"
#include "pg_notify.hpp"
#include "pg_pool.hpp"
#include "pg_rows.hpp"
#include "pg_schema.hpp"
#include "pg_statements.hpp"
#include "sql/rate_limited_log.hpp"
#include "sql/sql_mapping.hpp"

namespace durable_execution {

struct PostgresTaskExecutionsStorage::Impl {
  /** Validates the options, connects, and creates or migrates the schema (see the class doc). */
  Impl(std::string connection_string, PostgresStorageOptions o);

  PostgresStorageOptions options;
  postgres::TableSchema table;
  postgres::Pool pool;
  postgres::StatementText text;
  postgres::PreparedStatements statements;
  sql::RateLimitedLog warning_log;
  postgres::Notifications notifications;  // last: its threads stop first

  /** What an operation's body runs on: the storage, one connection, its transaction. */
  struct Ctx {
    Impl& impl;
    postgres::Connection& c;
    pqxx::transaction_base& tx;

    /** Runs statement `key` (its SQL made by `make_sql` once per storage). */
    template <class F>
    pqxx::result exec(std::uint64_t key, F&& make_sql, const postgres::Params& params) {
      return impl.statements.exec(c, tx, key, std::forward<F>(make_sql), params);
    }
  };

  /** Runs `body(ctx)` on a pooled connection as `mode` says (postgres::Pool::run). */
  template <class F, class Recheck = std::nullptr_t>
  auto run(std::string_view operation, postgres::Mode mode, F&& body, Recheck&& recheck = nullptr) {
    return pool.run(
        operation, mode,
        [&](postgres::Connection& c, pqxx::transaction_base& tx) {
          Ctx ctx{*this, c, tx};
          return body(ctx);
        },
        std::forward<Recheck>(recheck));
  }

  /**
   * Rule 3 of deferred durability (storage.hpp): if `rows`, just read on ctx's connection, hold a
   * finished execution and the server has WAL not yet flushed (or a synchronous standby to
   * confirm it), commits a one-record transaction synchronously on that connection (a
   * transactional logical-decoding message, prefix "durable_execution", that consumers of
   * logical replication may see). Its commit follows every commit the read saw, so once it is
   * flushed (and, with synchronous replication, replicated) so are they. Lost with its
   * connection, it is retried with the read.
   */
  static void make_view_durable(Ctx& ctx, const std::vector<TaskExecutionRecord>& rows);

  /** Deferred if every request may defer its durability and the options allow it. */
  template <class Req>
  postgres::Mode write_mode(const std::vector<Req>& requests) const {
    const bool defer =
        options.defer_run_results && std::all_of(requests.begin(), requests.end(),
                                                 [](const Req& r) { return r.defer_durability; });
    return defer ? postgres::Mode::deferred_transaction : postgres::Mode::transaction;
  }

  /** Marks that a write may have created work for other processes (postgres::Notifications). */
  void work_created() { notifications.work_created(); }

  /** Logs through the sink (default: stderr), rate-limited (sql::RateLimitedLog). */
  void warn(std::string_view message) noexcept;

  // ---- table operations (pg_operations.cpp) ----

  /** One multi-row INSERT of all rows: each column is one array parameter. */
  void insert_rows(Ctx& ctx, const std::vector<const TaskExecutionRecord*>& rows);

  /** Rows whose `column` is one of `keys` (one array parameter), by that column's value. */
  std::vector<TaskExecutionRecord> select_by_keys(Ctx& ctx, postgres::Query q,
                                                  std::string_view column,
                                                  const std::vector<const std::string*>& keys);

  struct GroupedUpdate {
    std::string execution_id;  // the updated row's id
    std::string parent_execution_id;
  };

  /**
   * One UPDATE of rows by execution id, each with its own values of one update shape and its
   * own filter values (one array parameter per column: `unnest` joined on execution_id).
   * Returns the updated rows' ids (and parent ids). Ids must be distinct. `Req`:
   * UpdateByIdRequest or UpdateByIdAndInsertChildrenRequest.
   */
  template <class Req>
  std::vector<GroupedUpdate> update_group(Ctx& ctx, const std::vector<const Req*>& group,
                                          bool want_parent);

  /** Guarded update of one row; returns its parent id if updated (nullopt if not updated). */
  std::optional<std::string> update_one(Ctx& ctx, const std::string& execution_id,
                                        const GetByIdFilters& filters,
                                        const TaskExecutionUpdate& update);

  /** Decrements parents' active children counts, in execution id order (a fixed lock order). */
  void decrement_parents(
      Ctx& ctx, const std::map<std::string, std::pair<std::int64_t, Timestamp>>& decrements);

  /**
   * Selects up to `limit` rows (`where`, whose `$1..$k` are the values in `where_params`,
   * ordered by `order_by`, locked with SKIP LOCKED), applies the update, and returns them with
   * the update applied (RETURNING), in selection order. Corrupt rows are set aside
   * (set_aside_corrupt) and returned only with `keep_corrupt`.
   */
  std::vector<TaskExecutionRecord> claim(Ctx& ctx, postgres::Query q, std::uint64_t flags,
                                         std::string_view where, postgres::Params where_params,
                                         std::string_view order_by, std::int64_t limit,
                                         const TaskExecutionUpdate& update,
                                         std::optional<Timestamp> expires_at_base = std::nullopt,
                                         bool keep_corrupt = false);

  /** Like claim(), returning only the number of rows updated. */
  std::int64_t update_selected(Ctx& ctx, postgres::Query q, std::string_view where,
                               postgres::Params where_params, std::string_view order_by,
                               std::int64_t limit, const TaskExecutionUpdate& update);

  /**
   * Sets aside a corrupt row a claim selected: writes it `failed` with its "corrupt record"
   * error, so that no claim selects it again. Returns whether the claim returns it.
   */
  bool set_aside_corrupt(Ctx& ctx, std::int64_t id, TaskExecutionRecord& record, Timestamp now,
                         bool keep, std::vector<std::string>& messages);
};

}  // namespace durable_execution
