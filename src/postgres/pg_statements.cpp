// Statements of the PostgreSQL backend: their SQL text and their preparation (see
// pg_statements.hpp). Entered by any storage caller.
#include "pg_statements.hpp"

#include <algorithm>
#include <array>

#include "pg_schema.hpp"

namespace durable_execution::postgres {

namespace {

using sql::SetField;
using sql::UpdateShape;

// PostgreSQL types of the SetField values (the casts of an update's array parameters): the
// types of the columns they assign.
constexpr auto kSetTypes = [] {
  std::array<std::string_view, sql::s_field_count> types{};
  for (std::size_t f = 0; f < types.size(); ++f) types[f] = column_type(sql::kSetColumns[f]);
  return types;
}();
static_assert(std::find(kSetTypes.begin(), kSetTypes.end(), std::string_view{}) == kSetTypes.end(),
              "every SetField assigns a column of kColumns");

// What a corrupt row is set aside as (see set_aside_corrupt in pg_operations.cpp): failed and
// finished, with its error; out of every claim (no executor, lease or cancellation pending) but
// still on the close path (an unreadable close status becomes idle), so that its parent is told.
// Parameters: the error JSON, now (finished_at if missing), now (updated_at); then the close
// columns' `now` in the closing variant, then the id.
constexpr std::string_view kSetAsideColumns =
    "status = 'failed', is_finished = true, error = $1::json, "
    "finished_at = COALESCE(finished_at, $2::bigint), executor_id = NULL, expires_at = NULL, "
    "run_output = NULL, needs_promise_cancellation = false, "
    "on_children_finished_processing_expires_at = NULL, updated_at = $3::bigint";

std::string param(int& next) { return "$" + std::to_string(next++); }

/**
 * The SET clause of a scalar update: `$n` placeholders from `next` on. Expires_at from the base
 * saturates (a bigint overflow would be an error): the base parameter appears several times.
 */
std::string scalar_set_sql(const UpdateShape& shape, int& next) {
  return shape.sql([&](SetField f) {
    std::string p = param(next);
    if (f == sql::s_expires_at_from_base) {
      return sql::saturating_add_sql(p + "::bigint", "t.timeout_ms");
    }
    return p + "::" + std::string{kSetTypes[f]};
  });
}

/** The SET clause of a batch update: values from the joined list `v` (columns `f<field>`). */
std::string array_set_sql(const UpdateShape& shape) {
  return shape.sql([](SetField f) {
    std::string col = "v.f" + std::to_string(static_cast<unsigned>(f));
    if (f == sql::s_expires_at_from_base) return sql::saturating_add_sql(col, "t.timeout_ms");
    return col;
  });
}

/** The `unnest(...)` argument list and column names of an update shape's value arrays. */
struct ArrayColumns {
  std::string args;     // "$3::text[], $4::bigint[]"
  std::string columns;  // ", f1, f22"
};

ArrayColumns array_columns(const UpdateShape& shape, int& next) {
  ArrayColumns out;
  for (unsigned f = 0; f < sql::s_field_count; ++f) {
    if (((shape.set >> f) & 1U) == 0 || !sql::binds_value(static_cast<SetField>(f))) continue;
    out.args += ", " + param(next) + "::" + std::string{kSetTypes[f]} + "[]";
    out.columns += ", f" + std::to_string(f);
  }
  return out;
}

/**
 * Up to $<where_params + 1> rows of `where` in `order_by` order, locked SKIP LOCKED, then
 * updated (`sel.k`: their order key, with `with_key`).
 */
std::string locked_update(const std::string& table, std::string_view where, int where_params,
                          std::string_view order_by, const UpdateShape& shape, bool with_key) {
  int next = where_params + 2;
  return "WITH sel AS (SELECT id" +
         (with_key ? ", " + std::string{order_by} + " AS k" : std::string{}) + " FROM " + table +
         " WHERE " + std::string{where} + " ORDER BY " + std::string{order_by} + " LIMIT $" +
         std::to_string(where_params + 1) + " FOR UPDATE SKIP LOCKED) UPDATE " + table + " t SET " +
         scalar_set_sql(shape, next) +
         " FROM sel WHERE t.id = sel.id AND t.id = ANY(ARRAY(SELECT id FROM sel))";
}

}  // namespace

// ---- keys and names --------------------------------------------------------------------------

static_assert(sql::s_field_count <= 24);
std::uint64_t statement_key(Query q, UpdateShape shape, std::uint64_t flags) {
  return (static_cast<std::uint64_t>(q) << 56) | (flags << 48) |
         (static_cast<std::uint64_t>(shape.null) << 24) | static_cast<std::uint64_t>(shape.set);
}

std::string statement_name(std::uint64_t key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "de_";
  for (int shift = 60; shift >= 0; shift -= 4) name += kHex[(key >> shift) & 0xFU];
  return name;
}

std::string claim_literal(std::string_view enum_name) { return "'" + std::string{enum_name} + "'"; }
std::string claim_literal(bool value) { return value ? "true" : "false"; }

// ---- text ------------------------------------------------------------------------------------

StatementText::StatementText(std::string table) : table_(std::move(table)), select_list_("t.id") {
  for (auto c : sql::kColumns) {
    select_list_ += ", t.";
    select_list_ += c;
  }
}

std::string StatementText::insert() const {
  std::string sql = "INSERT INTO " + table_ + " (";
  std::string args;
  for (std::size_t i = 0; i < sql::kColumns.size(); ++i) {
    if (i > 0) {
      sql += ", ";
      args += ", ";
    }
    sql += sql::kColumns[i];
    args += '$';
    args += std::to_string(i + 1);
    args += "::";
    args += kColumnTypes[i].type;
    args += "[]";
  }
  sql += ") SELECT * FROM unnest(";
  sql += args;
  sql += ')';
  return sql;
}

std::string StatementText::select_by(std::string_view column) const {
  return "SELECT " + select_list_ + " FROM " + table_ + " t WHERE t." + std::string{column} +
         " = ANY($1::text[])";
}

std::string StatementText::update_by_ids(const UpdateShape& shape, IdFilters filters,
                                         bool want_parent) const {
  int next = 1;
  std::string args = param(next) + "::text[]";
  std::string cols = "eid";
  std::string where = "t.execution_id = v.eid";
  if (filters.is_sleeping_task) {
    args += ", " + param(next) + "::boolean[]";
    cols += ", fs";
    where += " AND t.is_sleeping_task = v.fs";
  }
  if (filters.status) {
    args += ", " + param(next) + "::text[]";
    cols += ", fst";
    where += " AND t.status = v.fst";
  }
  if (filters.is_finished) {
    args += ", " + param(next) + "::boolean[]";
    cols += ", ff";
    where += " AND t.is_finished = v.ff";
  }
  const auto value_cols = array_columns(shape, next);
  return "UPDATE " + table_ + " t SET " + array_set_sql(shape) + " FROM unnest(" + args +
         value_cols.args + ") AS v(" + cols + value_cols.columns + ") WHERE " + where +
         " RETURNING t.execution_id" + (want_parent ? ", t.parent_execution_id" : "");
}

std::string StatementText::update_by_id(const UpdateShape& shape, IdFilters filters) const {
  int next = 1;
  std::string sql = "UPDATE " + table_ + " t SET " + scalar_set_sql(shape, next);
  sql += " WHERE t.execution_id = " + param(next);
  if (filters.is_sleeping_task) sql += " AND t.is_sleeping_task = " + param(next);
  if (filters.status) sql += " AND t.status = " + param(next);
  if (filters.is_finished) sql += " AND t.is_finished = " + param(next);
  return sql + " RETURNING t.parent_execution_id";
}

std::string StatementText::decrement_parents() const {
  // The parents are locked first, in execution id order (the CTE's sort runs below its row
  // locks), so concurrent decrements of overlapping parents cannot deadlock.
  return "WITH locked AS MATERIALIZED (SELECT id, execution_id FROM " + table_ +
         " WHERE execution_id = ANY($1::text[]) ORDER BY execution_id FOR UPDATE) UPDATE " +
         table_ +
         " t SET active_children_count = t.active_children_count - v.d, updated_at = v.u FROM "
         "unnest($1::text[], $2::integer[], $3::bigint[]) AS v(pid, d, u) JOIN locked l ON "
         "l.execution_id = v.pid WHERE t.id = l.id";
}

std::string StatementText::claim(std::string_view where, int where_params,
                                 std::string_view order_by, const UpdateShape& shape) const {
  return locked_update(table_, where, where_params, order_by, shape, true) + " RETURNING " +
         select_list_ + ", sel.k";
}

std::string StatementText::update_selected(std::string_view where, int where_params,
                                           std::string_view order_by,
                                           const UpdateShape& shape) const {
  return locked_update(table_, where, where_params, order_by, shape, false);
}

std::string StatementText::set_aside(bool close_here) const {
  return "UPDATE " + table_ + " SET " + std::string{kSetAsideColumns} +
         (close_here ? ", close_status = 'closed', closed_at = $4::bigint, close_expires_at = "
                       "NULL WHERE id = $5::bigint"
                     : ", close_status = CASE WHEN close_status IN ('idle', 'ready', 'closing', "
                       "'closed') THEN close_status ELSE 'idle' END WHERE id = $4::bigint");
}

std::string StatementText::update_by_parent_ids(const UpdateShape& shape) const {
  int next = 3;
  const auto value_cols = array_columns(shape, next);
  return "UPDATE " + table_ + " t SET " + array_set_sql(shape) +
         " FROM unnest($1::text[], $2::boolean[]" + value_cols.args + ") AS v(pid, fin" +
         value_cols.columns + ") WHERE t.parent_execution_id = v.pid AND t.is_finished = v.fin";
}

std::string StatementText::close_finished(bool is_finished, std::string_view close_status,
                                          const UpdateShape& shape) const {
  return update_selected("is_finished = " + claim_literal(is_finished) +
                             " AND close_status = " + claim_literal(close_status),
                         0, "updated_at", shape) +
         " RETURNING t.parent_execution_id";
}

std::string StatementText::delete_by_id() const {
  return "DELETE FROM " + table_ + " WHERE execution_id = $1";
}

std::string StatementText::delete_all() const { return "DELETE FROM " + table_; }

// ---- preparation -----------------------------------------------------------------------------

std::vector<std::string> PreparedStatements::all_sql() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  out.reserve(sql_by_key_.size());
  for (const auto& [key, sql] : sql_by_key_) out.push_back(sql);
  return out;
}

void PreparedStatements::prepare(Connection& c, std::uint64_t key, const std::string& sql) {
  c.conn->prepare(statement_name(key), sql);
  c.prepared.insert(key);
}

pqxx::result PreparedStatements::exec_prepared(pqxx::transaction_base& tx, std::uint64_t key,
                                               const Params& params) {
  return tx.exec_prepared(statement_name(key), pqxx::prepare::make_dynamic_params(params.values()));
}

}  // namespace durable_execution::postgres
