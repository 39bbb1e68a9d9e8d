#pragma once

// The row codec of the SQLite backend: a TaskExecutionRecord to the parameters of the INSERT
// (bind_record), an update to the parameters of its SET clause (bind_update), and a result row
// back to a record through the shared damage-tolerant reader (read_record). Threads: whichever
// thread holds the statement's connection; the caches passed in belong to that connection.

#include <cstdint>
#include <optional>
#include <string>

#include "durable_execution/task_execution.hpp"
#include "sql/sql_row_reader.hpp"
#include "sqlite/sqlite_statement.hpp"

namespace durable_execution::sqlite {

/** The JSON text of the retry options last encoded: the rows of a batch usually share them. */
class RetryOptionsText {
 public:
  /** The JSON text of `options`; valid until the next call with other options. */
  const std::string& json(const RetryOptions& options);

 private:
  std::optional<RetryOptions> options_;
  std::string text_;
};

/**
 * Binds every column of sql::kColumns, in order, from parameter 1. Strings of the record are
 * bound without a copy (the record outlives the statement's run); JSON built for the row is copied.
 */
void bind_record(Stmt& stmt, const TaskExecutionRecord& r, RetryOptionsText& retry_options);

/** Binds an update's values from parameter 1 on; returns the next parameter index. */
int bind_update(Stmt& stmt, const TaskExecutionUpdate& u, std::optional<Timestamp> expires_at_base);

/**
 * Reads the current row of `stmt` (the rowid in column 0, then sql::kColumns). Never throws for
 * what the row holds: a damaged row reads as a failed record (sql::mark_corrupt) and sets
 * `*corrupt`; `table` names it in the error.
 */
TaskExecutionRecord read_record(const Stmt& stmt, const std::string& table, sql::DecodeCache& cache,
                                bool* corrupt = nullptr);

}  // namespace durable_execution::sqlite
