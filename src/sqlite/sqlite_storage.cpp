#include "durable_execution/sqlite/sqlite_storage.hpp"

#include <sqlite3.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>

#include "durable_execution/errors.hpp"

namespace durable_execution {

namespace {

// ---- table layout ----------------------------------------------------------------------------

// Column order of every row read (after the leading rowid) and of the INSERT statement.
constexpr std::array<std::string_view, 39> kColumns{
    "root_task_id",
    "root_execution_id",
    "parent_task_id",
    "parent_execution_id",
    "index_in_parent_children",
    "is_only_child_of_parent",
    "is_finalize_of_parent",
    "task_id",
    "execution_id",
    "retry_options",
    "sleep_ms_before_run",
    "timeout_ms",
    "are_children_sequential",
    "input",
    "executor_id",
    "is_sleeping_task",
    "sleeping_task_unique_id",
    "status",
    "is_finished",
    "run_output",
    "output",
    "error",
    "retry_attempts",
    "start_at",
    "started_at",
    "expires_at",
    "finished_at",
    "children",
    "active_children_count",
    "on_children_finished_processing_status",
    "on_children_finished_processing_expires_at",
    "on_children_finished_processing_finished_at",
    "finalize",
    "close_status",
    "close_expires_at",
    "closed_at",
    "needs_promise_cancellation",
    "created_at",
    "updated_at",
};

enum Col : int {
  c_root_task_id = 1,  // 0 is the rowid
  c_root_execution_id,
  c_parent_task_id,
  c_parent_execution_id,
  c_index_in_parent_children,
  c_is_only_child_of_parent,
  c_is_finalize_of_parent,
  c_task_id,
  c_execution_id,
  c_retry_options,
  c_sleep_ms_before_run,
  c_timeout_ms,
  c_are_children_sequential,
  c_input,
  c_executor_id,
  c_is_sleeping_task,
  c_sleeping_task_unique_id,
  c_status,
  c_is_finished,
  c_run_output,
  c_output,
  c_error,
  c_retry_attempts,
  c_start_at,
  c_started_at,
  c_expires_at,
  c_finished_at,
  c_children,
  c_active_children_count,
  c_on_children_finished_processing_status,
  c_on_children_finished_processing_expires_at,
  c_on_children_finished_processing_finished_at,
  c_finalize,
  c_close_status,
  c_close_expires_at,
  c_closed_at,
  c_needs_promise_cancellation,
  c_created_at,
  c_updated_at,
  c_count,
};
static_assert(c_count == kColumns.size() + 1);

// Version 1 of the table (SPEC.md §9.1). Numbers are INTEGER (ms, 0/1 booleans), JSON is TEXT.
// An integer rowid primary key keeps rows in insertion order for ties; execution ids are
// time-ordered, so their unique index also grows at its right edge.
constexpr std::string_view kCreateTableV1 = R"sql(
CREATE TABLE {t} (
  id INTEGER PRIMARY KEY,
  root_task_id TEXT,
  root_execution_id TEXT,
  parent_task_id TEXT,
  parent_execution_id TEXT,
  index_in_parent_children INTEGER,
  is_only_child_of_parent INTEGER,
  is_finalize_of_parent INTEGER,
  task_id TEXT NOT NULL,
  execution_id TEXT NOT NULL,
  retry_options TEXT NOT NULL,
  sleep_ms_before_run INTEGER NOT NULL,
  timeout_ms INTEGER NOT NULL,
  are_children_sequential INTEGER NOT NULL,
  input TEXT NOT NULL,
  executor_id TEXT,
  is_sleeping_task INTEGER NOT NULL,
  sleeping_task_unique_id TEXT,
  status TEXT NOT NULL,
  is_finished INTEGER NOT NULL,
  run_output TEXT,
  output TEXT,
  error TEXT,
  retry_attempts INTEGER NOT NULL,
  start_at INTEGER NOT NULL,
  started_at INTEGER,
  expires_at INTEGER,
  finished_at INTEGER,
  children TEXT,
  active_children_count INTEGER NOT NULL,
  on_children_finished_processing_status TEXT NOT NULL,
  on_children_finished_processing_expires_at INTEGER,
  on_children_finished_processing_finished_at INTEGER,
  finalize TEXT,
  close_status TEXT NOT NULL,
  close_expires_at INTEGER,
  closed_at INTEGER,
  needs_promise_cancellation INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
))sql";

// SPEC.md §4.2. Indexes on columns that are NULL for most rows are partial (`IS NOT NULL`):
// a row only pays for the indexes its state needs (a fresh top-level row touches 5 of 11), and
// SQLite still uses them, because every query compares those columns (`= ?` or `< ?`), which
// implies NOT NULL.
struct IndexDef {
  std::string_view suffix;
  std::string_view columns;
  bool unique;
  std::string_view where;
};
constexpr std::array<IndexDef, 11> kIndexesV1{{
    {"execution_id", "execution_id", true, ""},
    {"sleeping_task_unique_id", "sleeping_task_unique_id", true,
     "sleeping_task_unique_id IS NOT NULL"},
    {"status_start_at", "status, start_at", false, ""},
    {"status_ocfp_status_acc_updated_at",
     "status, on_children_finished_processing_status, active_children_count, updated_at", false,
     ""},
    {"close_status_updated_at", "close_status, updated_at", false, ""},
    {"is_sleeping_task_expires_at", "is_sleeping_task, expires_at", false,
     "expires_at IS NOT NULL"},
    {"ocfp_expires_at", "on_children_finished_processing_expires_at", false,
     "on_children_finished_processing_expires_at IS NOT NULL"},
    {"close_expires_at", "close_expires_at", false, "close_expires_at IS NOT NULL"},
    {"executor_id_npc_updated_at", "executor_id, needs_promise_cancellation, updated_at", false,
     "executor_id IS NOT NULL"},
    {"parent_execution_id_is_finished", "parent_execution_id, is_finished", false,
     "parent_execution_id IS NOT NULL"},
    {"is_finished_close_status_updated_at", "is_finished, close_status, updated_at", false, ""},
}};

constexpr std::string_view kSchemaTable = "durable_execution_schema";

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

bool is_valid_table_name(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!alpha(name.front())) return false;
  if (!std::all_of(name.begin(), name.end(), [&](char c) { return alpha(c) || digit(c); })) {
    return false;
  }
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; });
  // sqlite_* names are reserved by SQLite; the schema table is ours.
  return lower.rfind("sqlite_", 0) != 0 && lower != kSchemaTable;
}

