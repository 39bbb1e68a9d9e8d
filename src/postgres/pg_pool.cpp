// Connections of the PostgreSQL backend: opening, lending and replacing them, retrying
// operations, settling unknown commits (see pg_pool.hpp). Entered by every thread that calls the
// storage.
#include "pg_pool.hpp"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "pg_exec.hpp"
#include "pg_text.hpp"

namespace durable_execution::postgres {

SqlErrorKind classify(const std::string& sqlstate) {
  if (sqlstate == "40001" || sqlstate == "40P01") return SqlErrorKind::retry_in_place;
  if (sqlstate == "23505") return SqlErrorKind::duplicate;
  // Connection exceptions, a server shutting down or starting up, too many connections, and a
  // server that turned read-only (a demoted primary after a failover): a new connection may
  // reach a working primary.
  if (sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" ||
      sqlstate == "57P03" || sqlstate == "53300" || sqlstate == "25006" ||
      sqlstate == "55000" /* recovery in progress: txid functions on a standby */) {
    return SqlErrorKind::connection;
  }
  return SqlErrorKind::fatal;
}

Pool::Pool(std::string connection_string, const PostgresStorageOptions& options)
    : password_(connection_password(connection_string)),
      pool_size_(options.pool_size),
      max_retries_(options.max_retries) {
  redacted_ = redact_connection_string(connection_string);
  if (options.pool_size < 1 || options.max_retries < 0 || options.connect_timeout.count() < 0) {
    throw DurableExecutionError(
        "Invalid PostgreSQL storage options: pool_size must be at least 1, max_retries and "
        "connect_timeout must not be negative");
  }
  conninfo_ = std::move(connection_string);
  if (!has_connection_option(conninfo_, "connect_timeout")) {
    const auto seconds = std::max<std::int64_t>(
        1, std::chrono::ceil<std::chrono::seconds>(options.connect_timeout).count());
    conninfo_ = with_connection_option(conninfo_, "connect_timeout", std::to_string(seconds));
  }
}

std::string Pool::clean(std::string message) const {
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
    message.pop_back();
  }
  return redact_secret(std::move(message), password_);
}

DurableExecutionError Pool::error(std::string_view operation, const std::string& what,
                                  bool retryable) const {
  return DurableExecutionError("PostgreSQL storage (" + redacted_ + ") " + std::string{operation} +
                                   " failed: " + clean(what),
                               ErrorType::generic, retryable, false);
}

// ---- connections -----------------------------------------------------------------------------

std::unique_ptr<Connection> Pool::connect() const {
  auto c = std::make_unique<Connection>();
  try {
    c->conn = std::make_unique<pqxx::connection>(conninfo_);
    // Server notices (e.g. "already exists, skipping") would go to stderr.
    pqxx::nontransaction tx(*c->conn);
    tx.exec("SET client_min_messages = warning");
    // Every statement of this backend has an index to use. Plans are made once per prepared
    // statement (generic) with sequential scans costed out: a plan made while the table was
    // small (a new table has no statistics until autovacuum analyzes it) would otherwise keep
    // sequential scans once it has grown (claims took 60-500 ms instead of ~1 ms), and
    // planning every execution instead cost ~0.3 s of server time per reference iteration.
    tx.exec("SET enable_seqscan = off");
    tx.exec("SET plan_cache_mode = force_generic_plan");
    tx.commit();
  } catch (const std::exception& e) {
    throw ConnectionLost{clean(e.what())};
  }
  return c;
}

void Pool::adopt(std::unique_ptr<Connection> c) {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(c));
    ++open_;
  }
  cv_.notify_one();
}

std::int32_t Pool::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

std::unique_ptr<Connection> Pool::acquire() {
  {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return !idle_.empty() || open_ < pool_size_; });
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    ++open_;
  }
  try {
    return connect();
  } catch (...) {
    {
      std::lock_guard lock(mutex_);
      --open_;
    }
    cv_.notify_one();
    throw;
  }
}

void Pool::release(std::unique_ptr<Connection> c) {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(c));
  }
  cv_.notify_one();
}

void Pool::discard(std::unique_ptr<Connection> c) noexcept {
  c.reset();  // closes it
  {
    std::lock_guard lock(mutex_);
    --open_;
  }
  cv_.notify_one();
}

// ---- running operations ----------------------------------------------------------------------

void Pool::back_off(std::int32_t attempt) const {
  thread_local std::minstd_rand jitter{std::random_device{}()};
  const auto base = std::chrono::milliseconds{50} * (std::int64_t{1} << std::min(attempt, 5));
  const auto cap = std::min<std::chrono::milliseconds::rep>(base.count(), 1000);
  std::uniform_int_distribution<std::int64_t> dist(cap / 2, cap);
  std::this_thread::sleep_for(std::chrono::milliseconds{dist(jitter)});
}

/**
 * The outcome of transaction `xid` whose COMMIT was sent but not acknowledged: true if it
 * committed, false if it aborted (or never reached the server). Asks on new connections,
 * waiting while it is still in progress (the old session may still be finishing), up to the
 * retry budget; throws a retryable error if it cannot tell.
 */
