#pragma once

// Connections of the PostgreSQL backend: a pool that opens connections on demand (up to
// pool_size), replaces broken ones, retries an operation that failed for a transient reason on a
// new connection with back-off, and settles a COMMIT whose outcome is unknown with txid_status().
// Threads: every thread that calls the storage enters here (each call borrows one connection for
// its whole operation); the pool's state is guarded by its mutex.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "durable_execution/errors.hpp"
#include "durable_execution/postgres/postgres_storage.hpp"
#include "sql/sql_mapping.hpp"

namespace durable_execution::postgres {

/** One connection and the statements prepared on it; used by one call at a time. */
struct Connection {
  std::unique_ptr<pqxx::connection> conn;
  std::unordered_set<std::uint64_t> prepared;  // statement keys (pg_statements.hpp)
  sql::DecodeCache decode;
};

/** Thrown inside an operation to retry it on a new connection (the old one is discarded). */
struct ConnectionLost {
  std::string message;
};

enum class SqlErrorKind { retry_in_place, connection, duplicate, fatal };

/** What a failed statement's SQLSTATE calls for: a repeat, a new connection, or an error. */
[[nodiscard]] SqlErrorKind classify(const std::string& sqlstate);

/**
 * How an operation is run and, when its connection is lost, how its outcome is settled:
 * - read: one statement, no transaction (then make_view_durable's, if needed); repeated freely.
 * - single: one guarded statement, autocommitted; a repeat cannot write an outcome twice (its
 *   guards no longer match rows it already changed; a claim whose result was lost leaves its
 *   rows to expire and be claimed again).
 * - transaction: BEGIN … COMMIT; the transaction id is read at BEGIN, and a COMMIT whose
 *   outcome is unknown is settled with txid_status() on a new connection.
 * - deferred_transaction: a transaction whose COMMIT does not wait for the disk
 *   (`SET LOCAL synchronous_commit = off`; the contract's defer_durability). PostgreSQL's log
 *   is in commit order, so a crash loses such a commit only together with every later one.
 */
enum class Mode { read, single, transaction, deferred_transaction };

/** Whether `mode` runs its body between BEGIN and COMMIT. */
[[nodiscard]] constexpr bool in_transaction(Mode mode) {
  return mode == Mode::transaction || mode == Mode::deferred_transaction;
}

/**
 * The storage's connections. Thread safety: thread-safe; run() may be called from any number of
 * threads (calls beyond pool_size wait for a free connection).
 */
class Pool {
 public:
  /**
   * Checks the pool's options (throws DurableExecutionError naming them) and adds
   * `connect_timeout` to the connection string unless it has one. Opens nothing.
   */
  Pool(std::string connection_string, const PostgresStorageOptions& options);

  /** The connection string (with connect_timeout); never in a message (see redacted()). */
  [[nodiscard]] const std::string& conninfo() const noexcept { return conninfo_; }
  /** The connection string with its password replaced by `***`. */
  [[nodiscard]] const std::string& redacted() const noexcept { return redacted_; }

  /** A server message without its trailing newline and without the password. */
  [[nodiscard]] std::string clean(std::string message) const;

  /** The error of a failed operation: "PostgreSQL storage (<redacted>) <op> failed: <what>". */
  [[nodiscard]] DurableExecutionError error(std::string_view operation, const std::string& what,
                                            bool retryable) const;

  /** A new connection with this backend's session settings; throws ConnectionLost. */
  [[nodiscard]] std::unique_ptr<Connection> connect() const;
  /** Adds a connection opened with connect() (the constructor's first) to the idle ones. */
  void adopt(std::unique_ptr<Connection> c);

  /** How many connections are open or being opened, idle or in use. */
  [[nodiscard]] std::int32_t open_connections() const;

  /**
   * Runs `body(connection, tx)` as `mode` says, on a pooled connection: retries transient
   * failures on new connections up to max_retries, settles unknown commits (see Mode), and
   * translates errors into DurableExecutionError. `recheck` (for single statements whose body
   * returns nothing) is asked, after a lost connection, whether the lost call took effect.
   */
  template <class F, class Recheck = std::nullptr_t>
  auto run(std::string_view operation, Mode mode, F&& body, Recheck&& recheck = nullptr) {
    using Result = std::invoke_result_t<F&, Connection&, pqxx::transaction_base&>;
    std::function<bool()> recheck_call;
    if constexpr (!std::is_same_v<std::decay_t<Recheck>, std::nullptr_t>) {
      static_assert(std::is_void_v<Result>, "a re-checked operation returns nothing");
      recheck_call = [&] { return static_cast<bool>(recheck()); };
    }
    if constexpr (std::is_void_v<Result>) {
      run_body(
          operation, mode, [&](Connection& c, pqxx::transaction_base& tx) { body(c, tx); },
          recheck_call);
    } else {
      std::optional<Result> result;
      run_body(
          operation, mode, [&](Connection& c, pqxx::transaction_base& tx) { result = body(c, tx); },
          recheck_call);
      return std::move(*result);
    }
  }

 private:
  using Body = std::function<void(Connection&, pqxx::transaction_base&)>;

  /** run() without its result: returns once `body` has taken effect, else throws. */
  void run_body(std::string_view operation, Mode mode, const Body& body,
                const std::function<bool()>& recheck);
  /** An idle connection, or a new one while fewer than pool_size are open; else waits. */
  [[nodiscard]] std::unique_ptr<Connection> acquire();
  void release(std::unique_ptr<Connection> c);
  void discard(std::unique_ptr<Connection> c) noexcept;
  void rollback_or_discard(Mode mode, std::unique_ptr<Connection> c) noexcept;
  void back_off(std::int32_t attempt) const;
  /** Whether transaction `xid`, whose COMMIT was not acknowledged, committed. */
  bool committed(std::string_view operation, std::int64_t xid);

  std::string conninfo_;
  std::string redacted_;
  std::optional<std::string> password_;
  std::int32_t pool_size_;
  std::int32_t max_retries_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::int32_t open_ = 0;  // connections open or being opened, idle or in use
};

}  // namespace durable_execution::postgres
