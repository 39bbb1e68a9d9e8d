#pragma once

// The queries of the SQLite backend over one executions table: the SQL text of each (built once,
// then cached per connection by a key of the query and its shape), and the building blocks the
// contract methods compose (guarded updates by id, select-then-update claims, the one-statement
// start-at claim, setting corrupt rows aside). Threads: any caller thread, on the connection it
// holds; the object itself is immutable after construction.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "durable_execution/task_execution.hpp"
#include "sql/sql_update_shape.hpp"
#include "sqlite/sqlite_connection.hpp"
#include "sqlite/sqlite_statement.hpp"

namespace durable_execution::sqlite {

// The statements of the storage, the high byte of a statement cache key. Statements whose text
// depends on an update's shape or a request's filters add those bits (cache_key()).
enum Query : std::uint64_t {
  q_insert = 1,
  q_get_by_id,
  q_get_by_sleeping_task_unique_id,
  q_get_by_parent_execution_id,
  q_update_by_id,
  q_decrement_parent,
  q_parent_of,
  q_select_by_status_start_at,
  q_update_by_status_start_at,
  q_claim_by_status_start_at,
  q_select_by_status_ocfp_status,
  q_update_by_status_ocfp_status,
  q_select_by_close_status,
  q_update_by_close_status,
  q_select_by_executor_id_npc,
  q_update_by_executor_id_npc,
  q_update_by_is_sleeping_task_expires_at,
  q_update_exhausted_by_is_sleeping_task_expires_at,
  q_update_by_ocfp_expires_at,
  q_update_by_close_expires_at,
  q_update_by_parent_execution_id_is_finished,
  q_select_by_is_finished_close_status,
  q_update_by_is_finished_close_status,
  q_delete_by_id,
  q_delete_all,
  q_set_aside,
  q_set_aside_closed,
};

/** The statement cache key of query `q` for an update of `shape` and query-specific `flags`. */
[[nodiscard]] std::uint64_t cache_key(Query q, sql::UpdateShape shape = {},
                                      std::uint64_t flags = 0);

// Every write runs inside a transaction that is rolled back whole when any statement fails, so
// no statement needs its own rollback: OR FAIL (instead of the default ABORT) spares SQLite the
// statement journal (a savepoint per statement) that ABORT needs for multi-row statements and
// RETURNING. Errors (constraints, NOT NULL) are still raised with the same codes.
constexpr std::string_view kUpdate = "UPDATE OR FAIL ";
constexpr std::string_view kInsert = "INSERT OR FAIL INTO ";

/** The queries on one executions table. */
class TableQueries {
 public:
  /** `table` must be valid (is_valid_table_name). */
  explicit TableQueries(std::string table);

  [[nodiscard]] const std::string& table() const noexcept { return table_; }
  /** The table's name quoted, as every statement writes it. */
  [[nodiscard]] const std::string& quoted_table() const noexcept { return quoted_table_; }

  /** `SELECT id, <kColumns> FROM table WHERE <where>`. */
  [[nodiscard]] std::string select_where(std::string_view where) const;

  /** Every row `stmt` (a select_where statement, bound) returns. */
  [[nodiscard]] std::vector<TaskExecutionRecord> read_all(Connection& c, Stmt& stmt) const;

  void insert_rows(Connection& c, const std::vector<TaskExecutionRecord>& rows) const;

  struct UpdateResult {
    bool updated = false;
    std::string parent_execution_id;  // with want_parent: the updated row's parent, or ""
  };

  /**
   * Guarded update of one row by execution id. With `want_parent`, an updated row's parent
   * execution id is looked up after the update (the row's pages are hot then; a RETURNING
   * clause costs more: SQLite buffers its rows in a temporary table per statement run).
   */
  UpdateResult update_by_id(Connection& c, const std::string& execution_id,
                            const GetByIdFilters& filters, const TaskExecutionUpdate& update,
                            bool want_parent) const;

  // Like the reference engine's SQL stores, a decrement also bumps the parent's updated_at.
  void decrement_active_children_count(Connection& c, const std::string& parent_id,
                                       std::int64_t count, Timestamp updated_at) const;

  /**
   * Selects up to `limit` rows (`select_q`: `where` with `where_params`, then `order_by`),
   * applies the update to each by rowid, and returns them with the update applied, in selection
   * order. Corrupt rows are set aside (set_aside_corrupt), and returned only if `return_corrupt`.
   */
  std::vector<TaskExecutionRecord> select_and_update(
      Connection& c, Query select_q, Query update_q, std::string_view where,
      std::initializer_list<Param> where_params, std::string_view order_by, std::int64_t limit,
      const TaskExecutionUpdate& update, std::optional<Timestamp> expires_at_base = std::nullopt,
      bool return_corrupt = false) const;

  /**
   * The claim: one UPDATE of the rows that an indexed, ordered, limited subquery selects
   * (`status = ? AND start_at < ?` by start_at, `where_params` the two values), returning the
   * stored rows (RETURNING), sorted back into selection order: (start_at, rowid) is the order of
   * the (status, start_at) index. One statement instead of a SELECT and an UPDATE per row. Only
   * for updates that leave start_at alone (the sort key must be the selection's).
   */
  std::vector<TaskExecutionRecord> claim_by_start_at(Connection& c,
                                                     std::initializer_list<Param> where_params,
                                                     std::int64_t limit,
                                                     const TaskExecutionUpdate& update,
                                                     Timestamp expires_at_base) const;

  /** One UPDATE of the rows selected by an indexed, ordered, limited subquery; returns count. */
  std::int64_t update_selected(Connection& c, Query q, std::string_view where,
                               std::initializer_list<Param> where_params, std::string_view order_by,
                               std::int64_t limit, const TaskExecutionUpdate& update) const;

 private:
  /** Reads every row of `stmt` (rowid first): its rowid, its record, whether it is corrupt. */
  void read_rows(Connection& c, Stmt& stmt, std::vector<std::int64_t>& ids,
                 std::vector<TaskExecutionRecord>& rows, std::vector<bool>& corrupt) const;
  void set_aside_corrupt(Connection& c, const std::vector<std::int64_t>& ids,
                         std::vector<TaskExecutionRecord>& rows, const std::vector<bool>& corrupt,
                         Timestamp now, bool keep) const;

  std::string table_;
  std::string quoted_table_;
  std::string select_list_;  // id, col1, ... colN
};

/**
 * Parent decrements of one call, applied once per parent (one row write instead of one per
 * child). A decrement commutes with writes to other rows, so it is only applied early when a
 * later request of the same call writes the parent itself: the call's result is the same as
 * applying every decrement in request order.
 */
struct PendingDecrements {
  struct Entry {
    std::string parent;
    std::int64_t count;
    Timestamp updated_at;  // the last decrement's, as in request order
  };
  std::vector<Entry> entries;  // a call touches few parents: a linear search

  void add(std::string parent, Timestamp updated_at);
  void flush_one(const TableQueries& q, Connection& c, const std::string& execution_id);
  void flush_all(const TableQueries& q, Connection& c);
};

}  // namespace durable_execution::sqlite
