#pragma once

// Connections of the SQLite backend: one connection with its statements and per-connection caches
// (Connection), opening it and its pragmas, the translation of SQLite errors, busy retries, and
// running one transaction on a connection. Threads: a Connection is used by one thread at a time
// (the storage's callers under the storage's mutexes, the checkpoint thread on its own one).

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "durable_execution/errors.hpp"
#include "durable_execution/sqlite/sqlite_storage.hpp"
#include "sql/sql_row_reader.hpp"
#include "sqlite/sqlite_row_codec.hpp"
#include "sqlite/sqlite_statement.hpp"

namespace durable_execution::sqlite {

/** One SQLite connection and its prepared statements; used by one thread at a time. */
struct Connection {
  std::unique_ptr<SQLite::Database> db;  // declared first: statements are finalized before close
  StatementCache statements;
  // Transaction control, prepared once (not in `statements`: they are not queries).
  std::unique_ptr<Stmt> begin_deferred;
  std::unique_ptr<Stmt> begin_immediate;
  std::unique_ptr<Stmt> commit;
  sql::DecodeCache decode;
  RetryOptionsText retry_options;
  // Messages of the current transaction (corrupt rows set aside), logged once it is over and
  // the connection's mutex released: the sink is user code.
  std::vector<std::string> warnings;

  [[nodiscard]] sqlite3* handle() const noexcept { return db->getHandle(); }

  /** The cached statement for `key` (prepared from `make_sql()` on first use), reset. */
  template <class MakeSql>
  Stmt& statement(std::uint64_t key, MakeSql&& make_sql) {
    return statements.get(handle(), key, std::forward<MakeSql>(make_sql));
  }

  void begin(bool immediate);
  void commit_transaction();
  /** Releases read cursors and rolls back whatever transaction is open; never throws. */
  void rollback() noexcept;
};

/**
 * Opens `c` on `path` (read-write, created if missing, URIs allowed) with SQLite's own mutexes
 * off: each connection is used by one thread at a time, guarded by the storage's mutexes.
 */
void open_connection(Connection& c, const std::string& path,
                     std::chrono::milliseconds busy_timeout);

/** The statement that sets the options' synchronous mode. */
[[nodiscard]] std::string synchronous_pragma(SqliteSynchronous synchronous);

/** Whether an (extended) result code is SQLITE_BUSY or SQLITE_LOCKED: retryable at once. */
[[nodiscard]] bool is_busy(int code);

/** The storage's error for a failed SQLite call of `operation` on the file at `path`. */
[[nodiscard]] DurableExecutionError translate(const SQLite::Exception& e, const std::string& path,
                                              std::string_view operation);

/**
 * Rethrows the exception in flight as the storage's error: SQLite's translated, ours as is, any
 * other std::exception as an internal DurableExecutionError. Call only from a catch block.
 */
[[noreturn]] void rethrow_as_storage_error(const std::string& path, std::string_view operation);

/** Retries of calls that find the database busy: the file (for messages) and the bound. */
struct BusyPolicy {
  std::string path;
  std::int32_t max_retries = 0;

  /**
   * Runs `body`, again after a jittered exponential back-off while it throws a busy
   * SQLite::Exception, at most max_retries times more; then throws a retryable error.
   */
  template <class F>
  void run(std::string_view operation, F&& body) const {
    auto delay = std::chrono::microseconds{1000};
    for (std::int32_t attempt = 0;; ++attempt) {
      try {
        body();
        return;
      } catch (const SQLite::Exception& e) {
        if (!is_busy(e.getExtendedErrorCode())) throw;
        if (attempt >= max_retries) throw stayed_busy(operation, attempt + 1, e);
      }
      back_off(delay);
    }
  }

 private:
  [[nodiscard]] DurableExecutionError stayed_busy(std::string_view operation, std::int32_t attempts,
                                                  const SQLite::Exception& e) const;
  /** Sleeps between half of `delay` and all of it, then doubles it (up to 100 ms). */
  static void back_off(std::chrono::microseconds& delay);
};

/** Sets the pragmas of a storage connection: WAL, the synchronous mode, cache, temp store. */
void configure(Connection& c, const SqliteStorageOptions& options, const BusyPolicy& busy);

/**
 * Runs `body(c)` in one transaction on `c` (BEGIN IMMEDIATE if `immediate`, else a deferred
 * BEGIN), retrying busy failures; on any failure the transaction is rolled back and the error
 * rethrown as the storage's (rethrow_as_storage_error). Returns what `body` returns.
 */
template <class F>
auto run_transaction(Connection& c, bool immediate, const BusyPolicy& busy,
                     std::string_view operation, F& body) {
  // Update shapes are bounded by the engine's call sites; the cap only guards misuse. Released
  // here, between transactions, so no statement reference is invalidated mid-call.
  c.statements.release_if_full();
  using Result = decltype(body(c));
  std::optional<std::conditional_t<std::is_void_v<Result>, int, Result>> result;
  try {
    busy.run(operation, [&] {
      c.warnings.clear();  // only the attempt that commits reports
      c.begin(immediate);
      try {
        if constexpr (std::is_void_v<Result>) {
          body(c);
          result = 0;
        } else {
          result = body(c);
        }
        c.statements.reset_all();  // release read cursors before COMMIT
        c.commit_transaction();
      } catch (...) {
        c.rollback();
        result.reset();
        c.warnings.clear();
        throw;
      }
    });
  } catch (...) {
    rethrow_as_storage_error(busy.path, operation);
  }
  if constexpr (!std::is_void_v<Result>) return std::move(*result);
}

}  // namespace durable_execution::sqlite
