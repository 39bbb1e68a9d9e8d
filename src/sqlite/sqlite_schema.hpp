#pragma once

// Schema and migration of the SQLite backend (SPEC.md §9.1): the executions table and its
// indexes, the schema-version table shared by every table in a file, and the migrations between
// versions. Threads: the thread that opens the storage (and its probe connection), only.

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace durable_execution::sqlite {

/** The table that records each executions table's schema version. */
constexpr std::string_view kSchemaTable = "durable_execution_schema";

/** Whether `name` can name an executions table: [A-Za-z_][A-Za-z0-9_]{0,62}, not sqlite_*. */
[[nodiscard]] bool is_valid_table_name(std::string_view name);

/** The schema of one executions table in one database file. */
class Schema {
 public:
  /** `table` must be valid (is_valid_table_name); `path` names the file in messages. */
  Schema(std::string path, std::string table);

  /** The recorded schema version of the table, if any; reads only (the file is not touched). */
  [[nodiscard]] std::optional<std::int64_t> read_version(sqlite3* db) const;

  /** Throws (non-retryable) if `version` is newer than this library supports. */
  void refuse_newer(std::optional<std::int64_t> version) const;

  /**
   * Creates the table and its indexes, adopts a table of that name without a version row if it
   * has every column, or migrates an older version; in one BEGIN IMMEDIATE transaction, so two
   * processes opening a new file do not race, and a failed migration leaves the file as it was.
   */
  void migrate(sqlite3* db) const;

 private:
  [[nodiscard]] bool table_exists(sqlite3* db) const;
  [[nodiscard]] bool has_column(sqlite3* db, std::string_view name) const;
  void adopt_existing_table(sqlite3* db) const;
  void create_indexes_v1(sqlite3* db) const;
  void set_version(sqlite3* db, std::int64_t version) const;

  std::string path_;
  std::string table_;
  std::string quoted_table_;
};

}  // namespace durable_execution::sqlite
