// Connections of the SQLite backend (sqlite_connection.hpp): opening, pragmas, transaction
// control, error translation and busy back-off. Entered by the thread that holds the connection.

#include "sqlite/sqlite_connection.hpp"

#include <algorithm>
#include <exception>
#include <limits>
#include <random>
#include <thread>

namespace durable_execution::sqlite {

namespace {

void run_control(std::unique_ptr<Stmt>& stmt, sqlite3* handle, const char* sql) {
  if (!stmt) stmt = std::make_unique<Stmt>(handle, sql);
  stmt->reset();
  (void)stmt->exec();
  stmt->reset();
}

}  // namespace

void Connection::begin(bool immediate) {
  if (immediate) {
    run_control(begin_immediate, handle(), "BEGIN IMMEDIATE");
  } else {
    run_control(begin_deferred, handle(), "BEGIN");
  }
}

void Connection::commit_transaction() { run_control(commit, handle(), "COMMIT"); }

void Connection::rollback() noexcept {
  statements.reset_all();
  try_exec(handle(), "ROLLBACK");
}

void open_connection(Connection& c, const std::string& path,
                     std::chrono::milliseconds busy_timeout) {
  const auto timeout = static_cast<int>(
      std::min<std::int64_t>(busy_timeout.count(), std::numeric_limits<int>::max()));
  c.db = std::make_unique<SQLite::Database>(
      path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_URI | SQLite::OPEN_NOMUTEX,
      timeout);
}

std::string synchronous_pragma(SqliteSynchronous synchronous) {
  return std::string{"PRAGMA synchronous="} + (synchronous == SqliteSynchronous::off      ? "OFF"
                                               : synchronous == SqliteSynchronous::normal ? "NORMAL"
                                                                                          : "FULL");
}

void configure(Connection& c, const SqliteStorageOptions& options, const BusyPolicy& busy) {
  busy.run("open", [&] {
    // A VFS without WAL support keeps its journal mode; locking is still correct then.
    Stmt journal(c.handle(), "PRAGMA journal_mode=WAL", Stmt::Lifetime::one_shot);
    (void)journal.step();
  });
  exec(c.handle(), synchronous_pragma(options.synchronous));
  exec(c.handle(),
       "PRAGMA cache_size=-" + std::to_string(std::max<std::int64_t>(options.cache_size_kib, 64)));
  exec(c.handle(), "PRAGMA temp_store=MEMORY");
}

bool is_busy(int code) {
  const int primary = code & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

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

void rethrow_as_storage_error(const std::string& path, std::string_view operation) {
  try {
    throw;
  } catch (const SQLite::Exception& e) {
    throw translate(e, path, operation);
  } catch (const DurableExecutionError&) {
    throw;
  } catch (const std::exception& e) {
    // Anything else (say, bad_alloc while mapping rows) still reaches the caller as the
    // documented error type, after the rollback.
    throw DurableExecutionError(
        "SQLite storage (" + path + ") " + std::string{operation} + " failed: " + e.what(),
        ErrorType::generic, false, true);
  }
}

DurableExecutionError BusyPolicy::stayed_busy(std::string_view operation, std::int32_t attempts,
                                              const SQLite::Exception& e) const {
  return DurableExecutionError("SQLite storage (" + path + ") " + std::string{operation} +
                                   " failed: database stayed busy after " +
                                   std::to_string(attempts) + " attempts: " + e.what(),
                               ErrorType::generic, true, false);
}

void BusyPolicy::back_off(std::chrono::microseconds& delay) {
  // Jittered, so competing processes do not retry in lock step.
  thread_local std::minstd_rand jitter{std::random_device{}()};
  std::uniform_int_distribution<std::int64_t> dist(delay.count() / 2, delay.count());
  std::this_thread::sleep_for(std::chrono::microseconds{dist(jitter)});
  delay = std::min(delay * 2, std::chrono::microseconds{100'000});
}

}  // namespace durable_execution::sqlite
