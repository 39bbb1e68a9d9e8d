// Schema and migration of the SQLite backend (sqlite_schema.hpp). Entered by the thread that
// opens the storage only, on the writer connection (and on a probe connection, read_version).

#include "sqlite/sqlite_schema.hpp"

#include <algorithm>
#include <span>
#include <utility>
#include <vector>

#include "durable_execution/errors.hpp"
#include "durable_execution/sqlite/sqlite_storage.hpp"
#include "sql/sql_columns.hpp"
#include "sqlite/sqlite_statement.hpp"

namespace durable_execution::sqlite {

namespace {

// ---- table layout ----------------------------------------------------------------------------

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

// Version 2: the crash-loop bound counts lease expirations per execution.
constexpr std::string_view kMigrateV2 =
    "ALTER TABLE {t} ADD COLUMN lease_expirations INTEGER NOT NULL DEFAULT 0";

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (auto pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

}  // namespace

bool is_valid_table_name(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!alpha(name.front())) return false;
  if (!std::all_of(name.begin(), name.end(), [&](char c) { return alpha(c) || digit(c); })) {
    return false;
  }
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  // sqlite_* names are reserved by SQLite; the schema table is ours.
  return lower.rfind("sqlite_", 0) != 0 && lower != kSchemaTable;
}

Schema::Schema(std::string path, std::string table)
    : path_(std::move(path)), table_(std::move(table)), quoted_table_("\"" + table_ + "\"") {}

void Schema::migrate(sqlite3* db) const {
  exec(db, "BEGIN IMMEDIATE");
  try {
    exec(db, std::string{"CREATE TABLE IF NOT EXISTS "} + std::string{kSchemaTable} +
                 " (table_name TEXT PRIMARY KEY COLLATE NOCASE, version INTEGER NOT NULL) "
                 "WITHOUT ROWID");
    auto version = read_version(db);
    refuse_newer(version);  // again, under the write lock
    if (!version) {
      if (table_exists(db)) {
        adopt_existing_table(db);
      } else {
        exec(db, replace_all(std::string{kCreateTableV1}, "{t}", quoted_table_));
      }
      create_indexes_v1(db);
      set_version(db, 1);
      version = 1;
    }
    // Each step runs in this same transaction, so a failed migration leaves the file as it was.
    if (*version < 2) {
      // An adopted table may have the column already.
      if (!has_column(db, "lease_expirations")) {
        exec(db, replace_all(std::string{kMigrateV2}, "{t}", quoted_table_));
      }
      set_version(db, 2);
      version = 2;
    }
    exec(db, "COMMIT");
  } catch (...) {
    try_exec(db, "ROLLBACK");
    throw;
  }
}

std::optional<std::int64_t> Schema::read_version(sqlite3* db) const {
  // Reading sqlite_master also validates the file: a non-database fails here.
  Stmt exists(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
              Stmt::Lifetime::one_shot);
  exists.bind_static(1, kSchemaTable);
  if (!exists.step()) return std::nullopt;
  Stmt q(db,
         std::string{"SELECT version FROM "} + std::string{kSchemaTable} + " WHERE table_name = ?",
         Stmt::Lifetime::one_shot);
  q.bind_static(1, table_);
  if (!q.step()) return std::nullopt;
  return q.int64(0);
}

// SQLite identifiers are case-insensitive: "Jobs" and "jobs" are one table.
bool Schema::table_exists(sqlite3* db) const {
  Stmt q(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE",
         Stmt::Lifetime::one_shot);
  q.bind_static(1, table_);
  return q.step();
}

bool Schema::has_column(sqlite3* db, std::string_view name) const {
  Stmt q(db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", Stmt::Lifetime::one_shot);
  q.bind_static(1, table_);
  q.bind_static(2, name);
  return q.step();
}

void Schema::refuse_newer(std::optional<std::int64_t> version) const {
  if (version && *version > SqliteTaskExecutionsStorage::schema_version) {
    throw DurableExecutionError("SQLite table " + table_ + " in " + path_ + " has schema version " +
                                    std::to_string(*version) +
                                    ", newer than the version this library supports (" +
                                    std::to_string(SqliteTaskExecutionsStorage::schema_version) +
                                    "); upgrade durable_execution to open it",
                                ErrorType::generic, false, false);
  }
}

// A table of that name without a version row, e.g. one created by the reference engine's
// drizzle schema (same columns): adopt it if every column we use is there, refuse otherwise.
void Schema::adopt_existing_table(sqlite3* db) const {
  std::vector<std::string> present;
  Stmt q(db, "SELECT name FROM pragma_table_info(?)", Stmt::Lifetime::one_shot);
  q.bind_static(1, table_);
  while (q.step()) present.emplace_back(q.text(0));
  for (auto c : std::span{sql::kColumns}.first(sql::kColumnsV1)) {
    if (std::find(present.begin(), present.end(), c) == present.end()) {
      throw DurableExecutionError("SQLite table " + table_ + " in " + path_ +
                                      " exists but is not a task executions table (missing "
                                      "column " +
                                      std::string{c} + ")",
                                  ErrorType::generic, false, false);
    }
  }
}

void Schema::create_indexes_v1(sqlite3* db) const {
  for (const auto& ix : sql::kIndexesV1) {
    exec(db, std::string{"CREATE "} + (ix.unique ? "UNIQUE " : "") + "INDEX IF NOT EXISTS \"ix_" +
                 table_ + "_" + std::string{ix.suffix} + "\" ON " + quoted_table_ + " (" +
                 std::string{ix.columns} + ")" +
                 (ix.where.empty() ? std::string{} : " WHERE " + std::string{ix.where}));
  }
}

void Schema::set_version(sqlite3* db, std::int64_t version) const {
  Stmt q(db,
         std::string{"INSERT INTO "} + std::string{kSchemaTable} +
             " (table_name, version) VALUES (?, ?) ON CONFLICT (table_name) "
             "DO UPDATE SET version = excluded.version",
         Stmt::Lifetime::one_shot);
  q.bind_static(1, table_);
  q.bind(2, version);
  (void)q.exec();
}

}  // namespace durable_execution::sqlite
