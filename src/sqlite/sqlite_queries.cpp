// The queries of the SQLite backend over one executions table (sqlite_queries.hpp). Entered by
// any caller thread, inside a transaction on the connection it holds.

#include "sqlite/sqlite_queries.hpp"

#include <algorithm>
#include <utility>

#include "durable_execution/detail/saturating_time.hpp"
#include "sql/sql_columns.hpp"
#include "sqlite/sqlite_row_codec.hpp"

namespace durable_execution::sqlite {

namespace {

using sql::b;
using sql::json_text;
using sql::ms;
using sql::shape_of;

// What a corrupt row is set aside as (set_aside_corrupt): failed and finished, with its error;
// out of every claim (no executor, lease or cancellation pending) but still on the close path
// (an unreadable close status becomes idle), so that its parent is told. Parameters: the error
// JSON, now (finished_at if unreadable), now (updated_at).
constexpr std::string_view kSetAsideColumns =
    "status = 'failed', is_finished = 1, error = ?, "
    "finished_at = CASE WHEN typeof(finished_at) = 'integer' THEN finished_at ELSE ? END, "
    "executor_id = NULL, expires_at = NULL, run_output = NULL, needs_promise_cancellation = 0, "
    "on_children_finished_processing_expires_at = NULL, "
    "close_status = CASE WHEN close_status IN ('idle', 'ready', 'closing', 'closed') "
    "THEN close_status ELSE 'idle' END, "
    "close_expires_at = CASE WHEN typeof(close_expires_at) = 'integer' THEN close_expires_at "
    "ELSE NULL END, "
    "updated_at = ?";

}  // namespace

// Layout: query (8 bits) | flags (8 bits) | NULL columns (24 bits) | set columns (24 bits).
static_assert(sql::s_field_count <= 24);
std::uint64_t cache_key(Query q, sql::UpdateShape shape, std::uint64_t flags) {
  return (static_cast<std::uint64_t>(q) << 56) | (flags << 48) |
         (static_cast<std::uint64_t>(shape.null) << 24) | static_cast<std::uint64_t>(shape.set);
}

TableQueries::TableQueries(std::string table)
    : table_(std::move(table)), quoted_table_("\"" + table_ + "\""), select_list_("id") {
  for (auto c : sql::kColumns) {
    select_list_ += ", ";
    select_list_ += c;
  }
}

std::string TableQueries::select_where(std::string_view where) const {
  return "SELECT " + select_list_ + " FROM " + quoted_table_ + " WHERE " + std::string{where};
}

std::vector<TaskExecutionRecord> TableQueries::read_all(Connection& c, Stmt& stmt) const {
  std::vector<TaskExecutionRecord> out;
  while (stmt.step()) out.push_back(read_record(stmt, table_, c.decode));
  return out;
}

void TableQueries::read_rows(Connection& c, Stmt& stmt, std::vector<std::int64_t>& ids,
                             std::vector<TaskExecutionRecord>& rows,
                             std::vector<bool>& corrupt) const {
  while (stmt.step()) {
    ids.push_back(stmt.int64(0));
    bool bad = false;
    rows.push_back(read_record(stmt, table_, c.decode, &bad));
    corrupt.push_back(bad);
  }
  stmt.reset();
}

void TableQueries::insert_rows(Connection& c, const std::vector<TaskExecutionRecord>& rows) const {
  if (rows.empty()) return;
  auto& stmt = c.statement(cache_key(q_insert), [&] {
    std::string sql = std::string{kInsert} + quoted_table_ + " (";
    std::string params;
    for (std::size_t i = 0; i < sql::kColumns.size(); ++i) {
      if (i > 0) {
        sql += ", ";
        params += ", ";
      }
      sql += sql::kColumns[i];
      params += "?";
    }
    return sql + ") VALUES (" + params + ")";
  });
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i > 0) stmt.reset();  // every parameter is rebound below
    bind_record(stmt, rows[i], c.retry_options);
    (void)stmt.exec();
  }
}

