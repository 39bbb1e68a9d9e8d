#pragma once

// Schema of the PostgreSQL backend: the executions table's column types, the validated and quoted
// names of its schema and table, the schema-version table, and the migrations (under an advisory
// lock) that create or upgrade the table and its indexes, including the partial claim indexes.
// Threads: the storage constructor's thread only (once per storage).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "sql/sql_mapping.hpp"

namespace pqxx {
class connection_base;
}  // namespace pqxx

namespace durable_execution::postgres {

/** A column's PostgreSQL type, and whether it is NOT NULL. */
struct ColumnType {
  std::string_view type;
  bool not_null;
};

// The types of kColumns, in order (SPEC.md §9.1): the table's columns and the casts of the
// insert's array parameters.
inline constexpr std::array<ColumnType, sql::kColumns.size()> kColumnTypes{{
    {"text", false},     // root_task_id
    {"text", false},     // root_execution_id
    {"text", false},     // parent_task_id
    {"text", false},     // parent_execution_id
    {"integer", false},  // index_in_parent_children
    {"boolean", false},  // is_only_child_of_parent
    {"boolean", false},  // is_finalize_of_parent
    {"text", true},      // task_id
    {"text", true},      // execution_id
    {"json", true},      // retry_options
    {"bigint", true},    // sleep_ms_before_run
    {"bigint", true},    // timeout_ms
    {"boolean", true},   // are_children_sequential
    {"text", true},      // input
    {"text", false},     // executor_id
    {"boolean", true},   // is_sleeping_task
    {"text", false},     // sleeping_task_unique_id
    {"text", true},      // status
    {"boolean", true},   // is_finished
    {"text", false},     // run_output
    {"text", false},     // output
    {"json", false},     // error
    {"integer", true},   // retry_attempts
    {"bigint", true},    // start_at
    {"bigint", false},   // started_at
    {"bigint", false},   // expires_at
    {"bigint", false},   // finished_at
    {"json", false},     // children
    {"integer", true},   // active_children_count
    {"text", true},      // on_children_finished_processing_status
    {"bigint", false},   // on_children_finished_processing_expires_at
    {"bigint", false},   // on_children_finished_processing_finished_at
    {"json", false},     // finalize
    {"text", true},      // close_status
    {"bigint", false},   // close_expires_at
    {"bigint", false},   // closed_at
    {"boolean", true},   // needs_promise_cancellation
    {"bigint", true},    // created_at
    {"bigint", true},    // updated_at
    {"integer", true},   // lease_expirations (version 2)
}};

/** The PostgreSQL type of the column `name`, one of kColumns. */
[[nodiscard]] constexpr std::string_view column_type(std::string_view name) {
  for (std::size_t i = 0; i < sql::kColumns.size(); ++i) {
    if (sql::kColumns[i] == name) return kColumnTypes[i].type;
  }
  return {};
}

/** The schema-version table, one per schema: (table_name, version). */
inline constexpr std::string_view kSchemaTable = "durable_execution_schema";

/** `identifier` in double quotes (names are validated first: they hold no quote). */
[[nodiscard]] std::string quote_identifier(std::string_view identifier);

/**
 * The executions table of one storage: its schema and table names and the SQL that creates and
 * migrates it.
 */
class TableSchema {
 public:
  /**
   * Validates the names (DurableExecutionError naming the bad one): each must match
   * `[A-Za-z_][A-Za-z0-9_]*` (at most 63 bytes), and the table must not be kSchemaTable.
   */
  TableSchema(std::string schema, std::string table);

  [[nodiscard]] const std::string& schema() const noexcept { return schema_; }
  [[nodiscard]] const std::string& table() const noexcept { return table_; }
  /** `"schema"."table"`. */
  [[nodiscard]] const std::string& qualified() const noexcept { return qualified_; }

  /** CREATE TABLE with version 1's columns (later ones are added by the migrations). */
  [[nodiscard]] std::string create_table_v1_sql() const;
  /** CREATE [UNIQUE] INDEX IF NOT EXISTS of `index` (named `ix_<table>_<suffix>`). */
  [[nodiscard]] std::string create_index_sql(const sql::IndexDef& index) const;
  /** The quoted name of the index with `suffix`: `"ix_<table>_<suffix>"`. */
  [[nodiscard]] std::string index_name(std::string_view suffix) const;

  /**
   * Creates the schema, the table and its indexes, or migrates them to the current version, in
   * one transaction under an advisory lock (executors starting together do not race). Refuses
   * (DurableExecutionError) a newer version before writing anything, and a table of this name
   * that lacks an executions table's columns.
   */
  void migrate(pqxx::connection_base& conn) const;

 private:
  std::string schema_;
  std::string table_;
  std::string qualified_;
};

}  // namespace durable_execution::postgres
