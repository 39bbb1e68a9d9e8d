// The row codec of the SQLite backend (sqlite_row_codec.hpp): the SQLite side of the shared SQL
// mapping (src/sql). Entered by whichever thread holds the statement's connection.

#include "sqlite/sqlite_row_codec.hpp"

#include <string_view>

#include "sql/sql_columns.hpp"
#include "sql/sql_update_shape.hpp"

namespace durable_execution::sqlite {

namespace {

/** Binds an update's values from parameter 1 on. */
struct BindVisitor {
  Stmt& stmt;
  int next = 1;
  void value(sql::SetField /*f*/, std::int64_t x) { stmt.bind(next++, x); }
  void value(sql::SetField /*f*/, std::string_view x) { stmt.bind_static(next++, x); }
  void value(sql::SetField /*f*/, const std::string& x) { stmt.bind_copy(next++, x); }
  void value(sql::SetField /*f*/, sql::Increment /*x*/) {}
  void null(sql::SetField /*f*/) {}
};

/** Binds a record's columns from parameter 1 on (sql::visit_record). */
struct RecordBinder {
  Stmt& stmt;
  RetryOptionsText& retry_options_text;
  int i = 1;
  void value(std::string_view v) { stmt.bind_static(i++, v); }
  void value(const std::string& v) { stmt.bind_copy(i++, v); }
  void value(std::int64_t v) { stmt.bind(i++, v); }
  void null() { stmt.bind_null(i++); }
  void retry_options(const RetryOptions& r) { value(std::string_view{retry_options_text.json(r)}); }
};

std::string_view sqlite_type_name(int type) {
  switch (type) {
    case SQLITE_INTEGER:
      return "INTEGER";
    case SQLITE_FLOAT:
      return "REAL";
    case SQLITE_TEXT:
      return "TEXT";
    case SQLITE_BLOB:
      return "BLOB";
    default:
      return "NULL";
  }
}

/** A result row's cells as the shared RowReader reads them (sql_row_reader.hpp). */
struct SqliteCells {
  const Stmt& stmt;

  [[nodiscard]] bool is_null(int col) const { return stmt.is_null(col); }
  [[nodiscard]] std::optional<std::string_view> text(int col) const {
    if (stmt.type(col) != SQLITE_TEXT) return std::nullopt;
    return stmt.text(col);
  }
  [[nodiscard]] std::optional<std::int64_t> integer(int col) const {
    if (stmt.type(col) != SQLITE_INTEGER) return std::nullopt;
    return stmt.int64(col);
  }
  [[nodiscard]] std::string_view type_name(int col) const {
    return sqlite_type_name(stmt.type(col));
  }
};

}  // namespace

const std::string& RetryOptionsText::json(const RetryOptions& options) {
  if (!options_ || !(*options_ == options)) {
    text_ = sql::json_text(options);
    options_ = options;
  }
  return text_;
}

void bind_record(Stmt& stmt, const TaskExecutionRecord& r, RetryOptionsText& retry_options) {
  RecordBinder v{stmt, retry_options};
  sql::visit_record(r, v);
}

int bind_update(Stmt& stmt, const TaskExecutionUpdate& u,
                std::optional<Timestamp> expires_at_base) {
  BindVisitor v{stmt};
  sql::visit_update(u, expires_at_base, v);
  return v.next;
}

TaskExecutionRecord read_record(const Stmt& stmt, const std::string& table, sql::DecodeCache& cache,
                                bool* corrupt) {
  return sql::read_record(SqliteCells{stmt}, "SQLite", table, cache, corrupt);
}

}  // namespace durable_execution::sqlite