TableQueries::UpdateResult TableQueries::update_by_id(Connection& c,
                                                      const std::string& execution_id,
                                                      const GetByIdFilters& filters,
                                                      const TaskExecutionUpdate& update,
                                                      bool want_parent) const {
  const auto shape = shape_of(update, std::nullopt);
  const std::uint64_t flags = (filters.is_sleeping_task ? 1U : 0U) | (filters.status ? 2U : 0U) |
                              (filters.is_finished ? 4U : 0U);
  auto& stmt = c.statement(cache_key(q_update_by_id, shape, flags), [&] {
    std::string sql =
        std::string{kUpdate} + quoted_table_ + " SET " + shape.sql() + " WHERE execution_id = ?";
    if (filters.is_sleeping_task) sql += " AND is_sleeping_task = ?";
    if (filters.status) sql += " AND status = ?";
    if (filters.is_finished) sql += " AND is_finished = ?";
    return sql;
  });
  int next = bind_update(stmt, update, std::nullopt);
  stmt.bind_static(next++, execution_id);
  if (filters.is_sleeping_task) stmt.bind(next++, b(*filters.is_sleeping_task));
  if (filters.status) stmt.bind_static(next++, to_string(*filters.status));
  if (filters.is_finished) stmt.bind(next++, b(*filters.is_finished));
  UpdateResult result;
  result.updated = stmt.exec() > 0;
  if (result.updated && want_parent) {
    auto& parent = c.statement(cache_key(q_parent_of), [&] {
      return "SELECT parent_execution_id FROM " + quoted_table_ + " WHERE execution_id = ?";
    });
    parent.bind_static(1, execution_id);
    if (parent.step() && parent.type(0) == SQLITE_TEXT) {
      result.parent_execution_id = parent.text(0);
    }
    parent.reset();
  }
  return result;
}

void TableQueries::decrement_active_children_count(Connection& c, const std::string& parent_id,
                                                   std::int64_t count, Timestamp updated_at) const {
  auto& dec = c.statement(cache_key(q_decrement_parent), [&] {
    return std::string{kUpdate} + quoted_table_ +
           " SET active_children_count = active_children_count - ?, updated_at = ? WHERE "
           "execution_id = ?";
  });
  dec.bind(1, count);
  dec.bind(2, ms(updated_at));
  dec.bind_static(3, parent_id);
  (void)dec.exec();
}

std::vector<TaskExecutionRecord> TableQueries::select_and_update(
    Connection& c, Query select_q, Query update_q, std::string_view where,
    std::initializer_list<Param> where_params, std::string_view order_by, std::int64_t limit,
    const TaskExecutionUpdate& update, std::optional<Timestamp> expires_at_base,
    bool return_corrupt) const {
  std::vector<std::int64_t> ids;
  std::vector<TaskExecutionRecord> rows;
  std::vector<bool> corrupt;
  {
    auto& select = c.statement(cache_key(select_q), [&] {
      return select_where(where) + " ORDER BY " + std::string{order_by} + " LIMIT ?";
    });
    const int next = select.bind_all(1, where_params);
    select.bind(next, limit);
    read_rows(c, select, ids, rows, corrupt);
  }
  if (rows.empty()) return {};
  const auto shape = shape_of(update, expires_at_base);
  auto& upd = c.statement(cache_key(update_q, shape), [&] {
    return std::string{kUpdate} + quoted_table_ + " SET " + shape.sql() + " WHERE id = ?";
  });
  // Bindings survive a reset: the update's values are bound once, the rowid per row.
  const int id_param = bind_update(upd, update, expires_at_base);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i > 0) upd.reset();
    upd.bind(id_param, ids[i]);
    (void)upd.exec();
    // The returned row is the stored row: the same update, applied by the same rules.
    auto& record = rows[i];
    apply_update(record, update);
    if (expires_at_base) {
      record.expires_at = detail::saturating_add(*expires_at_base, record.timeout);
    }
  }
  upd.reset();
  set_aside_corrupt(c, ids, rows, corrupt, update.updated_at, return_corrupt);
  return rows;
}

/**
 * Sets aside the corrupt rows a claim selected (`corrupt[i]`): each is written `failed` with
 * its "corrupt record" error in the claim's transaction, so that no claim selects it again, and
 * dropped from `rows` unless `keep` (the close claim: closing a failed execution is what the
 * engine does next anyway). A row whose set-aside write fails is skipped; the claim's own
 * update then stands and the row comes back after its lease (rate-limited log both ways).
 */