// ---- values ----------------------------------------------------------------------------------

using SqlValue = std::variant<std::monostate, std::int64_t, std::string>;

void bind_value(SQLite::Statement& stmt, int index, const SqlValue& value) {
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    stmt.bind(index, static_cast<int64_t>(*i));
  } else if (const auto* s = std::get_if<std::string>(&value)) {
    stmt.bind(index, *s);
  } else {
    stmt.bind(index);
  }
}

void bind_all(SQLite::Statement& stmt, const std::vector<SqlValue>& values, int first = 1) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    bind_value(stmt, first + static_cast<int>(i), values[i]);
  }
}

std::int64_t b(bool v) { return v ? 1 : 0; }
std::int64_t ms(Timestamp t) { return to_unix_ms(t); }
// Invalid UTF-8 (say, in an error message taken from a foreign exception) is replaced, not
// thrown: a record must always be storable.
std::string json_text(const auto& value) {
  return nlohmann::json(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

template <class T, class F>
SqlValue opt(const std::optional<T>& value, F&& convert) {
  if (!value) return std::monostate{};
  return SqlValue{convert(*value)};
}

std::vector<SqlValue> record_values(const TaskExecutionRecord& r) {
  std::vector<SqlValue> v;
  v.reserve(kColumns.size());
  v.emplace_back(opt(r.root, [](const auto& s) { return s.task_id; }));
  v.emplace_back(opt(r.root, [](const auto& s) { return s.execution_id; }));
  v.emplace_back(opt(r.parent, [](const auto& p) { return p.task_id; }));
  v.emplace_back(opt(r.parent, [](const auto& p) { return p.execution_id; }));
  v.emplace_back(
      opt(r.parent, [](const auto& p) { return std::int64_t{p.index_in_parent_children}; }));
  v.emplace_back(opt(r.parent, [](const auto& p) { return b(p.is_only_child_of_parent); }));
  v.emplace_back(opt(r.parent, [](const auto& p) { return b(p.is_finalize_of_parent); }));
  v.emplace_back(r.task_id);
  v.emplace_back(r.execution_id);
  v.emplace_back(json_text(r.retry_options));
  v.emplace_back(std::int64_t{r.sleep_before_run.count()});
  v.emplace_back(std::int64_t{r.timeout.count()});
  v.emplace_back(b(r.are_children_sequential));
  v.emplace_back(r.input);
  v.emplace_back(opt(r.executor_id, [](const auto& s) { return s; }));
  v.emplace_back(b(r.is_sleeping_task));
  v.emplace_back(opt(r.sleeping_task_unique_id, [](const auto& s) { return s; }));
  v.emplace_back(std::string{to_string(r.status)});
  v.emplace_back(b(r.is_finished));
  v.emplace_back(opt(r.run_output, [](const auto& s) { return s; }));
  v.emplace_back(opt(r.output, [](const auto& s) { return s; }));
  v.emplace_back(opt(r.error, [](const auto& e) { return json_text(e); }));
  v.emplace_back(std::int64_t{r.retry_attempts});
  v.emplace_back(ms(r.start_at));
  v.emplace_back(opt(r.started_at, ms));
  v.emplace_back(opt(r.expires_at, ms));
  v.emplace_back(opt(r.finished_at, ms));
  v.emplace_back(opt(r.children, [](const auto& c) { return json_text(c); }));
  v.emplace_back(std::int64_t{r.active_children_count});
  v.emplace_back(std::string{to_string(r.on_children_finished_processing_status)});
  v.emplace_back(opt(r.on_children_finished_processing_expires_at, ms));
  v.emplace_back(opt(r.on_children_finished_processing_finished_at, ms));
  v.emplace_back(opt(r.finalize, [](const auto& f) { return json_text(f); }));
  v.emplace_back(std::string{to_string(r.close_status)});
  v.emplace_back(opt(r.close_expires_at, ms));
  v.emplace_back(opt(r.closed_at, ms));
  v.emplace_back(b(r.needs_promise_cancellation));
  v.emplace_back(ms(r.created_at));
  v.emplace_back(ms(r.updated_at));
  return v;
}

/** The SET clause of an update: column assignments in a fixed order, and their values. */
struct SetClause {
  std::string sql;
  std::vector<SqlValue> values;

  void add(std::string_view column, SqlValue value) {
    if (!sql.empty()) sql += ", ";
    sql += column;
    sql += " = ?";
    values.push_back(std::move(value));
  }
  void add_null(std::string_view column) {
    if (!sql.empty()) sql += ", ";
    sql += column;
    sql += " = NULL";
  }
  void add_raw(std::string_view assignment) {
    if (!sql.empty()) sql += ", ";
    sql += assignment;
  }
};

// Unset directives win over set values, as in apply_update().
// With `expires_at_base`, expires_at is computed per row as base + the row's own timeout.
SetClause make_set_clause(const TaskExecutionUpdate& u,
                          std::optional<Timestamp> expires_at_base = std::nullopt) {
  SetClause s;
  auto text_opt = [&](std::string_view col, const std::optional<std::string>& v, bool unset) {
    if (unset) {
      s.add_null(col);
    } else if (v) {
      s.add(col, *v);
    }
  };
  auto time_opt = [&](std::string_view col, const std::optional<Timestamp>& v, bool unset) {
    if (unset) {
      s.add_null(col);
    } else if (v) {
      s.add(col, ms(*v));
    }
  };
  text_opt("executor_id", u.executor_id, u.unset_executor_id);
  if (u.status) s.add("status", std::string{to_string(*u.status)});
  text_opt("run_output", u.run_output, u.unset_run_output);
  text_opt("output", u.output, false);
  if (u.unset_error) {
    s.add_null("error");
  } else if (u.error) {
    s.add("error", json_text(*u.error));
  }
  if (u.retry_attempts) s.add("retry_attempts", std::int64_t{*u.retry_attempts});
  time_opt("start_at", u.start_at, false);
  time_opt("started_at", u.started_at, false);
  if (expires_at_base) {
    s.add_raw("expires_at = ? + timeout_ms");
    s.values.emplace_back(ms(*expires_at_base));  // positional: bound in SQL text order
  } else {
    time_opt("expires_at", u.expires_at, u.unset_expires_at);
  }
  if (u.children) s.add("children", json_text(*u.children));
  if (u.active_children_count) {
    s.add("active_children_count", std::int64_t{*u.active_children_count});
  }
  if (u.on_children_finished_processing_status) {
    s.add("on_children_finished_processing_status",
          std::string{to_string(*u.on_children_finished_processing_status)});
  }
  time_opt("on_children_finished_processing_expires_at",
           u.on_children_finished_processing_expires_at,
           u.unset_on_children_finished_processing_expires_at);
  time_opt("on_children_finished_processing_finished_at",
           u.on_children_finished_processing_finished_at, false);
  if (u.finalize) s.add("finalize", json_text(*u.finalize));
  if (u.close_status) s.add("close_status", std::string{to_string(*u.close_status)});
  time_opt("close_expires_at", u.close_expires_at, u.unset_close_expires_at);
  time_opt("closed_at", u.closed_at, false);
  if (u.needs_promise_cancellation) {
    s.add("needs_promise_cancellation", b(*u.needs_promise_cancellation));
  }
  if (u.is_finished) s.add("is_finished", b(*u.is_finished));
  time_opt("finished_at", u.finished_at, false);
  s.add("updated_at", ms(u.updated_at));
  return s;
}

// ---- reading rows ----------------------------------------------------------------------------

[[noreturn]] void corrupt(const std::string& table, const std::string& execution_id,
                          std::string_view column, const std::string& detail) {
  throw DurableExecutionError("Corrupt task execution row in SQLite table " + table +
                                  " (execution id '" + execution_id + "', column " +
                                  std::string{column} + "): " + detail,
                              ErrorType::generic, false, true);
}

struct RowReader {
  const SQLite::Statement& stmt;
  const std::string& table;
  std::string execution_id;  // for error messages

  [[nodiscard]] std::string_view name(int col) const {
    return kColumns[static_cast<std::size_t>(col - 1)];
  }
  [[nodiscard]] bool is_null(int col) const { return stmt.isColumnNull(col); }

  [[nodiscard]] std::string text(int col) const {
    auto c = stmt.getColumn(col);
    if (c.getType() != SQLite::TEXT) corrupt(table, execution_id, name(col), "expected TEXT");
    return c.getString();
  }
  [[nodiscard]] std::optional<std::string> opt_text(int col) const {
    if (is_null(col)) return std::nullopt;
    return text(col);
  }
  [[nodiscard]] std::int64_t integer(int col) const {
    auto c = stmt.getColumn(col);
    if (c.getType() != SQLite::INTEGER) corrupt(table, execution_id, name(col), "expected INTEGER");
    return c.getInt64();
  }
  [[nodiscard]] std::int32_t int32(int col) const {
    auto v = integer(col);
    if (v < std::numeric_limits<std::int32_t>::min() ||
        v > std::numeric_limits<std::int32_t>::max()) {
      corrupt(table, execution_id, name(col), "integer out of range");
    }
    return static_cast<std::int32_t>(v);
  }
  [[nodiscard]] bool boolean(int col) const {
    auto v = integer(col);
    if (v != 0 && v != 1) corrupt(table, execution_id, name(col), "expected 0 or 1");
    return v == 1;
  }
  [[nodiscard]] Timestamp time(int col) const { return from_unix_ms(integer(col)); }
  [[nodiscard]] std::optional<Timestamp> opt_time(int col) const {
    if (is_null(col)) return std::nullopt;
    return time(col);
  }
  template <class T>
  [[nodiscard]] T json(int col) const {
    auto value = text(col);  // a type error is reported as such, before parsing
    try {
      return nlohmann::json::parse(value).get<T>();
    } catch (const std::exception& e) {
      corrupt(table, execution_id, name(col), e.what());
    }
  }
  template <class T>
  [[nodiscard]] std::optional<T> opt_json(int col) const {
    if (is_null(col)) return std::nullopt;
    return json<T>(col);
  }
  template <class F>
  [[nodiscard]] auto parsed(int col, F&& parse) const {
    auto value = text(col);
    try {
      return parse(value);
    } catch (const std::exception& e) {
      corrupt(table, execution_id, name(col), e.what());
    }
  }
};

TaskExecutionRecord read_record(const SQLite::Statement& stmt, const std::string& table) {
  RowReader row{stmt, table, {}};
  // Best effort id for error messages first; a corrupt id column is itself reported.
  if (stmt.getColumn(c_execution_id).getType() == SQLite::TEXT) {
    row.execution_id = stmt.getColumn(c_execution_id).getString();
  }
  TaskExecutionRecord r;
  auto root_task = row.opt_text(c_root_task_id);
  auto root_exec = row.opt_text(c_root_execution_id);
  if (root_task && root_exec && !root_task->empty() && !root_exec->empty()) {
    r.root = TaskExecutionSummary{std::move(*root_task), std::move(*root_exec)};
  }
  auto parent_task = row.opt_text(c_parent_task_id);
  auto parent_exec = row.opt_text(c_parent_execution_id);
  if (parent_task && parent_exec && !parent_task->empty() && !parent_exec->empty()) {
    ParentTaskExecutionSummary p;
    p.task_id = std::move(*parent_task);
    p.execution_id = std::move(*parent_exec);
    // SPEC.md §9.2: missing index defaults to 0 and flags to false (tested for NULL, not truth).
    if (!row.is_null(c_index_in_parent_children)) {
      p.index_in_parent_children = row.int32(c_index_in_parent_children);
    }
    if (!row.is_null(c_is_only_child_of_parent)) {
      p.is_only_child_of_parent = row.boolean(c_is_only_child_of_parent);
    }
    if (!row.is_null(c_is_finalize_of_parent)) {
      p.is_finalize_of_parent = row.boolean(c_is_finalize_of_parent);
    }
    r.parent = std::move(p);
  }
  r.task_id = row.text(c_task_id);
  r.execution_id = row.text(c_execution_id);
  r.retry_options = row.json<RetryOptions>(c_retry_options);
  r.sleep_before_run = std::chrono::milliseconds{row.integer(c_sleep_ms_before_run)};
  r.timeout = std::chrono::milliseconds{row.integer(c_timeout_ms)};
  r.are_children_sequential = row.boolean(c_are_children_sequential);
  r.input = row.text(c_input);
  r.executor_id = row.opt_text(c_executor_id);
  r.is_sleeping_task = row.boolean(c_is_sleeping_task);
  r.sleeping_task_unique_id = row.opt_text(c_sleeping_task_unique_id);
  r.status = row.parsed(c_status, [](const std::string& s) { return parse_task_execution_status(s); });
  r.is_finished = row.boolean(c_is_finished);
  r.run_output = row.opt_text(c_run_output);
  r.output = row.opt_text(c_output);
  r.error = row.opt_json<StoredError>(c_error);
  r.retry_attempts = row.int32(c_retry_attempts);
  r.start_at = row.time(c_start_at);
  r.started_at = row.opt_time(c_started_at);
  r.expires_at = row.opt_time(c_expires_at);
  r.finished_at = row.opt_time(c_finished_at);
  r.children = row.opt_json<std::vector<TaskExecutionSummary>>(c_children);
  r.active_children_count = row.int32(c_active_children_count);
  r.on_children_finished_processing_status =
      row.parsed(c_on_children_finished_processing_status, [](const std::string& s) {
        return parse_on_children_finished_processing_status(s);
      });
  r.on_children_finished_processing_expires_at =
      row.opt_time(c_on_children_finished_processing_expires_at);
  r.on_children_finished_processing_finished_at =
      row.opt_time(c_on_children_finished_processing_finished_at);
  r.finalize = row.opt_json<TaskExecutionSummary>(c_finalize);
  r.close_status =
      row.parsed(c_close_status, [](const std::string& s) { return parse_close_status(s); });
  r.close_expires_at = row.opt_time(c_close_expires_at);
  r.closed_at = row.opt_time(c_closed_at);
  r.needs_promise_cancellation = row.boolean(c_needs_promise_cancellation);
  r.created_at = row.time(c_created_at);
  r.updated_at = row.time(c_updated_at);
  return r;
}

// ---- errors ----------------------------------------------------------------------------------

bool is_busy(int code) {
  const int primary = code & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

/** Thrown inside a transaction body to roll back and surface a non-SQLite error as is. */
DurableExecutionError translate(const SQLite::Exception& e, const std::string& path,
                                std::string_view operation) {
  const int code = e.getExtendedErrorCode();
  std::string message = "SQLite storage (" + path + ") " + std::string{operation} +
                        " failed: " + e.what() + " (code " + std::to_string(code) + ")";
  if (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return DurableExecutionError(
        "SQLite storage (" + path + ") " + std::string{operation} +
            " failed: duplicate execution id or sleeping task unique id (" + e.what() + ")",
        ErrorType::generic, false, false);
  }
  // Busy/locked clear when the other writer commits; a full disk or an I/O error may clear too
  // (the engine retries with back-off). Corruption, misuse and constraint errors do not.
  const int primary = code & 0xff;
  const bool retryable = is_busy(code) || primary == SQLITE_FULL || primary == SQLITE_IOERR;
  return DurableExecutionError(message, ErrorType::generic, retryable, false);
}


// ---- connections -----------------------------------------------------------------------------

/** One SQLite connection and its prepared statements; used by one thread at a time. */
struct Connection {
  std::unique_ptr<SQLite::Database> db;  // declared first: statements are finalized before close
  std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>> statements;

  /** A cached prepared statement, reset and with cleared bindings. */
  SQLite::Statement& statement(const std::string& sql) {
    auto it = statements.find(sql);
    if (it == statements.end()) {
      it = statements.emplace(sql, std::make_unique<SQLite::Statement>(*db, sql)).first;
    } else {
      it->second->reset();
      it->second->clearBindings();
    }
    return *it->second;
  }

  void reset_statements() noexcept {
    for (auto& [sql, stmt] : statements) (void)stmt->tryReset();
  }
};

}  // namespace

// ---- Impl ------------------------------------------------------------------------------------

struct SqliteTaskExecutionsStorage::Impl {
  std::string path;
  SqliteStorageOptions options;
  std::string table;         // validated name
  std::string quoted_table;  // "name", used in every statement
  std::string select_list;   // id, col1, ... colN

  // Writes go through the one writer connection (SQLite allows one writer per file anyway);
  // reads use a small pool so they never queue behind a write that waits for another process.
  mutable std::mutex writer_mutex;
  Connection writer;
  mutable std::mutex readers_mutex;
  std::condition_variable readers_cv;
  std::vector<std::unique_ptr<Connection>> readers;
  std::vector<Connection*> free_readers;

  Impl(std::string p, SqliteStorageOptions o) : path(std::move(p)), options(std::move(o)) {
    if (!is_valid_table_name(options.table_name)) {
      throw DurableExecutionError(
          "Invalid SQLite table name '" + options.table_name +
              "': it must match [A-Za-z_][A-Za-z0-9_]{0,62} and must not start with sqlite_",
          ErrorType::generic, false, false);
    }
    if (options.busy_timeout.count() < 0 || options.max_busy_retries < 0 ||
        options.read_connections < 0) {
      throw DurableExecutionError(
          "Invalid SQLite storage options: busy_timeout, max_busy_retries and read_connections "
          "must not be negative");
    }
    table = options.table_name;
    quoted_table = "\"" + table + "\"";
    select_list = "id";
    for (auto c : kColumns) {
      select_list += ", ";
      select_list += c;
    }
    // Every SQLite failure at open time becomes a DurableExecutionError naming the file.
    try {
      connect(writer);
      // Refuse a newer schema before anything can change the file (not even its journal mode).
      with_busy_retries("open", [&] { refuse_newer_schema(read_version()); });
      configure(writer);
      with_busy_retries("schema migration", [&] { migrate(); });
      for (std::int32_t i = 0; i < options.read_connections; ++i) {
        auto reader = std::make_unique<Connection>();
        connect(*reader);
        configure(*reader);
        reader->db->exec("PRAGMA query_only=1");  // a reader never writes, by construction
        free_readers.push_back(reader.get());
        readers.push_back(std::move(reader));
      }
    } catch (const SQLite::Exception& e) {
      throw translate(e, path, "open");
    }
  }

  void connect(Connection& c) const {
    const auto timeout = static_cast<int>(
        std::min<std::int64_t>(options.busy_timeout.count(), std::numeric_limits<int>::max()));
    // NOMUTEX: each connection is used by one thread at a time (guarded by our own mutexes).
    c.db = std::make_unique<SQLite::Database>(
        path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_URI | SQLite::OPEN_NOMUTEX,
        timeout);
  }

  void configure(Connection& c) {
    with_busy_retries("open", [&] {
      // A VFS without WAL support keeps its journal mode; locking is still correct then.
      (void)c.db->execAndGet("PRAGMA journal_mode=WAL").getString();
    });
    const char* sync = options.synchronous == SqliteSynchronous::off      ? "OFF"
                       : options.synchronous == SqliteSynchronous::normal ? "NORMAL"
                                                                          : "FULL";
    c.db->exec(std::string{"PRAGMA synchronous="} + sync);
    c.db->exec("PRAGMA cache_size=-" +
               std::to_string(std::max<std::int64_t>(options.cache_size_kib, 64)));
    c.db->exec("PRAGMA temp_store=MEMORY");
  }

  // Runs in one BEGIN IMMEDIATE transaction, so two processes opening a new file do not race.
  void migrate() {
    auto& db = *writer.db;
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(std::string{"CREATE TABLE IF NOT EXISTS "} + std::string{kSchemaTable} +
              " (table_name TEXT PRIMARY KEY COLLATE NOCASE, version INTEGER NOT NULL) "
              "WITHOUT ROWID");
      auto version = read_version();
      refuse_newer_schema(version);  // again, under the write lock
      if (!version) {
        if (table_exists()) {
          adopt_existing_table();
        } else {
          db.exec(replace_all(std::string{kCreateTableV1}, "{t}", quoted_table));
        }
        create_indexes_v1();
        set_version(1);
        version = 1;
      }
      // Later versions add steps here: while (*version < schema_version) apply(++*version);
      // each step runs in this same transaction, so a failed migration leaves the file as it was.
      db.exec("COMMIT");
    } catch (...) {
      db.tryExec("ROLLBACK");
      throw;
    }
  }

  /** The recorded schema version of our table, if any; reads only (a file is not touched). */
  std::optional<std::int64_t> read_version() {
    auto& db = *writer.db;
    // Reading sqlite_master also validates the file: a non-database fails here.
    SQLite::Statement exists(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
    exists.bind(1, std::string{kSchemaTable});
    if (!exists.executeStep()) return std::nullopt;
    SQLite::Statement q(db, std::string{"SELECT version FROM "} + std::string{kSchemaTable} +
                                " WHERE table_name = ?");
    q.bind(1, table);
    if (!q.executeStep()) return std::nullopt;
    return q.getColumn(0).getInt64();
  }

  // SQLite identifiers are case-insensitive: "Jobs" and "jobs" are one table.
  bool table_exists() {
    SQLite::Statement q(*writer.db,
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE "
                        "NOCASE");
    q.bind(1, table);
    return q.executeStep();
  }

  void refuse_newer_schema(std::optional<std::int64_t> version) const {
    if (version && *version > SqliteTaskExecutionsStorage::schema_version) {
      throw DurableExecutionError(
          "SQLite table " + table + " in " + path + " has schema version " +
              std::to_string(*version) + ", newer than the version this library supports (" +
              std::to_string(SqliteTaskExecutionsStorage::schema_version) +
              "); upgrade durable_execution to open it",
          ErrorType::generic, false, false);
    }
  }

  // A table of that name without a version row, e.g. one created by the reference engine's
  // drizzle schema (same columns): adopt it if every column we use is there, refuse otherwise.
  void adopt_existing_table() {
    std::vector<std::string> present;
    SQLite::Statement q(*writer.db, "SELECT name FROM pragma_table_info(?)");
    q.bind(1, table);
    while (q.executeStep()) present.push_back(q.getColumn(0).getString());
    for (auto c : kColumns) {
      if (std::find(present.begin(), present.end(), c) == present.end()) {
        throw DurableExecutionError("SQLite table " + table + " in " + path +
                                        " exists but is not a task executions table (missing "
                                        "column " +
                                        std::string{c} + ")",
                                    ErrorType::generic, false, false);
      }
    }
  }

  void create_indexes_v1() {
    for (const auto& ix : kIndexesV1) {
      writer.db->exec(std::string{"CREATE "} + (ix.unique ? "UNIQUE " : "") +
                      "INDEX IF NOT EXISTS \"ix_" + table + "_" + std::string{ix.suffix} +
                      "\" ON " + quoted_table + " (" + std::string{ix.columns} + ")" +
                      (ix.where.empty() ? std::string{} : " WHERE " + std::string{ix.where}));
    }
  }

  void set_version(std::int64_t version) {
    SQLite::Statement q(*writer.db,
                        std::string{"INSERT INTO "} + std::string{kSchemaTable} +
                            " (table_name, version) VALUES (?, ?) ON CONFLICT (table_name) "
                            "DO UPDATE SET version = excluded.version");
    q.bind(1, table);
    q.bind(2, static_cast<int64_t>(version));
    q.exec();
  }

  // ---- transactions --------------------------------------------------------------------------

  template <class F>
  void with_busy_retries(std::string_view operation, F&& body) {
    thread_local std::minstd_rand jitter{std::random_device{}()};
    auto delay = std::chrono::microseconds{1000};
    for (std::int32_t attempt = 0;; ++attempt) {
      try {
        body();
        return;
      } catch (const SQLite::Exception& e) {
        if (!is_busy(e.getExtendedErrorCode())) throw;
        if (attempt >= options.max_busy_retries) {
          throw DurableExecutionError("SQLite storage (" + path + ") " + std::string{operation} +
                                          " failed: database stayed busy after " +
                                          std::to_string(attempt + 1) + " attempts: " + e.what(),
                                      ErrorType::generic, true, false);
        }
      }
      // Jittered exponential back-off, so competing processes do not retry in lock step.
      std::uniform_int_distribution<std::int64_t> dist(delay.count() / 2, delay.count());
      std::this_thread::sleep_for(std::chrono::microseconds{dist(jitter)});
      delay = std::min(delay * 2, std::chrono::microseconds{100'000});
    }
  }

  /**
   * Runs `body(connection)` in one transaction: on the writer with BEGIN IMMEDIATE (the write
   * lock is taken up front, so a busy database is waited for at BEGIN, never half-way and never
   * with a stale read snapshot), or on a pooled reader with a deferred BEGIN (one consistent
   * snapshot for all the reads of the call). Retries busy failures; translates SQLite errors.
   */
  template <class F>
  auto transaction(bool write, std::string_view operation, F&& body) {
    if (!write && !readers.empty()) {
      Connection* reader = nullptr;
      {
        std::unique_lock lock(readers_mutex);
        readers_cv.wait(lock, [&] { return !free_readers.empty(); });
        reader = free_readers.back();
        free_readers.pop_back();
      }
      struct Release {
        Impl& impl;
        Connection* c;
        ~Release() {
          {
            std::lock_guard lock(impl.readers_mutex);
            impl.free_readers.push_back(c);
          }
          impl.readers_cv.notify_one();
        }
      } release{*this, reader};
      return run_transaction(*reader, "BEGIN", operation, body);
    }
    std::lock_guard lock(writer_mutex);
    return run_transaction(writer, write ? "BEGIN IMMEDIATE" : "BEGIN", operation, body);
  }

  template <class F>
  auto run_transaction(Connection& c, const char* begin, std::string_view operation, F& body) {
    // Update shapes are bounded by the engine's call sites; the cap only guards misuse. Cleared
    // here, between transactions, so no statement reference is invalidated mid-call.
    if (c.statements.size() >= 512) c.statements.clear();
    using Result = decltype(body(c));
    std::optional<std::conditional_t<std::is_void_v<Result>, int, Result>> result;
    try {
      with_busy_retries(operation, [&] {
        c.db->exec(begin);
        try {
          if constexpr (std::is_void_v<Result>) {
            body(c);
            result = 0;
          } else {
            result = body(c);
          }
          c.reset_statements();  // release read cursors before COMMIT
          c.db->exec("COMMIT");
        } catch (...) {
          c.reset_statements();
          c.db->tryExec("ROLLBACK");
          result.reset();
          throw;
        }
      });
    } catch (const SQLite::Exception& e) {
      throw translate(e, path, operation);
    } catch (const DurableExecutionError&) {
      throw;
    } catch (const std::exception& e) {
      // Anything else (say, bad_alloc while mapping rows) still reaches the caller as the
      // documented error type, after the rollback above.
      throw DurableExecutionError("SQLite storage (" + path + ") " + std::string{operation} +
                                      " failed: " + e.what(),
                                  ErrorType::generic, false, true);
    }
    if constexpr (!std::is_void_v<Result>) return std::move(*result);
  }

  // ---- SQL pieces ----------------------------------------------------------------------------

  std::string select_where(std::string_view where) const {
    return "SELECT " + select_list + " FROM " + quoted_table + " WHERE " + std::string{where};
  }

  std::vector<TaskExecutionRecord> read_all(SQLite::Statement& stmt) const {
    std::vector<TaskExecutionRecord> out;
    while (stmt.executeStep()) out.push_back(read_record(stmt, table));
    return out;
  }

  void insert_rows(Connection& c, const std::vector<TaskExecutionRecord>& rows) const {
    if (rows.empty()) return;
    std::string sql = "INSERT INTO " + quoted_table + " (";
    std::string params;
    for (std::size_t i = 0; i < kColumns.size(); ++i) {
      if (i > 0) {
        sql += ", ";
        params += ", ";
      }
      sql += kColumns[i];
      params += "?";
    }
    sql += ") VALUES (" + params + ")";
    auto& stmt = c.statement(sql);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (i > 0) stmt.reset();  // every parameter is rebound below
      bind_all(stmt, record_values(rows[i]));
      stmt.exec();
    }
  }

  /** Guarded update of one row by execution id; returns whether a row changed. */
  bool update_by_id(Connection& c, const std::string& execution_id, const GetByIdFilters& filters,
                    const TaskExecutionUpdate& update) const {
    auto set = make_set_clause(update);
    std::string where = "execution_id = ?";
    std::vector<SqlValue> values = std::move(set.values);
    values.emplace_back(execution_id);
    if (filters.is_sleeping_task) {
      where += " AND is_sleeping_task = ?";
      values.emplace_back(b(*filters.is_sleeping_task));
    }
    if (filters.status) {
      where += " AND status = ?";
      values.emplace_back(std::string{to_string(*filters.status)});
    }
    if (filters.is_finished) {
      where += " AND is_finished = ?";
      values.emplace_back(b(*filters.is_finished));
    }
    auto& stmt = c.statement("UPDATE " + quoted_table + " SET " + set.sql + " WHERE " + where);
    bind_all(stmt, values);
    return stmt.exec() > 0;
  }

  // Like the reference engine's SQL stores, a decrement also bumps the parent's updated_at.
  void decrement_active_children_count(Connection& c, const std::string& parent_id,
                                       std::int64_t count, Timestamp updated_at) const {
    auto& dec = c.statement("UPDATE " + quoted_table +
                            " SET active_children_count = active_children_count - ?, "
                            "updated_at = ? WHERE execution_id = ?");
    dec.bind(1, static_cast<int64_t>(count));
    dec.bind(2, static_cast<int64_t>(ms(updated_at)));
    dec.bind(3, parent_id);
    dec.exec();
  }

  /** The parent execution id of `execution_id`, or "" for a top-level or unknown execution. */
  std::string parent_of(Connection& c, const std::string& execution_id) const {
    auto& stmt = c.statement("SELECT parent_execution_id FROM " + quoted_table +
                             " WHERE execution_id = ?");
    stmt.bind(1, execution_id);
    std::string parent;
    if (stmt.executeStep() && stmt.getColumn(0).getType() == SQLite::TEXT) {
      parent = stmt.getColumn(0).getString();
    }
    stmt.reset();
    return parent;
  }

  /**
   * Selects up to `limit` rows (`where` + `order_by`, parameters `where_values`), applies the
   * update to each by rowid, and returns them with the update applied, in selection order.
   */
  std::vector<TaskExecutionRecord> select_and_update(
      Connection& c, std::string_view where, const std::vector<SqlValue>& where_values,
      std::string_view order_by, std::int64_t limit, const TaskExecutionUpdate& update,
      std::optional<Timestamp> expires_at_base = std::nullopt) const {
    std::vector<std::pair<std::int64_t, TaskExecutionRecord>> rows;
    {
      auto& select =
          c.statement(select_where(where) + " ORDER BY " + std::string{order_by} + " LIMIT ?");
      bind_all(select, where_values);
      select.bind(static_cast<int>(where_values.size()) + 1, static_cast<int64_t>(limit));
      while (select.executeStep()) {
        rows.emplace_back(select.getColumn(0).getInt64(), read_record(select, table));
      }
      select.reset();
    }
    if (rows.empty()) return {};
    auto set = make_set_clause(update, expires_at_base);
    auto& upd = c.statement("UPDATE " + quoted_table + " SET " + set.sql + " WHERE id = ?");
    std::vector<TaskExecutionRecord> out;
    out.reserve(rows.size());
    for (auto& [id, record] : rows) {
      upd.reset();
      bind_all(upd, set.values);
      upd.bind(static_cast<int>(set.values.size()) + 1, static_cast<int64_t>(id));
      upd.exec();
      // The returned row is the stored row: the same update, applied by the same rules.
      apply_update(record, update);
      if (expires_at_base) record.expires_at = *expires_at_base + record.timeout;
      out.push_back(std::move(record));
    }
    return out;
  }

  /** One UPDATE of the rows selected by an indexed, ordered, limited subquery; returns count. */
  std::int64_t update_selected(Connection& c, std::string_view where,
                               const std::vector<SqlValue>& where_values,
                               std::string_view order_by, std::int64_t limit,
                               const TaskExecutionUpdate& update) const {
    auto set = make_set_clause(update);
    auto& stmt = c.statement("UPDATE " + quoted_table + " SET " + set.sql +
                             " WHERE id IN (SELECT id FROM " + quoted_table + " WHERE " +
                             std::string{where} + " ORDER BY " + std::string{order_by} +
                             " LIMIT ?)");
    bind_all(stmt, set.values);
    bind_all(stmt, where_values, static_cast<int>(set.values.size()) + 1);
    stmt.bind(static_cast<int>(set.values.size() + where_values.size()) + 1,
              static_cast<int64_t>(limit));
    return stmt.exec();
  }
};

// ---- public methods --------------------------------------------------------------------------

SqliteTaskExecutionsStorage::SqliteTaskExecutionsStorage(std::string path,
                                                         SqliteStorageOptions options)
    : impl_(std::make_unique<Impl>(std::move(path), std::move(options))) {}

SqliteTaskExecutionsStorage::~SqliteTaskExecutionsStorage() = default;

const std::string& SqliteTaskExecutionsStorage::path() const noexcept { return impl_->path; }
const std::string& SqliteTaskExecutionsStorage::table_name() const noexcept {
  return impl_->table;
}

std::vector<std::string> SqliteTaskExecutionsStorage::prepared_statement_sql() const {
  std::vector<std::string> out;
  {
    std::lock_guard lock(impl_->writer_mutex);
    for (const auto& [sql, stmt] : impl_->writer.statements) out.push_back(sql);
  }
  {
    // Only idle readers: a reader in use belongs to its thread until released.
    std::unique_lock lock(impl_->readers_mutex);
    impl_->readers_cv.wait(lock,
                           [&] { return impl_->free_readers.size() == impl_->readers.size(); });
    for (const auto& reader : impl_->readers) {
      for (const auto& [sql, stmt] : reader->statements) out.push_back(sql);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void SqliteTaskExecutionsStorage::insert_many(const std::vector<TaskExecutionRecord>& executions) {
  if (executions.empty()) return;
  impl_->transaction(true, "insert_many",
                     [&](Connection& c) { impl_->insert_rows(c, executions); });
}

std::vector<std::optional<TaskExecutionRecord>> SqliteTaskExecutionsStorage::get_many_by_id(
    const std::vector<GetByIdRequest>& requests) {
  if (requests.empty()) return {};
  const auto sql = impl_->select_where("execution_id = ?");
  return impl_->transaction(false, "get_many_by_id", [&](Connection& c) {
    std::vector<std::optional<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto& stmt = c.statement(sql);
      stmt.bind(1, req.execution_id);
      std::optional<TaskExecutionRecord> found;
      if (stmt.executeStep()) {
        auto record = read_record(stmt, impl_->table);
        if (req.filters.matches(record)) found = std::move(record);
      }
      out.push_back(std::move(found));
    }
    return out;
  });
}

std::vector<std::optional<TaskExecutionRecord>>
SqliteTaskExecutionsStorage::get_many_by_sleeping_task_unique_id(
    const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) {
  if (requests.empty()) return {};
  const auto sql = impl_->select_where("sleeping_task_unique_id = ?");
  return impl_->transaction(false, "get_many_by_sleeping_task_unique_id", [&](Connection& c) {
    std::vector<std::optional<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto& stmt = c.statement(sql);
      stmt.bind(1, req.sleeping_task_unique_id);
      std::optional<TaskExecutionRecord> found;
      if (stmt.executeStep()) found = read_record(stmt, impl_->table);
      out.push_back(std::move(found));
    }
    return out;
  });
}

void SqliteTaskExecutionsStorage::update_many_by_id(const std::vector<UpdateByIdRequest>& requests) {
  if (requests.empty()) return;
  impl_->transaction(true, "update_many_by_id", [&](Connection& c) {
    for (const auto& req : requests) {
      if (impl_->update_by_id(c, req.execution_id, req.filters, req.update) &&
          req.decrement_parent_active_children_count) {
        const auto parent = impl_->parent_of(c, req.execution_id);
        if (!parent.empty()) {
          impl_->decrement_active_children_count(c, parent, 1, req.update.updated_at);
        }
      }
    }
  });
}

void SqliteTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(
    const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) {
  if (requests.empty()) return;
  impl_->transaction(true, "update_many_by_id_and_insert_children_if_updated",
                     [&](Connection& c) {
                       for (const auto& req : requests) {
                         if (impl_->update_by_id(c, req.execution_id, req.filters, req.update)) {
                           impl_->insert_rows(c, req.children_to_insert_if_updated);
                         }
                       }
                     });
}

std::vector<TaskExecutionRecord>
SqliteTaskExecutionsStorage::update_by_status_and_start_at_less_than_and_return(
    const UpdateByStatusAndStartAtLessThanRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->transaction(
      true, "update_by_status_and_start_at_less_than_and_return", [&](Connection& c) {
        return impl_->select_and_update(
            c, "status = ? AND start_at < ?",
            {std::string{to_string(request.status)}, ms(request.start_at_less_than)}, "start_at",
            request.limit, request.update, request.update_expires_at_with_started_at);
      });
}

std::vector<TaskExecutionRecord> SqliteTaskExecutionsStorage::
    update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
        const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->transaction(
      true, "update_by_status_and_on_children_finished_processing_status", [&](Connection& c) {
        return impl_->select_and_update(
            c,
            "status = ? AND on_children_finished_processing_status = ? AND "
            "active_children_count = 0",
            {std::string{to_string(request.status)},
             std::string{to_string(request.on_children_finished_processing_status)}},
            "updated_at", request.limit, request.update);
      });
}

std::vector<TaskExecutionRecord> SqliteTaskExecutionsStorage::update_by_close_status_and_return(
    const UpdateByCloseStatusRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->transaction(true, "update_by_close_status_and_return", [&](Connection& c) {
    return impl_->select_and_update(c, "close_status = ?",
                                    {std::string{to_string(request.close_status)}}, "updated_at",
                                    request.limit, request.update);
  });
}

std::int64_t SqliteTaskExecutionsStorage::update_by_is_sleeping_task_and_expires_at_less_than(
    const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  return impl_->transaction(
      true, "update_by_is_sleeping_task_and_expires_at_less_than", [&](Connection& c) {
        return impl_->update_selected(
            c, "is_sleeping_task = ? AND expires_at < ?",
            {b(request.is_sleeping_task), ms(request.expires_at_less_than)}, "expires_at",
            request.limit, request.update);
      });
}

std::int64_t
SqliteTaskExecutionsStorage::update_by_on_children_finished_processing_expires_at_less_than(
    const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  return impl_->transaction(
      true, "update_by_on_children_finished_processing_expires_at_less_than", [&](Connection& c) {
        return impl_->update_selected(
            c, "on_children_finished_processing_expires_at < ?",
            {ms(request.on_children_finished_processing_expires_at_less_than)},
            "on_children_finished_processing_expires_at", request.limit, request.update);
      });
}

std::int64_t SqliteTaskExecutionsStorage::update_by_close_expires_at_less_than(
    const UpdateByCloseExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  return impl_->transaction(true, "update_by_close_expires_at_less_than", [&](Connection& c) {
    return impl_->update_selected(c, "close_expires_at < ?",
                                  {ms(request.close_expires_at_less_than)}, "close_expires_at",
                                  request.limit, request.update);
  });
}

std::vector<TaskExecutionRecord>
SqliteTaskExecutionsStorage::update_by_executor_id_and_needs_promise_cancellation_and_return(
    const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->transaction(
      true, "update_by_executor_id_and_needs_promise_cancellation_and_return",
      [&](Connection& c) {
        return impl_->select_and_update(
            c, "executor_id = ? AND needs_promise_cancellation = ?",
            {request.executor_id, b(request.needs_promise_cancellation)}, "updated_at",
            request.limit, request.update);
      });
}

std::vector<std::vector<TaskExecutionRecord>>
SqliteTaskExecutionsStorage::get_many_by_parent_execution_id(
    const std::vector<GetByParentExecutionIdRequest>& requests) {
  if (requests.empty()) return {};
  const auto sql = impl_->select_where("parent_execution_id = ?");
  return impl_->transaction(false, "get_many_by_parent_execution_id", [&](Connection& c) {
    std::vector<std::vector<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto& stmt = c.statement(sql);
      stmt.bind(1, req.parent_execution_id);
      out.push_back(impl_->read_all(stmt));
    }
    return out;
  });
}

void SqliteTaskExecutionsStorage::update_many_by_parent_execution_id_and_is_finished(
    const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) {
  if (requests.empty()) return;
  impl_->transaction(true, "update_many_by_parent_execution_id_and_is_finished",
                     [&](Connection& c) {
                       for (const auto& req : requests) {
                         auto set = make_set_clause(req.update);
                         auto& stmt = c.statement(
                             "UPDATE " + impl_->quoted_table + " SET " + set.sql +
                             " WHERE parent_execution_id = ? AND is_finished = ?");
                         bind_all(stmt, set.values);
                         const int next = static_cast<int>(set.values.size()) + 1;
                         stmt.bind(next, req.parent_execution_id);
                         stmt.bind(next + 1, static_cast<int64_t>(b(req.is_finished)));
                         stmt.exec();
                       }
                     });
}

std::int64_t SqliteTaskExecutionsStorage::
    update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
        const UpdateAndDecrementParentActiveChildrenCountRequest& request) {
  if (request.limit <= 0) return 0;
  const auto& im = *impl_;
  return impl_->transaction(
      true, "update_and_decrement_parent_active_children_count", [&](Connection& c) {
        std::vector<std::int64_t> ids;
        std::map<std::string, std::int64_t> decrements;  // sorted: a fixed parent update order
        {
          auto& select = c.statement("SELECT id, parent_execution_id FROM " + im.quoted_table +
                                     " WHERE is_finished = ? AND close_status = ? ORDER BY "
                                     "updated_at LIMIT ?");
          select.bind(1, static_cast<int64_t>(b(request.is_finished)));
          select.bind(2, std::string{to_string(request.close_status)});
          select.bind(3, static_cast<int64_t>(request.limit));
          while (select.executeStep()) {
            ids.push_back(select.getColumn(0).getInt64());
            auto parent = select.getColumn(1);
            if (parent.getType() == SQLite::TEXT) {
              auto parent_id = parent.getString();
              if (!parent_id.empty()) ++decrements[parent_id];
            }
          }
          select.reset();
        }
        if (ids.empty()) return std::int64_t{0};
        auto set = make_set_clause(request.update);
        auto& upd =
            c.statement("UPDATE " + im.quoted_table + " SET " + set.sql + " WHERE id = ?");
        for (auto id : ids) {
          upd.reset();
          bind_all(upd, set.values);
          upd.bind(static_cast<int>(set.values.size()) + 1, static_cast<int64_t>(id));
          upd.exec();
        }
        for (const auto& [parent_id, count] : decrements) {
          im.decrement_active_children_count(c, parent_id, count, request.update.updated_at);
        }
        return static_cast<std::int64_t>(ids.size());
      });
}

void SqliteTaskExecutionsStorage::delete_by_id(const DeleteByIdRequest& request) {
  impl_->transaction(true, "delete_by_id", [&](Connection& c) {
    auto& stmt = c.statement("DELETE FROM " + impl_->quoted_table + " WHERE execution_id = ?");
    stmt.bind(1, request.execution_id);
    stmt.exec();
  });
}

void SqliteTaskExecutionsStorage::delete_all() {
  impl_->transaction(true, "delete_all", [&](Connection& c) {
    c.statement("DELETE FROM " + impl_->quoted_table).exec();
  });
}

}  // namespace durable_execution