bool Pool::committed(std::string_view operation, std::int64_t xid) {
  std::string last;
  for (std::int32_t attempt = 0; attempt <= max_retries_; ++attempt) {
    if (attempt > 0) back_off(attempt);
    std::unique_ptr<Connection> c;
    try {
      c = acquire();
      pqxx::nontransaction tx(*c->conn);
      const auto r = exec_params(tx, "SELECT txid_status($1)", xid);
      tx.commit();
      const bool known = !r.empty() && !r[0][0].is_null();
      const std::string status = known ? r[0][0].c_str() : "";
      release(std::move(c));
      if (status == "committed") return true;
      // NULL: too old to be known (it cannot be ours, just sent) or from before a failover to
      // a standby that never received it: not committed there.
      if (status == "aborted" || !known) return false;
      last = "transaction " + std::to_string(xid) + " still in progress";
    } catch (const ConnectionLost& e) {
      last = e.message;
    } catch (const std::exception& e) {
      if (c) discard(std::move(c));
      last = e.what();
    }
  }
  throw error(operation, "outcome of the commit unknown: " + last, true);
}

void Pool::run_body(std::string_view operation, Mode mode, const Body& body,
                    const std::function<bool()>& recheck) {
  std::string last;
  for (std::int32_t attempt = 0;; ++attempt) {
    if (attempt > 0) {
      if (attempt > max_retries_) {
        throw error(operation, last + " (after " + std::to_string(attempt) + " attempts)", true);
      }
      back_off(attempt - 1);
    }
    std::unique_ptr<Connection> c;
    try {
      c = acquire();
    } catch (const ConnectionLost& e) {
      last = e.message;
      continue;
    }
    std::int64_t xid = -1;
    bool commit_sent = false;
    try {
      pqxx::nontransaction tx(*c->conn);
      if (in_transaction(mode)) {
        xid = tx.exec(mode == Mode::deferred_transaction
                          ? "BEGIN; SET LOCAL synchronous_commit = off; SELECT txid_current()"
                          : "BEGIN; SELECT txid_current()")[0][0]
                  .as<std::int64_t>();
      }
      body(*c, tx);
      if (in_transaction(mode)) {
        commit_sent = true;
        tx.exec("COMMIT");
      }
      tx.commit();
      release(std::move(c));
      return;
    } catch (const pqxx::broken_connection& e) {
      discard(std::move(c));
      last = e.what();
      // Lost at COMMIT: the transaction may have committed. Ask the server, never repeat it.
      if (in_transaction(mode) && commit_sent && committed(operation, xid)) return;
      if (mode == Mode::single && recheck && recheck()) return;
    } catch (const pqxx::statement_completion_unknown& e) {
      // The statement's outcome is unknown (40003): as for a connection lost at COMMIT.
      discard(std::move(c));
      last = e.what();
      if (in_transaction(mode) && commit_sent && committed(operation, xid)) return;
      if (mode == Mode::single && recheck && recheck()) return;
    } catch (const pqxx::transaction_rollback& e) {
      // A serialization failure or a deadlock: the server rolled the statement back; the
      // whole operation is repeated.
      last = e.what();
      rollback_or_discard(mode, std::move(c));
    } catch (const pqxx::sql_error& e) {
      const auto kind = classify(e.sqlstate());
      if (in_transaction(mode) && kind != SqlErrorKind::connection) {
        try {
          pqxx::nontransaction rollback(*c->conn);
          rollback.exec("ROLLBACK");
          rollback.commit();
        } catch (...) {
          discard(std::move(c));
        }
      }
      last = e.what();
      if (kind == SqlErrorKind::duplicate) {
        if (c) release(std::move(c));
        throw DurableExecutionError("PostgreSQL storage (" + redacted_ + ") " +
                                        std::string{operation} +
                                        " failed: duplicate execution id or sleeping task "
                                        "unique id (" +
                                        clean(last) + ")",
                                    ErrorType::generic, false, false);
      }
      if (kind == SqlErrorKind::fatal) {
        if (c) release(std::move(c));
        throw error(operation, last, false);
      }
      if (kind == SqlErrorKind::connection) {
        if (c) discard(std::move(c));
      } else if (c) {
        release(std::move(c));
      }
    } catch (const ConnectionLost& e) {
      if (c) discard(std::move(c));
      last = e.message;
    } catch (const DurableExecutionError&) {
      rollback_or_discard(mode, std::move(c));
      throw;
    } catch (const std::exception& e) {
      rollback_or_discard(mode, std::move(c));
      throw DurableExecutionError("PostgreSQL storage (" + redacted_ + ") " +
                                      std::string{operation} + " failed: " + clean(e.what()),
                                  ErrorType::generic, false, true);
    }
  }
}

void Pool::rollback_or_discard(Mode mode, std::unique_ptr<Connection> c) noexcept {
  if (!c) return;
  if (!in_transaction(mode)) {
    release(std::move(c));
    return;
  }
  try {
    pqxx::nontransaction rollback(*c->conn);
    rollback.exec("ROLLBACK");
    rollback.commit();
    release(std::move(c));
  } catch (...) {
    discard(std::move(c));
  }
}

}  // namespace durable_execution::postgres
