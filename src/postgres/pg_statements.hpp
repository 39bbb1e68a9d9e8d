#pragma once

// Statements of the PostgreSQL backend: the SQL text of every prepared statement on the
// executions table, the keys and names they are prepared under (one statement per query, update
// shape and filter set), and their preparation: text made once per storage, prepared once per
// connection. Threads: any storage caller; the text cache is guarded by its mutex, a connection's
// prepared set belongs to the call holding that connection.

#include <cstdint>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pg_pool.hpp"
#include "pg_rows.hpp"
#include "sql/sql_mapping.hpp"

namespace durable_execution::postgres {

// The statements of the storage, the high byte of a statement key (shape and flags complete it).
enum Query : std::uint64_t {
  q_insert = 1,
  q_get_by_ids,
  q_get_by_unique_ids,
  q_get_by_parent_ids,
  q_update_by_ids,
  q_update_by_ids_returning_parent,
  q_update_by_id,
  q_decrement_parents,
  q_claim_by_status_start_at,
  q_claim_by_status_ocfp_status,
  q_claim_by_close_status,
  q_claim_by_executor_id_npc,
  q_expire_sleeping,
  q_expire_ocfp,
  q_expire_close,
  q_update_by_parent_ids,
  q_close_finished,
  q_count_ids,
  q_delete_by_id,
  q_delete_all,
  q_set_aside,
  q_set_aside_closed,
  q_expire_sleeping_exhausted,
};

/** A statement's key. Layout: query (8 bits) | flags (8) | NULL columns (24) | set columns (24). */
[[nodiscard]] std::uint64_t statement_key(Query q, sql::UpdateShape shape = {},
                                          std::uint64_t flags = 0);

/** The name a statement is prepared under: "de_" and its key in 16 hex digits. */
[[nodiscard]] std::string statement_name(std::uint64_t key);

// A claim's status values are written into its statement as literals (so that the partial
// indexes of pg_schema.cpp apply; each value gets its own prepared statement, `flags` of its
// key). They are the storage's own enum names, never caller text.
[[nodiscard]] std::string claim_literal(std::string_view enum_name);
[[nodiscard]] std::string claim_literal(bool value);
// A string literal would convert to bool, not to std::string_view.
std::string claim_literal(const char*) = delete;

/** Which optional filters of a guarded update by id are set (each set its own statement). */
struct IdFilters {
  bool is_sleeping_task = false;
  bool status = false;
  bool is_finished = false;

  [[nodiscard]] static IdFilters of(const GetByIdFilters& f) noexcept {
    return {f.is_sleeping_task.has_value(), f.status.has_value(), f.is_finished.has_value()};
  }
  /** Bits 0-2 of a statement key's flags. */
  [[nodiscard]] std::uint64_t flags() const noexcept {
    return (is_sleeping_task ? 1U : 0U) | (status ? 2U : 0U) | (is_finished ? 4U : 0U);
  }
};

/**
 * The SQL text of the statements on one executions table, with `$n` placeholders. Values are
 * always parameters; only the table name, enum literals (claim_literal) and column names of this
 * backend are written into the text.
 */
class StatementText {
 public:
  /** `table`: the quoted, qualified table name (`"schema"."table"`). */
  explicit StatementText(std::string table);

  /** The table's quoted, qualified name. */
  [[nodiscard]] const std::string& table() const noexcept { return table_; }

  /** Multi-row INSERT: each column one array parameter ($1..$40), `unnest`ed. */
  [[nodiscard]] std::string insert() const;
  /** Rows whose `column` is in the text array $1 (`id, kColumns...`). */
  [[nodiscard]] std::string select_by(std::string_view column) const;
  /**
   * UPDATE of rows by execution id, each with its own values and filter values: arrays of ids
   * ($1), of the filters that are set, then of the shape's values. Returns the execution ids
   * (and parent ids with `want_parent`).
   */
  [[nodiscard]] std::string update_by_ids(const sql::UpdateShape& shape, IdFilters filters,
                                          bool want_parent) const;
  /** Guarded UPDATE of one row: the shape's values, the id, the filters set; its parent id. */
  [[nodiscard]] std::string update_by_id(const sql::UpdateShape& shape, IdFilters filters) const;
  /** Parents' active children counts decremented: ids $1, counts $2, updated_at $3. */
  [[nodiscard]] std::string decrement_parents() const;
  /**
   * Claim: up to $<where_params + 1> rows of `where` (parameters $1..$where_params) in
   * `order_by` order, locked SKIP LOCKED, updated and returned (`id, kColumns..., order key`).
   */
  [[nodiscard]] std::string claim(std::string_view where, int where_params,
                                  std::string_view order_by, const sql::UpdateShape& shape) const;
  /** As claim(), returning nothing (the count of updated rows). */
  [[nodiscard]] std::string update_selected(std::string_view where, int where_params,
                                            std::string_view order_by,
                                            const sql::UpdateShape& shape) const;
  /**
   * A corrupt row set aside as failed (by id): error $1, now $2 and $3, then (closing it here)
   * now $4 and the id $5, else the id $4.
   */
  [[nodiscard]] std::string set_aside(bool close_here) const;
  /** UPDATE of children by parent id and is_finished (arrays $1, $2, then the shape's values). */
  [[nodiscard]] std::string update_by_parent_ids(const sql::UpdateShape& shape) const;
  /** Finished rows of one close status closed, up to $1, returning their parents' ids. */
  [[nodiscard]] std::string close_finished(bool is_finished, std::string_view close_status,
                                           const sql::UpdateShape& shape) const;
  [[nodiscard]] std::string delete_by_id() const;
  [[nodiscard]] std::string delete_all() const;

 private:
  std::string table_;
  std::string select_list_;  // t.id, t.root_task_id, ...
};

/**
 * Prepared statements: each statement's text made once per storage (by the `make_sql` of its
 * first use), prepared on a connection at its first use there. Thread safety: thread-safe.
 */
class PreparedStatements {
 public:
  /** Runs statement `key` on `tx` (a transaction of connection `c`) with `params`. */
  template <class F>
  pqxx::result exec(Connection& c, pqxx::transaction_base& tx, std::uint64_t key, F&& make_sql,
                    const Params& params) {
    if (c.prepared.count(key) == 0) {
      std::string sql;
      {
        std::lock_guard lock(mutex_);
        auto it = sql_by_key_.find(key);
        if (it == sql_by_key_.end()) it = sql_by_key_.emplace(key, make_sql()).first;
        sql = it->second;
      }
      prepare(c, key, sql);
    }
    return exec_prepared(tx, key, params);
  }

  /** The text of every statement made so far, in key order. */
  [[nodiscard]] std::vector<std::string> all_sql() const;

 private:
  static void prepare(Connection& c, std::uint64_t key, const std::string& sql);
  static pqxx::result exec_prepared(pqxx::transaction_base& tx, std::uint64_t key,
                                    const Params& params);

  mutable std::mutex mutex_;
  std::map<std::uint64_t, std::string> sql_by_key_;  // every statement's text, made once
};

}  // namespace durable_execution::postgres