void TableQueries::set_aside_corrupt(Connection& c, const std::vector<std::int64_t>& ids,
                                     std::vector<TaskExecutionRecord>& rows,
                                     const std::vector<bool>& corrupt, Timestamp now,
                                     bool keep) const {
  if (std::find(corrupt.begin(), corrupt.end(), true) == corrupt.end()) return;
  std::vector<TaskExecutionRecord> kept;
  kept.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (!corrupt[i]) {
      kept.push_back(std::move(rows[i]));
      continue;
    }
    const std::string message = rows[i].error->message;
    // Without a readable execution id nothing can close the row later (the engine addresses
    // rows by id): the close claim then closes it here.
    const bool close_here = keep && rows[i].execution_id.empty();
    auto& stmt = c.statement(cache_key(close_here ? q_set_aside_closed : q_set_aside), [&] {
      return std::string{kUpdate} + quoted_table_ + " SET " + std::string{kSetAsideColumns} +
             (close_here ? ", close_status = 'closed', closed_at = ?, close_expires_at = NULL"
                         : "") +
             " WHERE id = ?";
    });
    try {
      const auto error = json_text(*rows[i].error);
      int p = 1;
      stmt.bind_copy(p++, error);
      stmt.bind(p++, ms(now));
      stmt.bind(p++, ms(now));
      if (close_here) stmt.bind(p++, ms(now));
      stmt.bind(p, ids[i]);
      (void)stmt.exec();
      stmt.reset();
      c.warnings.push_back(std::string{"set aside a corrupt execution as failed"} +
                           (close_here ? " and closed" : "") + ": " + message);
      if (keep && !close_here) {
        rows[i].executor_id.reset();
        rows[i].updated_at = now;
        kept.push_back(std::move(rows[i]));
      }
    } catch (const SQLite::Exception& e) {
      stmt.reset();
      c.warnings.push_back("could not set aside a corrupt execution (" + std::string{e.what()} +
                           "); skipped: " + message);
    }
  }
  rows = std::move(kept);
}

std::vector<TaskExecutionRecord> TableQueries::claim_by_start_at(
    Connection& c, std::initializer_list<Param> where_params, std::int64_t limit,
    const TaskExecutionUpdate& update, Timestamp expires_at_base) const {
  const auto shape = shape_of(update, expires_at_base);
  auto& stmt = c.statement(cache_key(q_claim_by_status_start_at, shape), [&] {
    return std::string{kUpdate} + quoted_table_ + " SET " + shape.sql() +
           " WHERE id IN (SELECT id FROM " + quoted_table_ +
           " WHERE status = ? AND start_at < ? ORDER BY start_at LIMIT ?) RETURNING " +
           select_list_;
  });
  int next = bind_update(stmt, update, expires_at_base);
  next = stmt.bind_all(next, where_params);
  stmt.bind(next, limit);
  std::vector<std::int64_t> ids;
  std::vector<TaskExecutionRecord> rows;
  std::vector<bool> corrupt;
  read_rows(c, stmt, ids, rows, corrupt);
  if (std::find(corrupt.begin(), corrupt.end(), true) != corrupt.end()) {
    set_aside_corrupt(c, ids, rows, corrupt, update.updated_at, false);
    std::vector<std::int64_t> kept_ids;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (!corrupt[i]) kept_ids.push_back(ids[i]);
    }
    ids = std::move(kept_ids);
  }
  std::vector<std::size_t> order(rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return rows[a].start_at != rows[b].start_at ? rows[a].start_at < rows[b].start_at
                                                : ids[a] < ids[b];
  });
  std::vector<TaskExecutionRecord> out;
  out.reserve(rows.size());
  for (auto i : order) out.push_back(std::move(rows[i]));
  return out;
}

std::int64_t TableQueries::update_selected(Connection& c, Query q, std::string_view where,
                                           std::initializer_list<Param> where_params,
                                           std::string_view order_by, std::int64_t limit,
                                           const TaskExecutionUpdate& update) const {
  const auto shape = shape_of(update, std::nullopt);
  auto& stmt = c.statement(cache_key(q, shape), [&] {
    return std::string{kUpdate} + quoted_table_ + " SET " + shape.sql() +
           " WHERE id IN (SELECT id FROM " + quoted_table_ + " WHERE " + std::string{where} +
           " ORDER BY " + std::string{order_by} + " LIMIT ?)";
  });
  int next = bind_update(stmt, update, std::nullopt);
  next = stmt.bind_all(next, where_params);
  stmt.bind(next, limit);
  return stmt.exec();
}

void PendingDecrements::add(std::string parent, Timestamp updated_at) {
  for (auto& e : entries) {
    if (e.parent == parent) {
      ++e.count;
      e.updated_at = updated_at;
      return;
    }
  }
  entries.push_back({std::move(parent), 1, updated_at});
}

void PendingDecrements::flush_one(const TableQueries& q, Connection& c,
                                  const std::string& execution_id) {
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (it->parent == execution_id) {
      q.decrement_active_children_count(c, it->parent, it->count, it->updated_at);
      entries.erase(it);
      return;
    }
  }
}

void PendingDecrements::flush_all(const TableQueries& q, Connection& c) {
  for (const auto& e : entries) {
    q.decrement_active_children_count(c, e.parent, e.count, e.updated_at);
  }
  entries.clear();
}

}  // namespace durable_execution::sqlite
