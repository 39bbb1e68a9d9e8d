#include "durable_execution/postgres/postgres_storage.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <span>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "durable_execution/errors.hpp"
#include "pg_text.hpp"
#include "sql/rate_limited_log.hpp"
#include "sql/sql_mapping.hpp"

// Every libpqxx call of the library is in this file (STYLE.md: Debian ships 6.4, whose API
// differs from later versions).

namespace durable_execution {

namespace {

using namespace sql;  // NOLINT(google-build-using-namespace)
using postgres::ArrayLiteral;

// ---- table layout ----------------------------------------------------------------------------

// PostgreSQL types of kColumns, in order (SPEC.md §9.1): the table's columns and the casts of
// the insert's array parameters.
constexpr std::array<std::string_view, kColumns.size()> kColumnTypes{
    "text",     // root_task_id
    "text",     // root_execution_id
    "text",     // parent_task_id
    "text",     // parent_execution_id
    "integer",  // index_in_parent_children
    "boolean",  // is_only_child_of_parent
    "boolean",  // is_finalize_of_parent
    "text",     // task_id
    "text",     // execution_id
    "json",     // retry_options
    "bigint",   // sleep_ms_before_run
    "bigint",   // timeout_ms
    "boolean",  // are_children_sequential
    "text",     // input
    "text",     // executor_id
    "boolean",  // is_sleeping_task
    "text",     // sleeping_task_unique_id
    "text",     // status
    "boolean",  // is_finished
    "text",     // run_output
    "text",     // output
    "json",     // error
    "integer",  // retry_attempts
    "bigint",   // start_at
    "bigint",   // started_at
    "bigint",   // expires_at
    "bigint",   // finished_at
    "json",     // children
    "integer",  // active_children_count
    "text",     // on_children_finished_processing_status
    "bigint",   // on_children_finished_processing_expires_at
    "bigint",   // on_children_finished_processing_finished_at
    "json",     // finalize
    "text",     // close_status
    "bigint",   // close_expires_at
    "bigint",   // closed_at
    "boolean",  // needs_promise_cancellation
    "bigint",   // created_at
    "bigint",   // updated_at
    "integer",  // lease_expirations (version 2)
};

// Version 2: the crash-loop bound counts lease expirations per execution.
constexpr std::string_view kMigrateV2Column = "lease_expirations integer NOT NULL DEFAULT 0";

// Version 3: the indexes of the executor's claims hold only the rows those claims select (the
// values the executor asks for), instead of every row. Every write of a row inserted an entry
// into all 11 indexes (a changed indexed column defeats heap-only updates); with these, a row
// enters an index only while a claim can select it: per-row insert and update cost roughly
// halved (20,000-row updates: 409 -> 236 ms). Claims for other values are still answered, by a
// scan. The predicates name the values as literals, as the statements do (see claim_literal):
// PostgreSQL uses a partial index only for a query whose WHERE implies its predicate.
constexpr std::array<std::string_view, 5> kDroppedV3Indexes{
    "status_start_at", "status_ocfp_status_acc_updated_at", "close_status_updated_at",
    "executor_id_npc_updated_at", "is_finished_close_status_updated_at"};
constexpr std::array<IndexDef, 5> kIndexesV3{{
    {"ready_start_at", "start_at", false, "status = 'ready'"},
    {"children_finished_updated_at", "updated_at", false,
     "status = 'waiting_for_children' AND on_children_finished_processing_status = 'idle' AND "
     "active_children_count = 0"},
    {"close_ready_updated_at", "updated_at", false, "close_status = 'ready'"},
    {"cancellation_executor_id_updated_at", "executor_id, updated_at", false,
     "needs_promise_cancellation"},
    {"finished_close_idle_updated_at", "updated_at", false,
     "is_finished AND close_status = 'idle'"},
}};

// A claim's status values are written into its statement as literals (so that the partial
// indexes above apply; each value gets its own prepared statement, `flags` of its key). They
// are the storage's own enum names, never caller text.
std::string claim_literal(std::string_view enum_name) { return "'" + std::string{enum_name} + "'"; }
std::string claim_literal(bool value) { return value ? "true" : "false"; }

// Columns that may be NULL (everything else is NOT NULL).
constexpr std::array<std::string_view, 21> kNullableColumns{
    "root_task_id",
    "root_execution_id",
    "parent_task_id",
    "parent_execution_id",
    "index_in_parent_children",
    "is_only_child_of_parent",
    "is_finalize_of_parent",
    "executor_id",
    "sleeping_task_unique_id",
    "run_output",
    "output",
    "error",
    "started_at",
    "expires_at",
    "finished_at",
    "children",
    "on_children_finished_processing_expires_at",
    "on_children_finished_processing_finished_at",
    "finalize",
    "close_expires_at",
    "closed_at",
};

// PostgreSQL types of the SetField values (the casts of an update's array parameters).
constexpr std::array<std::string_view, s_field_count> kSetTypes{
    "text",     // executor_id
    "text",     // status
    "text",     // run_output
    "text",     // output
    "json",     // error
    "integer",  // retry_attempts
    "bigint",   // start_at
    "bigint",   // started_at
    "bigint",   // expires_at
    "bigint",   // expires_at from base
    "json",     // children
    "integer",  // active_children_count
    "text",     // on_children_finished_processing_status
    "bigint",   // on_children_finished_processing_expires_at
    "bigint",   // on_children_finished_processing_finished_at
    "json",     // finalize
    "text",     // close_status
    "bigint",   // close_expires_at
    "bigint",   // closed_at
    "boolean",  // needs_promise_cancellation
    "boolean",  // is_finished
    "bigint",   // finished_at
    "bigint",   // updated_at
    "integer",  // lease_expirations + 1 (binds nothing)
};

constexpr std::string_view kSchemaTable = "durable_execution_schema";

std::string quote_identifier(std::string_view identifier) {
  return "\"" + std::string{identifier} + "\"";
}

// ---- statement parameters --------------------------------------------------------------------

/**
 * The parameters of one statement execution as libpq takes them: NUL-terminated texts or NULL.
 * Strings that outlive the execution are referenced, temporaries are owned here.
 */
class Params {
 public:
  void ref(const std::string& value) { values_.push_back(value.c_str()); }
  void own(std::string value) {
    owned_.push_back(std::move(value));
    values_.push_back(owned_.back().c_str());
  }
  void add(std::int64_t value) { own(std::to_string(value)); }
  void add_bool(bool value) { values_.push_back(value ? "t" : "f"); }
  void add_null() { values_.push_back(nullptr); }
  [[nodiscard]] const std::vector<const char*>& values() const noexcept { return values_; }
  [[nodiscard]] int next_index() const noexcept { return static_cast<int>(values_.size()) + 1; }

 private:
  std::deque<std::string> owned_;  // a deque: c_str() pointers stay valid as it grows
  std::vector<const char*> values_;
};

/** Appends an update's values as scalar parameters (one row's update, `$n` placeholders). */
struct ScalarBindVisitor {
  Params& params;
  void value(SetField /*f*/, std::int64_t x) { params.add(x); }
  void value(SetField /*f*/, std::string_view x) { params.own(std::string{x}); }
  void value(SetField /*f*/, const std::string& x) { params.own(x); }
  void value(SetField /*f*/, Increment /*x*/) {}
  void null(SetField /*f*/) {}
};

/** Appends one row's update values to per-field array literals (a batch of same-shape rows). */
struct ArrayBindVisitor {
  std::array<ArrayLiteral, s_field_count>& arrays;
  void value(SetField f, std::int64_t x) { arrays[f].add(x); }
  void value(SetField f, std::string_view x) { arrays[f].add(x); }
  void value(SetField f, const std::string& x) { arrays[f].add(std::string_view{x}); }
  void value(SetField /*f*/, Increment /*x*/) {}
  void null(SetField /*f*/) {}
};

/**
 * The SET clause of a scalar update: `$n` placeholders from `first` on. Expires_at from the base
 * saturates (a bigint overflow would be an error): the base parameter appears several times.
 */
std::string scalar_set_sql(const UpdateShape& shape, int& next) {
  return shape.sql([&](SetField f) {
    std::string p = "$" + std::to_string(next++);
    if (f == s_expires_at_from_base) return saturating_add_sql(p + "::bigint", "t.timeout_ms");
    return p + "::" + std::string{kSetTypes[f]};
  });
}

/** The SET clause of a batch update: values from the joined list `v` (columns `f<field>`). */
std::string array_set_sql(const UpdateShape& shape) {
  return shape.sql([](SetField f) {
    std::string col = "v.f" + std::to_string(static_cast<unsigned>(f));
    if (f == s_expires_at_from_base) return saturating_add_sql(col, "t.timeout_ms");
    return col;
  });
}

/** The `unnest(...)` argument list and column names of an update shape's value arrays. */
struct ArrayColumns {
  std::string args;     // "$3::text[], $4::bigint[]"
  std::string columns;  // ", f1, f22"
};

ArrayColumns array_columns(const UpdateShape& shape, int& next) {
  ArrayColumns out;
  for (unsigned f = 0; f < s_field_count; ++f) {
    if (((shape.set >> f) & 1U) == 0 || !binds_value(static_cast<SetField>(f))) continue;
    out.args += ", $" + std::to_string(next++) + "::" + std::string{kSetTypes[f]} + "[]";
    out.columns += ", f" + std::to_string(f);
  }
  return out;
}

// ---- reading rows ----------------------------------------------------------------------------

/** A pqxx result row's cells as the shared RowReader reads them (text format). */
struct PgCells {
  const pqxx::row& row;

  [[nodiscard]] pqxx::field at(int col) const {
    return row[static_cast<pqxx::row::size_type>(col)];
  }
  [[nodiscard]] bool is_null(int col) const { return at(col).is_null(); }
  [[nodiscard]] std::optional<std::string_view> text(int col) const {
    const auto f = at(col);
    if (f.is_null()) return std::nullopt;
    return std::string_view{f.c_str(), f.size()};
  }
  [[nodiscard]] std::optional<std::int64_t> integer(int col) const {
    const auto f = at(col);
    if (f.is_null()) return std::nullopt;
    std::int64_t v = 0;
    const char* end = f.c_str() + f.size();
    const auto [ptr, ec] = std::from_chars(f.c_str(), end, v);
    if (ec != std::errc{} || ptr != end) return std::nullopt;
    return v;
  }
  [[nodiscard]] std::optional<bool> boolean(int col) const {
    const auto f = at(col);
    if (f.is_null() || f.size() != 1) return std::nullopt;
    if (f.c_str()[0] == 't') return true;
    if (f.c_str()[0] == 'f') return false;
    return std::nullopt;
  }
};

// ---- errors ----------------------------------------------------------------------------------

/** Thrown inside an operation to retry it on a new connection (the old one is discarded). */
struct ConnectionLost {
  std::string message;
};

enum class SqlErrorKind { retry_in_place, connection, duplicate, fatal };

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

// ---- connections -----------------------------------------------------------------------------

/** One connection and the statements prepared on it; used by one call at a time. */
struct Connection {
  std::unique_ptr<pqxx::connection> conn;
  std::unordered_set<std::uint64_t> prepared;
  DecodeCache decode;
};

// The statements of the storage, the high byte of a statement key (shape and flags complete it).
enum Query : std::uint64_t {
  q_insert = 1,
  q_get_by_ids,
  q_get_by_unique_ids,
  q_get_by_parent_ids,
  q_update_by_ids,
  q_update_by_ids_returning_parent,
  q_update_by_id,
  q_decrement_parents,
  q_claim_by_status_start_at,
  q_claim_by_status_ocfp_status,
  q_claim_by_close_status,
  q_claim_by_executor_id_npc,
  q_expire_sleeping,
  q_expire_ocfp,
  q_expire_close,
  q_update_by_parent_ids,
  q_close_finished,
  q_count_ids,
  q_delete_by_id,
  q_delete_all,
  q_set_aside,
  q_set_aside_closed,
  q_expire_sleeping_exhausted,
};

// What a corrupt row is set aside as (Impl::set_aside_corrupt): failed and finished, with its
// error; out of every claim (no executor, lease or cancellation pending) but still on the close
// path (an unreadable close status becomes idle), so that its parent is told. Parameters: the
// error JSON, now (finished_at if missing), now (updated_at); then the close columns' `now` in
// the closing variant, then the id.
constexpr std::string_view kSetAsideColumns =
    "status = 'failed', is_finished = true, error = $1::json, "
    "finished_at = COALESCE(finished_at, $2::bigint), executor_id = NULL, expires_at = NULL, "
    "run_output = NULL, needs_promise_cancellation = false, "
    "on_children_finished_processing_expires_at = NULL, updated_at = $3::bigint";

// Layout: query (8 bits) | flags (8 bits) | NULL columns (24 bits) | set columns (24 bits).
static_assert(s_field_count <= 24);
std::uint64_t statement_key(Query q, UpdateShape shape = {}, std::uint64_t flags = 0) {
  return (static_cast<std::uint64_t>(q) << 56) | (flags << 48) |
         (static_cast<std::uint64_t>(shape.null) << 24) | static_cast<std::uint64_t>(shape.set);
}

std::string statement_name(std::uint64_t key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "de_";
  for (int shift = 60; shift >= 0; shift -= 4) name += kHex[(key >> shift) & 0xFU];
  return name;
}

}  // namespace

// ---- Impl ------------------------------------------------------------------------------------

struct PostgresTaskExecutionsStorage::Impl {
  std::string conninfo;  // with connect_timeout; never in a message (see redacted)
  std::string redacted;
  std::optional<std::string> password;
  PostgresStorageOptions options;
  std::string qt;           // "schema"."table"
  std::string select_list;  // t.id, t.root_task_id, ...

  mutable std::mutex pool_mutex;
  std::condition_variable pool_cv;
  std::vector<std::unique_ptr<Connection>> idle;
  std::int32_t open = 0;  // connections open or being opened, idle or in use

  mutable std::mutex sql_mutex;
  std::map<std::uint64_t, std::string> sql_by_key;  // every statement's text, made once

  // ---- LISTEN/NOTIFY ----
  std::string channel;  // one per table: "de_" + hash of schema.table
  // The notifier: one NOTIFY per burst of writes, from its own connection and thread.
  std::mutex notify_mutex;
  std::condition_variable notify_cv;
  bool notify_pending = false;
  bool notify_stop = false;
  std::thread notifier;
  std::atomic<int> notifier_pid{0};  // its backend, whose notifications the listener skips
  // The listener: subscribed callbacks, called from its thread under listeners_mutex (so an
  // unsubscribe that returns has no call running).
  std::mutex listeners_mutex;
  std::map<std::uint64_t, std::function<void()>> listeners;
  std::uint64_t next_listener_token = 1;
  std::thread listener;
  std::atomic<bool> listener_stop{false};

  sql::RateLimitedLog warning_log;

  ~Impl() {
    {
      std::lock_guard lock(notify_mutex);
      notify_stop = true;
    }
    notify_cv.notify_all();
    listener_stop.store(true);
    if (notifier.joinable()) notifier.join();
    if (listener.joinable()) listener.join();
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  Impl(Impl&&) = delete;
  Impl& operator=(Impl&&) = delete;

  /** Marks that a write may have created work for other processes: the notifier sends. */
  void work_created() {
    if (!options.notify) return;
    {
      std::lock_guard lock(notify_mutex);
      if (notify_stop) return;
      notify_pending = true;
      if (!notifier.joinable()) {
        try {
          notifier = std::thread([this] { notifier_loop(); });
        } catch (...) {
          return;  // no thread: other processes poll, as without notify
        }
      }
    }
    notify_cv.notify_one();
  }

  void notifier_loop() {
    std::unique_ptr<pqxx::connection> conn;
    for (;;) {
      {
        std::unique_lock lock(notify_mutex);
        notify_cv.wait(lock, [&] { return notify_pending || notify_stop; });
        if (notify_stop) return;
        notify_pending = false;
      }
      try {
        if (!conn) {
          conn = std::make_unique<pqxx::connection>(conninfo);
          // A notification is a hint: its commit need not wait for the WAL flush (a NOTIFY
          // assigns a transaction id, so it would otherwise cost an fsync each).
          pqxx::nontransaction setup(*conn);
          setup.exec("SET synchronous_commit = off");
          setup.commit();
          notifier_pid.store(conn->backendpid());
        }
        pqxx::nontransaction tx(*conn);
        tx.exec_params("SELECT pg_notify($1, '')", channel);
        tx.commit();
      } catch (...) {
        // The server is away: the next write tries again (other processes poll meanwhile).
        conn.reset();
        std::unique_lock lock(notify_mutex);
        notify_cv.wait_for(lock, std::chrono::milliseconds{100}, [&] { return notify_stop; });
        continue;
      }
      // At most one NOTIFY per millisecond: writes of a burst share one.
      std::unique_lock lock(notify_mutex);
      notify_cv.wait_for(lock, std::chrono::milliseconds{1}, [&] { return notify_stop; });
    }
  }

  void call_listeners() {
    std::lock_guard lock(listeners_mutex);
    for (auto& [token, callback] : listeners) {
      try {
        callback();
      } catch (...) {
        // A wake-up hint: a failing callback must not stop the others or the listener.
      }
    }
  }

  void listener_loop() {
    struct Receiver final : pqxx::notification_receiver {
      Receiver(pqxx::connection_base& c, const std::string& ch, Impl& i)
          : pqxx::notification_receiver(c, ch), impl(i) {}
      void operator()(const std::string& /*payload*/, int backend_pid) override {
        if (backend_pid != impl.notifier_pid.load()) impl.call_listeners();
      }
      Impl& impl;
    };
    std::unique_ptr<pqxx::connection> conn;
    std::unique_ptr<Receiver> receiver;
    while (!listener_stop.load()) {
      try {
        if (!conn) {
          conn = std::make_unique<pqxx::connection>(conninfo);
          receiver = std::make_unique<Receiver>(*conn, channel, *this);
          call_listeners();  // work may have been created while this was not listening
        }
        // Bounded, so a shutdown is seen within 100 ms.
        (void)conn->await_notification(0, 100'000);
      } catch (...) {
        receiver.reset();
        conn.reset();
        for (int i = 0; i < 10 && !listener_stop.load(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds{20});
        }
      }
    }
  }

  std::uint64_t subscribe(std::function<void()> callback) {
    if (!options.notify || !callback) return 0;
    std::uint64_t token = 0;
    {
      std::lock_guard lock(listeners_mutex);
      token = next_listener_token++;
      listeners.emplace(token, std::move(callback));
    }
    std::lock_guard lock(notify_mutex);  // guards starting the listener thread too
    if (!listener.joinable() && !notify_stop) {
      try {
        listener = std::thread([this] { listener_loop(); });
      } catch (...) {
        // No listener: the subscriber polls, as without notify.
      }
    }
    return token;
  }

  void unsubscribe(std::uint64_t token) noexcept {
    if (token == 0) return;
    std::lock_guard lock(listeners_mutex);
    listeners.erase(token);
  }

  Impl(std::string connection_string, PostgresStorageOptions o) : options(std::move(o)) {
    password = postgres::connection_password(connection_string);
    redacted = postgres::redact_connection_string(connection_string);
    if (!postgres::is_valid_identifier(options.schema)) {
      throw DurableExecutionError("Invalid PostgreSQL schema name '" + options.schema +
                                      "': it must match [A-Za-z_][A-Za-z0-9_]* (at most 63 bytes)",
                                  ErrorType::generic, false, false);
    }
    if (!postgres::is_valid_identifier(options.table_name) || options.table_name == kSchemaTable) {
      throw DurableExecutionError("Invalid PostgreSQL table name '" + options.table_name +
                                      "': it must match [A-Za-z_][A-Za-z0-9_]* (at most 63 "
                                      "bytes) and must not be durable_execution_schema",
                                  ErrorType::generic, false, false);
    }
    if (options.pool_size < 1 || options.max_retries < 0 || options.connect_timeout.count() < 0) {
      throw DurableExecutionError(
          "Invalid PostgreSQL storage options: pool_size must be at least 1, max_retries and "
          "connect_timeout must not be negative");
    }
    conninfo = std::move(connection_string);
    if (!postgres::has_connection_option(conninfo, "connect_timeout")) {
      const auto seconds = std::max<std::int64_t>(
          1, std::chrono::ceil<std::chrono::seconds>(options.connect_timeout).count());
      conninfo =
          postgres::with_connection_option(conninfo, "connect_timeout", std::to_string(seconds));
    }
    qt = quote_identifier(options.schema) + "." + quote_identifier(options.table_name);
    // FNV-1a of the qualified name: the same channel in every process and build.
    std::uint64_t hash = 14695981039346656037ULL;
    for (char ch : options.schema + "." + options.table_name) {
      hash = (hash ^ static_cast<unsigned char>(ch)) * 1099511628211ULL;
    }
    channel = "de_" + statement_name(hash).substr(3);
    select_list = "t.id";
    for (auto c : kColumns) {
      select_list += ", t.";
      select_list += c;
    }
    // The first connection proves the server is reachable and the credentials good.
    std::unique_ptr<Connection> first;
    try {
      first = connect();
    } catch (const ConnectionLost& e) {
      throw DurableExecutionError("Cannot connect to PostgreSQL (" + redacted + "): " + e.message,
                                  ErrorType::generic, false, false);
    }
    try {
      migrate(*first);
    } catch (const DurableExecutionError&) {
      throw;
    } catch (const std::exception& e) {
      throw DurableExecutionError(
          "PostgreSQL storage (" + redacted + ") schema setup failed: " + clean(e.what()),
          ErrorType::generic, false, false);
    }
    release(std::move(first));
    std::lock_guard lock(pool_mutex);
    open = 1;
  }

  [[nodiscard]] std::string clean(std::string message) const {
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
      message.pop_back();
    }
    return postgres::redact_secret(std::move(message), password);
  }

  // ---- connections ---------------------------------------------------------------------------

  std::unique_ptr<Connection> connect() const {
    auto c = std::make_unique<Connection>();
    try {
      c->conn = std::make_unique<pqxx::connection>(conninfo);
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

  /** An idle connection, or a new one while fewer than pool_size are open; else waits. */
  std::unique_ptr<Connection> acquire() {
    {
      std::unique_lock lock(pool_mutex);
      pool_cv.wait(lock, [&] { return !idle.empty() || open < options.pool_size; });
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
      ++open;
    }
    try {
      return connect();
    } catch (...) {
      {
        std::lock_guard lock(pool_mutex);
        --open;
      }
      pool_cv.notify_one();
      throw;
    }
  }

  void release(std::unique_ptr<Connection> c) {
    {
      std::lock_guard lock(pool_mutex);
      idle.push_back(std::move(c));
    }
    pool_cv.notify_one();
  }

  void discard(std::unique_ptr<Connection> c) noexcept {
    c.reset();  // closes it
    {
      std::lock_guard lock(pool_mutex);
      --open;
    }
    pool_cv.notify_one();
  }

  // ---- schema --------------------------------------------------------------------------------

  std::optional<std::int64_t> read_version(pqxx::transaction_base& tx) const {
    const auto exists =
        tx.exec_params("SELECT to_regclass($1) IS NOT NULL",
                       quote_identifier(options.schema) + "." + std::string{kSchemaTable});
    if (exists.empty() || !exists[0][0].as<bool>()) return std::nullopt;
    const auto r = tx.exec_params("SELECT version FROM " + quote_identifier(options.schema) + "." +
                                      std::string{kSchemaTable} + " WHERE table_name = $1",
                                  options.table_name);
    if (r.empty()) return std::nullopt;
    return r[0][0].as<std::int64_t>();
  }

  void refuse_newer_schema(std::optional<std::int64_t> version) const {
    if (version && *version > PostgresTaskExecutionsStorage::schema_version) {
      throw DurableExecutionError(
          "PostgreSQL table " + qt + " has schema version " + std::to_string(*version) +
              ", newer than the version this library supports (" +
              std::to_string(PostgresTaskExecutionsStorage::schema_version) +
              "); upgrade durable_execution to open it",
          ErrorType::generic, false, false);
    }
  }

  void migrate(Connection& c) const {
    {
      // Refuse a newer schema before anything is written (not even the schema).
      pqxx::read_transaction tx(*c.conn);
      refuse_newer_schema(read_version(tx));
      tx.commit();
    }
    pqxx::work tx(*c.conn);
    // One migration at a time per database: executors starting together do not race.
    tx.exec("SELECT pg_advisory_xact_lock(7283640195117260817)");
    tx.exec("CREATE SCHEMA IF NOT EXISTS " + quote_identifier(options.schema));
    tx.exec("CREATE TABLE IF NOT EXISTS " + quote_identifier(options.schema) + "." +
            std::string{kSchemaTable} + " (table_name text PRIMARY KEY, version integer NOT NULL)");
    auto version = read_version(tx);
    refuse_newer_schema(version);  // again, under the lock
    if (!version) {
      const auto exists = tx.exec_params("SELECT to_regclass($1) IS NOT NULL", qt);
      if (exists[0][0].as<bool>()) {
        adopt_existing_table(tx);
      } else {
        create_table_v1(tx);
      }
      create_indexes(tx, kIndexesV1);
      set_version(tx, 1);
      version = 1;
    }
    // Each later version is a step in this same transaction: a failed migration changes nothing.
    if (*version < 2) {
      // An adopted table may have the column already.
      tx.exec("ALTER TABLE " + qt + " ADD COLUMN IF NOT EXISTS " + std::string{kMigrateV2Column});
      set_version(tx, 2);
      version = 2;
    }
    if (*version < 3) {
      for (auto suffix : kDroppedV3Indexes) {
        tx.exec("DROP INDEX IF EXISTS " + quote_identifier(options.schema) + "." +
                index_name(suffix));
      }
      create_indexes(tx, kIndexesV3);
      set_version(tx, 3);
      version = 3;
    }
    tx.commit();
  }

  void set_version(pqxx::transaction_base& tx, std::int64_t version) const {
    tx.exec_params("INSERT INTO " + quote_identifier(options.schema) + "." +
                       std::string{kSchemaTable} +
                       " (table_name, version) VALUES ($1, $2) ON CONFLICT (table_name) DO "
                       "UPDATE SET version = excluded.version",
                   options.table_name, version);
  }

  void create_table_v1(pqxx::transaction_base& tx) const {
    // A bigint identity key keeps rows in insertion order for ties; execution ids are
    // time-ordered, so their unique index also grows at its right edge.
    // Version 1's columns only: later ones are added by the migration steps.
    std::string sql = "CREATE TABLE " + qt + " (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY";
    for (std::size_t i = 0; i < kColumnsV1; ++i) {
      sql += ", ";
      sql += kColumns[i];
      sql += ' ';
      sql += kColumnTypes[i];
      if (std::find(kNullableColumns.begin(), kNullableColumns.end(), kColumns[i]) ==
          kNullableColumns.end()) {
        sql += " NOT NULL";
      }
    }
    sql += ")";
    tx.exec(sql);
  }

  // A table of that name without a version row (e.g. the reference engine's drizzle schema,
  // same columns): adopt it if every column is there, refuse otherwise.
  void adopt_existing_table(pqxx::transaction_base& tx) const {
    const auto r = tx.exec_params(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND "
        "table_name = $2",
        options.schema, options.table_name);
    std::set<std::string> present;
    for (const auto& row : r) present.insert(row[0].c_str());
    for (auto c : std::span{kColumns}.first(kColumnsV1)) {
      if (present.count(std::string{c}) == 0) {
        throw DurableExecutionError("PostgreSQL table " + qt +
                                        " exists but is not a task executions table (missing "
                                        "column " +
                                        std::string{c} + ")",
                                    ErrorType::generic, false, false);
      }
    }
  }

  std::string index_name(std::string_view suffix) const {
    return quote_identifier("ix_" + options.table_name + "_" + std::string{suffix});
  }

  template <std::size_t N>
  void create_indexes(pqxx::transaction_base& tx, const std::array<IndexDef, N>& indexes) const {
    for (const auto& ix : indexes) {
      tx.exec(std::string{"CREATE "} + (ix.unique ? "UNIQUE " : "") + "INDEX IF NOT EXISTS " +
              index_name(ix.suffix) + " ON " + qt + " (" + std::string{ix.columns} + ")" +
              (ix.where.empty() ? std::string{} : " WHERE " + std::string{ix.where}));
    }
  }

  // ---- statements ----------------------------------------------------------------------------

  /** Runs the statement `key` (its SQL made by `make_sql` once per storage) on `tx`. */
  template <class F>
  pqxx::result exec(Connection& c, pqxx::transaction_base& tx, std::uint64_t key, F&& make_sql,
                    const Params& params) {
    if (c.prepared.count(key) == 0) {
      std::string sql;
      {
        std::lock_guard lock(sql_mutex);
        auto it = sql_by_key.find(key);
        if (it == sql_by_key.end()) it = sql_by_key.emplace(key, make_sql()).first;
        sql = it->second;
      }
      c.conn->prepare(statement_name(key), sql);
      c.prepared.insert(key);
    }
    return tx.exec_prepared(statement_name(key),
                            pqxx::prepare::make_dynamic_params(params.values()));
  }

  // ---- running operations --------------------------------------------------------------------

  /**
   * How an operation is run and, when its connection is lost, how its outcome is settled:
   * - read: one statement, no transaction; repeated freely.
   * - single: one guarded statement, autocommitted; a repeat cannot write an outcome twice (its
   *   guards no longer match rows it already changed; a claim whose result was lost leaves its
   *   rows to expire and be claimed again).
   * - transaction: BEGIN … COMMIT; the transaction id is read at BEGIN, and a COMMIT whose
   *   outcome is unknown is settled with txid_status() on a new connection.
   */
  enum class Mode { read, single, transaction };

  struct Ctx {
    Impl& impl;
    Connection& c;
    pqxx::transaction_base& tx;

    template <class F>
    pqxx::result exec(std::uint64_t key, F&& make_sql, const Params& params) {
      return impl.exec(c, tx, key, std::forward<F>(make_sql), params);
    }
  };

  void back_off(std::int32_t attempt) const {
    thread_local std::minstd_rand jitter{std::random_device{}()};
    const auto base = std::chrono::milliseconds{50} * (std::int64_t{1} << std::min(attempt, 5));
    const auto cap = std::min<std::chrono::milliseconds::rep>(base.count(), 1000);
    std::uniform_int_distribution<std::int64_t> dist(cap / 2, cap);
    std::this_thread::sleep_for(std::chrono::milliseconds{dist(jitter)});
  }

  [[nodiscard]] DurableExecutionError error(std::string_view operation, const std::string& what,
                                            bool retryable) const {
    return DurableExecutionError("PostgreSQL storage (" + redacted + ") " + std::string{operation} +
                                     " failed: " + clean(what),
                                 ErrorType::generic, retryable, false);
  }

  /**
   * The outcome of transaction `xid` whose COMMIT was sent but not acknowledged: true if it
   * committed, false if it aborted (or never reached the server). Asks on new connections,
   * waiting while it is still in progress (the old session may still be finishing), up to the
   * retry budget; throws a retryable error if it cannot tell.
   */
  bool committed(std::string_view operation, std::int64_t xid) {
    std::string last;
    for (std::int32_t attempt = 0; attempt <= options.max_retries; ++attempt) {
      if (attempt > 0) back_off(attempt);
      std::unique_ptr<Connection> c;
      try {
        c = acquire();
        pqxx::nontransaction tx(*c->conn);
        const auto r = tx.exec_params("SELECT txid_status($1)", xid);
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

  /**
   * Runs `body(ctx)` as `mode` says, on a pooled connection: retries transient failures on new
   * connections up to max_retries, settles unknown commits (see Mode), and translates errors.
   * `recheck` (for single statements) is asked, after a lost connection, whether the lost call
   * took effect: then its result is `fallback()`.
   */
  template <class F, class Recheck = std::nullptr_t>
  auto run(std::string_view operation, Mode mode, F&& body, Recheck&& recheck = nullptr) {
    using Result = decltype(body(std::declval<Ctx&>()));
    using Held = std::conditional_t<std::is_void_v<Result>, int, Result>;
    std::string last;
    for (std::int32_t attempt = 0;; ++attempt) {
      if (attempt > 0) {
        if (attempt > options.max_retries) {
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
      std::optional<Held> result;
      try {
        pqxx::nontransaction tx(*c->conn);
        if (mode == Mode::transaction) {
          xid = tx.exec("BEGIN; SELECT txid_current()")[0][0].as<std::int64_t>();
        }
        Ctx ctx{*this, *c, tx};
        if constexpr (std::is_void_v<Result>) {
          body(ctx);
          result = 0;
        } else {
          result = body(ctx);
        }
        if (mode == Mode::transaction) {
          commit_sent = true;
          tx.exec("COMMIT");
        }
        tx.commit();
        release(std::move(c));
        if constexpr (std::is_void_v<Result>) {
          return;
        } else {
          return std::move(*result);
        }
      } catch (const pqxx::broken_connection& e) {
        discard(std::move(c));
        last = e.what();
        // Lost at COMMIT: the transaction may have committed. Ask the server, never repeat it.
        if (mode == Mode::transaction && commit_sent && committed(operation, xid)) {
          if constexpr (std::is_void_v<Result>) {
            return;
          } else {
            return std::move(*result);
          }
        }
        if constexpr (!std::is_same_v<std::decay_t<Recheck>, std::nullptr_t>) {
          if (mode == Mode::single && recheck()) return;
        }
      } catch (const pqxx::statement_completion_unknown& e) {
        // The statement's outcome is unknown (40003): as for a connection lost at COMMIT.
        discard(std::move(c));
        last = e.what();
        if (mode == Mode::transaction && commit_sent && committed(operation, xid)) {
          if constexpr (std::is_void_v<Result>) {
            return;
          } else {
            return std::move(*result);
          }
        }
        if constexpr (!std::is_same_v<std::decay_t<Recheck>, std::nullptr_t>) {
          if (mode == Mode::single && recheck()) return;
        }
      } catch (const pqxx::transaction_rollback& e) {
        // A serialization failure or a deadlock: the server rolled the statement back; the
        // whole operation is repeated.
        last = e.what();
        rollback_or_discard(mode, std::move(c));
      } catch (const pqxx::sql_error& e) {
        const auto kind = classify(e.sqlstate());
        if (mode == Mode::transaction && kind != SqlErrorKind::connection) {
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
          throw DurableExecutionError(
              "PostgreSQL storage (" + redacted + ") " + std::string{operation} +
                  " failed: duplicate execution id or sleeping task unique id (" + clean(last) +
                  ")",
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
        throw DurableExecutionError("PostgreSQL storage (" + redacted + ") " +
                                        std::string{operation} + " failed: " + clean(e.what()),
                                    ErrorType::generic, false, true);
      }
    }
  }

  void rollback_or_discard(Mode mode, std::unique_ptr<Connection> c) noexcept {
    if (!c) return;
    if (mode != Mode::transaction) {
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

  // ---- warnings ------------------------------------------------------------------------------

  /** Logs through the sink (default: stderr), rate-limited (sql::RateLimitedLog). */
  void warn(std::string_view message) noexcept {
    try {
      warning_log.warn("PostgreSQL storage (" + redacted + "): ", message, options.log_sink);
    } catch (
        ...) {  // NOLINT(bugprone-empty-catch): building the prefix may throw; never fail a call
    }
  }

  // ---- SQL pieces ----------------------------------------------------------------------------

  std::vector<TaskExecutionRecord> read_rows(Connection& c, const pqxx::result& r) const {
    std::vector<TaskExecutionRecord> out;
    out.reserve(r.size());
    for (const auto& row : r) out.push_back(read_record(PgCells{row}, "PostgreSQL", qt, c.decode));
    return out;
  }

  std::string insert_sql() const {
    std::string sql = "INSERT INTO " + qt + " (";
    std::string args;
    for (std::size_t i = 0; i < kColumns.size(); ++i) {
      if (i > 0) {
        sql += ", ";
        args += ", ";
      }
      sql += kColumns[i];
      args += '$';
      args += std::to_string(i + 1);
      args += "::";
      args += kColumnTypes[i];
      args += "[]";
    }
    sql += ") SELECT * FROM unnest(";
    sql += args;
    sql += ')';
    return sql;
  }

  /** One multi-row INSERT of all rows: each column is one array parameter. */
  void insert_rows(Ctx& ctx, const std::vector<const TaskExecutionRecord*>& rows) {
    if (rows.empty()) return;
    struct Columns {
      std::array<ArrayLiteral, kColumns.size()> cols;
      std::size_t i = 0;
      std::string retry_text;
      const RetryOptions* retry_of_text = nullptr;
      void value(std::string_view v) { cols[i++].add(v); }
      void value(std::int64_t v) { cols[i++].add(v); }
      void null() { cols[i++].add_null(); }
      void retry_options(const RetryOptions& r) {
        if (retry_of_text == nullptr || !(*retry_of_text == r)) {
          retry_text = json_text(r);
          retry_of_text = &r;
        }
        value(retry_text);
      }
    } v;
    for (const auto* r : rows) {
      v.i = 0;
      visit_record(*r, v);
    }
    auto& cols = v.cols;
    Params params;
    for (auto& col : cols) params.own(col.take());
    (void)ctx.exec(
        statement_key(q_insert), [&] { return insert_sql(); }, params);
  }

  /** Rows whose `column` is one of `keys` (one array parameter), by that column's value. */
  std::vector<TaskExecutionRecord> select_by_keys(Ctx& ctx, Query q, std::string_view column,
                                                  const std::vector<const std::string*>& keys) {
    ArrayLiteral array;
    std::unordered_set<std::string_view> seen;
    for (const auto* k : keys) {
      if (seen.insert(*k).second) array.add(std::string_view{*k});
    }
    Params params;
    params.own(array.take());
    const auto r = ctx.exec(
        statement_key(q),
        [&] {
          return "SELECT " + select_list + " FROM " + qt + " t WHERE t." + std::string{column} +
                 " = ANY($1::text[])";
        },
        params);
    return read_rows(ctx.c, r);
  }

  struct GroupedUpdate {
    std::string execution_id;  // the updated row's id
    std::string parent_execution_id;
  };

  /**
   * One UPDATE of rows by execution id, each with its own values of one update shape and its
   * own filter values (one array parameter per column: `unnest` joined on execution_id).
   * Returns the updated rows' ids (and parent ids). Ids must be distinct.
   */
  template <class Req>
  std::vector<GroupedUpdate> update_group(Ctx& ctx, const std::vector<const Req*>& group,
                                          bool want_parent) {
    const auto& first = *group.front();
    const auto shape = shape_of(first.update, std::nullopt);
    const auto& f = first.filters;
    const std::uint64_t flags = (f.is_sleeping_task ? 1U : 0U) | (f.status ? 2U : 0U) |
                                (f.is_finished ? 4U : 0U) | (want_parent ? 8U : 0U);
    ArrayLiteral ids;
    ArrayLiteral sleeping;
    ArrayLiteral statuses;
    ArrayLiteral finished;
    std::array<ArrayLiteral, s_field_count> values;
    for (const auto* req : group) {
      ids.add(std::string_view{req->execution_id});
      if (f.is_sleeping_task) sleeping.add(b(*req->filters.is_sleeping_task));
      if (f.status) statuses.add(to_string(*req->filters.status));
      if (f.is_finished) finished.add(b(*req->filters.is_finished));
      ArrayBindVisitor v{values};
      visit_update(req->update, std::nullopt, v);
    }
    Params params;
    params.own(ids.take());
    if (f.is_sleeping_task) params.own(sleeping.take());
    if (f.status) params.own(statuses.take());
    if (f.is_finished) params.own(finished.take());
    for (unsigned k = 0; k < s_field_count; ++k) {
      if (((shape.set >> k) & 1U) != 0 && binds_value(static_cast<SetField>(k))) {
        params.own(values[k].take());
      }
    }
    const auto r = ctx.exec(
        statement_key(q_update_by_ids, shape, flags),
        [&] {
          int next = 1;
          std::string args = "$" + std::to_string(next++) + "::text[]";
          std::string cols = "eid";
          std::string where = "t.execution_id = v.eid";
          if (f.is_sleeping_task) {
            args += ", $" + std::to_string(next++) + "::boolean[]";
            cols += ", fs";
            where += " AND t.is_sleeping_task = v.fs";
          }
          if (f.status) {
            args += ", $" + std::to_string(next++) + "::text[]";
            cols += ", fst";
            where += " AND t.status = v.fst";
          }
          if (f.is_finished) {
            args += ", $" + std::to_string(next++) + "::boolean[]";
            cols += ", ff";
            where += " AND t.is_finished = v.ff";
          }
          const auto value_cols = array_columns(shape, next);
          return "UPDATE " + qt + " t SET " + array_set_sql(shape) + " FROM unnest(" + args +
                 value_cols.args + ") AS v(" + cols + value_cols.columns + ") WHERE " + where +
                 " RETURNING t.execution_id" + (want_parent ? ", t.parent_execution_id" : "");
        },
        params);
    std::vector<GroupedUpdate> out;
    out.reserve(r.size());
    for (const auto& row : r) {
      GroupedUpdate u;
      u.execution_id = row[0].c_str();
      if (want_parent && !row[1].is_null()) u.parent_execution_id = row[1].c_str();
      out.push_back(std::move(u));
    }
    return out;
  }

  /** Guarded update of one row; returns its parent id if updated (nullopt if not updated). */
  std::optional<std::string> update_one(Ctx& ctx, const std::string& execution_id,
                                        const GetByIdFilters& filters,
                                        const TaskExecutionUpdate& update) {
    const auto shape = shape_of(update, std::nullopt);
    const std::uint64_t flags = (filters.is_sleeping_task ? 1U : 0U) | (filters.status ? 2U : 0U) |
                                (filters.is_finished ? 4U : 0U);
    Params params;
    ScalarBindVisitor v{params};
    visit_update(update, std::nullopt, v);
    params.ref(execution_id);
    if (filters.is_sleeping_task) params.add_bool(*filters.is_sleeping_task);
    if (filters.status) params.own(std::string{to_string(*filters.status)});
    if (filters.is_finished) params.add_bool(*filters.is_finished);
    const auto r = ctx.exec(
        statement_key(q_update_by_id, shape, flags),
        [&] {
          int next = 1;
          std::string sql = "UPDATE " + qt + " t SET " + scalar_set_sql(shape, next);
          sql += " WHERE t.execution_id = $" + std::to_string(next++);
          if (filters.is_sleeping_task)
            sql += " AND t.is_sleeping_task = $" + std::to_string(next++);
          if (filters.status) sql += " AND t.status = $" + std::to_string(next++);
          if (filters.is_finished) sql += " AND t.is_finished = $" + std::to_string(next++);
          return sql + " RETURNING t.parent_execution_id";
        },
        params);
    if (r.empty()) return std::nullopt;
    return r[0][0].is_null() ? std::string{} : std::string{r[0][0].c_str()};
  }

  /** Decrements parents' active children counts, in execution id order (a fixed lock order). */
  void decrement_parents(
      Ctx& ctx, const std::map<std::string, std::pair<std::int64_t, Timestamp>>& decrements) {
    if (decrements.empty()) return;
    ArrayLiteral ids;
    ArrayLiteral counts;
    ArrayLiteral updated;
    for (const auto& [id, d] : decrements) {
      ids.add(std::string_view{id});
      counts.add(d.first);
      updated.add(ms(d.second));
    }
    Params params;
    params.own(ids.take());
    params.own(counts.take());
    params.own(updated.take());
    (void)ctx.exec(
        statement_key(q_decrement_parents),
        [&] {
          // The parents are locked first, in execution id order (the CTE's sort runs below its
          // row locks), so concurrent decrements of overlapping parents cannot deadlock.
          return "WITH locked AS MATERIALIZED (SELECT id, execution_id FROM " + qt +
                 " WHERE execution_id = ANY($1::text[]) ORDER BY execution_id FOR UPDATE) "
                 "UPDATE " +
                 qt +
                 " t SET active_children_count = t.active_children_count - v.d, updated_at = "
                 "v.u FROM unnest($1::text[], $2::integer[], $3::bigint[]) AS v(pid, d, u) "
                 "JOIN locked l ON l.execution_id = v.pid WHERE t.id = l.id";
        },
        params);
  }

  /**
   * Selects up to `limit` rows (`where` with `$1..$k` bound by `bind_where`, ordered by
   * `order_by`, locked with SKIP LOCKED), applies the update, and returns them with the update
   * applied (RETURNING), in selection order.
   */
  template <class BindWhere>
  std::vector<TaskExecutionRecord> claim(Ctx& ctx, Query q, std::uint64_t flags,
                                         std::string_view where, int where_params,
                                         BindWhere&& bind_where, std::string_view order_by,
                                         std::int64_t limit, const TaskExecutionUpdate& update,
                                         std::optional<Timestamp> expires_at_base = std::nullopt,
                                         bool keep_corrupt = false) {
    const auto shape = shape_of(update, expires_at_base);
    Params params;
    bind_where(params);
    params.add(limit);
    ScalarBindVisitor v{params};
    visit_update(update, expires_at_base, v);
    const auto r = ctx.exec(
        statement_key(q, shape, flags),
        [&] {
          int next = where_params + 2;
          return "WITH sel AS (SELECT id, " + std::string{order_by} + " AS k FROM " + qt +
                 " WHERE " + std::string{where} + " ORDER BY " + std::string{order_by} +
                 " LIMIT $" + std::to_string(where_params + 1) +
                 " FOR UPDATE SKIP LOCKED) UPDATE " + qt + " t SET " + scalar_set_sql(shape, next) +
                 " FROM sel WHERE t.id = sel.id AND t.id = ANY(ARRAY(SELECT id FROM sel)) "
                 "RETURNING " +
                 select_list + ", sel.k";
        },
        params);
    struct Claimed {
      std::int64_t key;
      std::int64_t id;
      std::size_t index;
    };
    std::vector<TaskExecutionRecord> rows;
    std::vector<bool> corrupt;
    rows.reserve(r.size());
    corrupt.reserve(r.size());
    std::vector<Claimed> order;
    order.reserve(r.size());
    for (std::size_t i = 0; i < r.size(); ++i) {
      const PgCells cells{r[static_cast<pqxx::result::size_type>(i)]};
      bool bad = false;
      rows.push_back(read_record(cells, "PostgreSQL", qt, ctx.c.decode, &bad));
      corrupt.push_back(bad);
      order.push_back(
          {cells.integer(static_cast<int>(c_count)).value_or(0), cells.integer(0).value_or(0), i});
    }
    std::sort(order.begin(), order.end(), [](const Claimed& a, const Claimed& b) {
      return a.key != b.key ? a.key < b.key : a.id < b.id;
    });
    std::vector<TaskExecutionRecord> out;
    out.reserve(rows.size());
    std::vector<std::string> messages;
    for (const auto& o : order) {
      if (!corrupt[o.index]) {
        out.push_back(std::move(rows[o.index]));
      } else if (set_aside_corrupt(ctx, o.id, rows[o.index], update.updated_at, keep_corrupt,
                                   messages)) {
        out.push_back(std::move(rows[o.index]));
      }
    }
    for (const auto& m : messages) warn(m);
    return out;
  }

  /**
   * Sets aside a corrupt row a claim selected: writes it `failed` with its "corrupt record" error,
   * so that no claim selects it again (the claim's own update is already applied). Returns
   * whether the claim returns it: only with `keep` (the close claim: closing a failed execution
   * is what the engine does next anyway). A row whose set-aside write fails is skipped; the
   * claim's update then stands and the row comes back after its lease (logged both ways).
   */
  bool set_aside_corrupt(Ctx& ctx, std::int64_t id, TaskExecutionRecord& record, Timestamp now,
                         bool keep, std::vector<std::string>& messages) {
    const std::string message = record.error ? record.error->message : std::string{};
    // Without a readable execution id nothing can close the row later (the engine addresses
    // rows by id): the close claim then closes it here.
    const bool close_here = keep && record.execution_id.empty();
    Params params;
    params.own(json_text(*record.error));
    params.add(ms(now));
    params.add(ms(now));
    if (close_here) params.add(ms(now));
    params.add(id);
    try {
      (void)ctx.exec(
          statement_key(close_here ? q_set_aside_closed : q_set_aside),
          [&] {
            return "UPDATE " + qt + " SET " + std::string{kSetAsideColumns} +
                   (close_here ? ", close_status = 'closed', closed_at = $4::bigint, "
                                 "close_expires_at = NULL WHERE id = $5::bigint"
                               : ", close_status = CASE WHEN close_status IN ('idle', 'ready', "
                                 "'closing', 'closed') THEN close_status ELSE 'idle' END WHERE "
                                 "id = $4::bigint");
          },
          params);
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::statement_completion_unknown&) {
      throw;
    } catch (const pqxx::sql_error& e) {
      if (classify(e.sqlstate()) == SqlErrorKind::connection) throw;
      messages.push_back("could not set aside a corrupt execution (" + clean(e.what()) +
                         "); skipped: " + message);
      return false;
    }
    messages.push_back(std::string{"set aside a corrupt execution as failed"} +
                       (close_here ? " and closed" : "") + ": " + message);
    if (!keep || close_here) return false;
    record.executor_id.reset();
    record.updated_at = now;
    return true;
  }

  /** Like claim(), returning only the number of rows updated. */
  template <class BindWhere>
  std::int64_t update_selected(Ctx& ctx, Query q, std::string_view where, int where_params,
                               BindWhere&& bind_where, std::string_view order_by,
                               std::int64_t limit, const TaskExecutionUpdate& update) {
    const auto shape = shape_of(update, std::nullopt);
    Params params;
    bind_where(params);
    params.add(limit);
    ScalarBindVisitor v{params};
    visit_update(update, std::nullopt, v);
    const auto r = ctx.exec(
        statement_key(q, shape),
        [&] {
          int next = where_params + 2;
          return "WITH sel AS (SELECT id FROM " + qt + " WHERE " + std::string{where} +
                 " ORDER BY " + std::string{order_by} + " LIMIT $" +
                 std::to_string(where_params + 1) + " FOR UPDATE SKIP LOCKED) UPDATE " + qt +
                 " t SET " + scalar_set_sql(shape, next) +
                 " FROM sel WHERE t.id = sel.id AND t.id = ANY(ARRAY(SELECT id FROM sel))";
        },
        params);
    return static_cast<std::int64_t>(r.affected_rows());
  }
};

// ---- public methods --------------------------------------------------------------------------

PostgresTaskExecutionsStorage::PostgresTaskExecutionsStorage(std::string connection_string,
                                                             PostgresStorageOptions options)
    : impl_(std::make_unique<Impl>(std::move(connection_string), std::move(options))) {}

PostgresTaskExecutionsStorage::~PostgresTaskExecutionsStorage() = default;

const std::string& PostgresTaskExecutionsStorage::redacted_connection_string() const noexcept {
  return impl_->redacted;
}
const std::string& PostgresTaskExecutionsStorage::schema() const noexcept {
  return impl_->options.schema;
}
const std::string& PostgresTaskExecutionsStorage::table_name() const noexcept {
  return impl_->options.table_name;
}

std::vector<std::string> PostgresTaskExecutionsStorage::prepared_statement_sql() const {
  std::lock_guard lock(impl_->sql_mutex);
  std::vector<std::string> out;
  out.reserve(impl_->sql_by_key.size());
  for (const auto& [key, sql] : impl_->sql_by_key) out.push_back(sql);
  return out;
}

std::int32_t PostgresTaskExecutionsStorage::open_connections() const {
  std::lock_guard lock(impl_->pool_mutex);
  return impl_->open;
}

void PostgresTaskExecutionsStorage::insert_many(
    const std::vector<TaskExecutionRecord>& executions) {
  if (executions.empty()) return;
  std::vector<const TaskExecutionRecord*> rows;
  rows.reserve(executions.size());
  for (const auto& r : executions) rows.push_back(&r);
  using Mode = Impl::Mode;
  impl_->run(
      "insert_many", Mode::single, [&](Impl::Ctx& ctx) { impl_->insert_rows(ctx, rows); },
      // A lost connection: the insert is all or nothing, so its first row tells.
      [&] {
        return impl_->run("insert_many (re-check)", Mode::read, [&](Impl::Ctx& ctx) {
          return !impl_
                      ->select_by_keys(ctx, q_get_by_ids, "execution_id",
                                       {&executions.front().execution_id})
                      .empty();
        });
      });
  impl_->work_created();
}

std::vector<std::optional<TaskExecutionRecord>> PostgresTaskExecutionsStorage::get_many_by_id(
    const std::vector<GetByIdRequest>& requests) {
  if (requests.empty()) return {};
  return impl_->run("get_many_by_id", Impl::Mode::read, [&](Impl::Ctx& ctx) {
    std::vector<const std::string*> keys;
    keys.reserve(requests.size());
    for (const auto& r : requests) keys.push_back(&r.execution_id);
    auto rows = impl_->select_by_keys(ctx, q_get_by_ids, "execution_id", keys);
    std::unordered_map<std::string_view, const TaskExecutionRecord*> by_id;
    for (const auto& r : rows) by_id.emplace(r.execution_id, &r);
    std::vector<std::optional<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto it = by_id.find(req.execution_id);
      if (it != by_id.end() && req.filters.matches(*it->second)) {
        out.emplace_back(*it->second);
      } else {
        out.emplace_back(std::nullopt);
      }
    }
    return out;
  });
}

std::vector<std::optional<TaskExecutionRecord>>
PostgresTaskExecutionsStorage::get_many_by_sleeping_task_unique_id(
    const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) {
  if (requests.empty()) return {};
  return impl_->run("get_many_by_sleeping_task_unique_id", Impl::Mode::read, [&](Impl::Ctx& ctx) {
    std::vector<const std::string*> keys;
    keys.reserve(requests.size());
    for (const auto& r : requests) keys.push_back(&r.sleeping_task_unique_id);
    auto rows = impl_->select_by_keys(ctx, q_get_by_unique_ids, "sleeping_task_unique_id", keys);
    std::unordered_map<std::string_view, const TaskExecutionRecord*> by_key;
    for (const auto& r : rows) {
      if (r.sleeping_task_unique_id) by_key.emplace(*r.sleeping_task_unique_id, &r);
    }
    std::vector<std::optional<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto it = by_key.find(req.sleeping_task_unique_id);
      if (it != by_key.end()) {
        out.emplace_back(*it->second);
      } else {
        out.emplace_back(std::nullopt);
      }
    }
    return out;
  });
}

namespace {

/** Requests that can share one multi-row UPDATE: same shape and filters, distinct ids. */
template <class Req>
bool same_group(const Req& a, const Req& b) {
  return shape_of(a.update, std::nullopt).key() == shape_of(b.update, std::nullopt).key() &&
         a.filters.is_sleeping_task.has_value() == b.filters.is_sleeping_task.has_value() &&
         a.filters.status.has_value() == b.filters.status.has_value() &&
         a.filters.is_finished.has_value() == b.filters.is_finished.has_value();
}

/**
 * Splits requests into runs of consecutive requests that can share one statement (same_group,
 * distinct ids, and `alone(req)` false for all but single-request runs), in request order.
 */
template <class Req, class Alone>
std::vector<std::vector<const Req*>> consecutive_groups(const std::vector<Req>& requests,
                                                        Alone&& alone) {
  std::vector<std::vector<const Req*>> groups;
  std::unordered_set<std::string_view> ids;
  for (const auto& req : requests) {
    const bool starts_new = groups.empty() || alone(req) || alone(*groups.back().front()) ||
                            !same_group(*groups.back().front(), req) ||
                            ids.count(req.execution_id) > 0;
    if (starts_new) {
      groups.emplace_back();
      ids.clear();
    }
    groups.back().push_back(&req);
    ids.insert(req.execution_id);
  }
  return groups;
}

}  // namespace

void PostgresTaskExecutionsStorage::update_many_by_id(
    const std::vector<UpdateByIdRequest>& requests) {
  if (requests.empty()) return;
  // A request that sets active_children_count does not commute with decrements of its row made
  // by earlier requests of its group; a parent update needs its own statements: both go alone.
  const auto groups = consecutive_groups(requests, [](const UpdateByIdRequest& r) {
    return r.parent_update.has_value() ||
           (shape_of(r.update, std::nullopt).set >> s_active_children_count) & 1U;
  });
  impl_->run("update_many_by_id", Impl::Mode::transaction, [&](Impl::Ctx& ctx) {
    // Decrements of one call, applied once per parent. A decrement commutes with writes to
    // other rows, so it is applied early only before a later group writes the parent itself.
    std::map<std::string, std::pair<std::int64_t, Timestamp>> pending;
    auto flush_for = [&](const std::vector<const UpdateByIdRequest*>& group) {
      std::map<std::string, std::pair<std::int64_t, Timestamp>> now;
      for (const auto* req : group) {
        auto it = pending.find(req->execution_id);
        if (it != pending.end()) {
          now.insert(*it);
          pending.erase(it);
        }
      }
      impl_->decrement_parents(ctx, now);
    };
    for (const auto& group : groups) {
      if (!pending.empty()) flush_for(group);
      const auto& first = *group.front();
      if (first.parent_update) {
        auto parent = impl_->update_one(ctx, first.execution_id, first.filters, first.update);
        if (!parent || parent->empty()) continue;
        if (first.decrement_parent_active_children_count) {
          auto& d = pending[*parent];
          ++d.first;
          d.second = first.update.updated_at;
        }
        // Decrements first, as a request's own effects apply in order.
        auto it = pending.find(*parent);
        if (it != pending.end()) {
          impl_->decrement_parents(ctx, {*it});
          pending.erase(it);
        }
        (void)impl_->update_one(ctx, *parent, first.parent_update->filters,
                                first.parent_update->update);
        continue;
      }
      bool want_parent = false;
      for (const auto* req : group) {
        want_parent = want_parent || req->decrement_parent_active_children_count;
      }
      const auto updated = impl_->update_group(ctx, group, want_parent);
      if (!want_parent) continue;
      std::unordered_map<std::string_view, const UpdateByIdRequest*> by_id;
      for (const auto* req : group) by_id.emplace(req->execution_id, req);
      for (const auto& u : updated) {
        const auto* req = by_id.at(u.execution_id);
        if (!req->decrement_parent_active_children_count || u.parent_execution_id.empty()) {
          continue;
        }
        auto& d = pending[u.parent_execution_id];
        ++d.first;
        d.second = std::max(d.second, req->update.updated_at);
      }
    }
    impl_->decrement_parents(ctx, pending);
  });
  impl_->work_created();
}

void PostgresTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(
    const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) {
  if (requests.empty()) return;
  const auto groups =
      consecutive_groups(requests, [](const UpdateByIdAndInsertChildrenRequest&) { return false; });
  impl_->run("update_many_by_id_and_insert_children_if_updated", Impl::Mode::transaction,
             [&](Impl::Ctx& ctx) {
               for (const auto& group : groups) {
                 const auto updated = impl_->update_group(ctx, group, false);
                 if (updated.empty()) continue;
                 std::vector<const TaskExecutionRecord*> children;
                 // Children in request order (the statement returns rows in any order).
                 std::unordered_set<std::string_view> done;
                 for (const auto& u : updated) done.insert(u.execution_id);
                 for (const auto* req : group) {
                   if (done.count(req->execution_id) == 0) continue;
                   for (const auto& child : req->children_to_insert_if_updated) {
                     children.push_back(&child);
                   }
                 }
                 impl_->insert_rows(ctx, children);
               }
             });
  impl_->work_created();
}

std::vector<TaskExecutionRecord>
PostgresTaskExecutionsStorage::update_by_status_and_start_at_less_than_and_return(
    const UpdateByStatusAndStartAtLessThanRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->run(
      "update_by_status_and_start_at_less_than_and_return", Impl::Mode::single,
      [&](Impl::Ctx& ctx) {
        return impl_->claim(
            ctx, q_claim_by_status_start_at, static_cast<std::uint64_t>(request.status),
            "status = " + claim_literal(to_string(request.status)) + " AND start_at < $1", 1,
            [&](Params& p) { p.add(ms(request.start_at_less_than)); }, "start_at", request.limit,
            request.update, request.update_expires_at_with_started_at);
      });
}

std::vector<TaskExecutionRecord> PostgresTaskExecutionsStorage::
    update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
        const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->run(
      "update_by_status_and_on_children_finished_processing_status", Impl::Mode::single,
      [&](Impl::Ctx& ctx) {
        return impl_->claim(
            ctx, q_claim_by_status_ocfp_status,
            static_cast<std::uint64_t>(request.status) * 4 +
                static_cast<std::uint64_t>(request.on_children_finished_processing_status),
            "status = " + claim_literal(to_string(request.status)) +
                " AND on_children_finished_processing_status = " +
                claim_literal(to_string(request.on_children_finished_processing_status)) +
                " AND active_children_count = 0",
            0, [](Params&) {}, "updated_at", request.limit, request.update);
      });
}

std::vector<TaskExecutionRecord> PostgresTaskExecutionsStorage::update_by_close_status_and_return(
    const UpdateByCloseStatusRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->run("update_by_close_status_and_return", Impl::Mode::single, [&](Impl::Ctx& ctx) {
    return impl_->claim(
        ctx, q_claim_by_close_status, static_cast<std::uint64_t>(request.close_status),
        "close_status = " + claim_literal(to_string(request.close_status)), 0, [](Params&) {},
        "updated_at", request.limit, request.update, std::nullopt, true);
  });
}

std::int64_t PostgresTaskExecutionsStorage::update_by_is_sleeping_task_and_expires_at_less_than(
    const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  auto bind_where = [&](Params& p) {
    p.add_bool(request.is_sleeping_task);
    p.add(ms(request.expires_at_less_than));
  };
  // With the crash-loop bound, two updates: one transaction.
  const auto mode = request.max_lease_expirations ? Impl::Mode::transaction : Impl::Mode::single;
  const auto count =
      impl_->run("update_by_is_sleeping_task_and_expires_at_less_than", mode, [&](Impl::Ctx& ctx) {
        std::int64_t exhausted = 0;
        if (request.max_lease_expirations) {
          // Rows past the crash-loop bound first; they leave the selection (no longer running).
          exhausted = impl_->update_selected(
              ctx, q_expire_sleeping_exhausted,
              "is_sleeping_task = $1 AND expires_at < $2 AND lease_expirations >= $3", 3,
              [&](Params& p) {
                bind_where(p);
                p.add(std::int64_t{*request.max_lease_expirations});
              },
              "expires_at", request.limit, request.exhausted_update);
        }
        if (exhausted >= request.limit) return exhausted;
        return exhausted + impl_->update_selected(ctx, q_expire_sleeping,
                                                  "is_sleeping_task = $1 AND expires_at < $2", 2,
                                                  bind_where, "expires_at",
                                                  request.limit - exhausted, request.update);
      });
  if (count > 0) impl_->work_created();
  return count;
}

std::int64_t
PostgresTaskExecutionsStorage::update_by_on_children_finished_processing_expires_at_less_than(
    const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  const auto count =
      impl_->run("update_by_on_children_finished_processing_expires_at_less_than",
                 Impl::Mode::single, [&](Impl::Ctx& ctx) {
                   return impl_->update_selected(
                       ctx, q_expire_ocfp, "on_children_finished_processing_expires_at < $1", 1,
                       [&](Params& p) {
                         p.add(ms(request.on_children_finished_processing_expires_at_less_than));
                       },
                       "on_children_finished_processing_expires_at", request.limit, request.update);
                 });
  if (count > 0) impl_->work_created();
  return count;
}

std::int64_t PostgresTaskExecutionsStorage::update_by_close_expires_at_less_than(
    const UpdateByCloseExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  const auto count =
      impl_->run("update_by_close_expires_at_less_than", Impl::Mode::single, [&](Impl::Ctx& ctx) {
        return impl_->update_selected(
            ctx, q_expire_close, "close_expires_at < $1", 1,
            [&](Params& p) { p.add(ms(request.close_expires_at_less_than)); }, "close_expires_at",
            request.limit, request.update);
      });
  if (count > 0) impl_->work_created();
  return count;
}

std::vector<TaskExecutionRecord>
PostgresTaskExecutionsStorage::update_by_executor_id_and_needs_promise_cancellation_and_return(
    const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->run("update_by_executor_id_and_needs_promise_cancellation_and_return",
                    Impl::Mode::single, [&](Impl::Ctx& ctx) {
                      return impl_->claim(
                          ctx, q_claim_by_executor_id_npc,
                          request.needs_promise_cancellation ? 1 : 0,
                          "executor_id = $1 AND needs_promise_cancellation = " +
                              claim_literal(request.needs_promise_cancellation),
                          1, [&](Params& p) { p.ref(request.executor_id); }, "updated_at",
                          request.limit, request.update);
                    });
}

std::vector<std::vector<TaskExecutionRecord>>
PostgresTaskExecutionsStorage::get_many_by_parent_execution_id(
    const std::vector<GetByParentExecutionIdRequest>& requests) {
  if (requests.empty()) return {};
  return impl_->run("get_many_by_parent_execution_id", Impl::Mode::read, [&](Impl::Ctx& ctx) {
    std::vector<const std::string*> keys;
    keys.reserve(requests.size());
    for (const auto& r : requests) keys.push_back(&r.parent_execution_id);
    auto rows = impl_->select_by_keys(ctx, q_get_by_parent_ids, "parent_execution_id", keys);
    std::unordered_map<std::string_view, std::vector<const TaskExecutionRecord*>> by_parent;
    for (const auto& r : rows) {
      if (r.parent) by_parent[r.parent->execution_id].push_back(&r);
    }
    std::vector<std::vector<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto& children = out.emplace_back();
      auto it = by_parent.find(req.parent_execution_id);
      if (it == by_parent.end()) continue;
      children.reserve(it->second.size());
      for (const auto* r : it->second) children.push_back(*r);
    }
    return out;
  });
}

void PostgresTaskExecutionsStorage::update_many_by_parent_execution_id_and_is_finished(
    const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) {
  if (requests.empty()) return;
  // Runs of consecutive requests with one update shape and distinct parents share a statement.
  std::vector<std::vector<const UpdateByParentExecutionIdAndIsFinishedRequest*>> groups;
  std::unordered_set<std::string_view> parents;
  for (const auto& req : requests) {
    if (groups.empty() ||
        shape_of(groups.back().front()->update, std::nullopt).key() !=
            shape_of(req.update, std::nullopt).key() ||
        parents.count(req.parent_execution_id) > 0) {
      groups.emplace_back();
      parents.clear();
    }
    groups.back().push_back(&req);
    parents.insert(req.parent_execution_id);
  }
  impl_->run("update_many_by_parent_execution_id_and_is_finished",
             groups.size() == 1 ? Impl::Mode::single : Impl::Mode::transaction,
             [&](Impl::Ctx& ctx) {
               for (const auto& group : groups) {
                 const auto shape = shape_of(group.front()->update, std::nullopt);
                 ArrayLiteral ids;
                 ArrayLiteral finished;
                 std::array<ArrayLiteral, s_field_count> values;
                 for (const auto* req : group) {
                   ids.add(std::string_view{req->parent_execution_id});
                   finished.add(b(req->is_finished));
                   ArrayBindVisitor v{values};
                   visit_update(req->update, std::nullopt, v);
                 }
                 Params params;
                 params.own(ids.take());
                 params.own(finished.take());
                 for (unsigned k = 0; k < s_field_count; ++k) {
                   if (((shape.set >> k) & 1U) != 0 && binds_value(static_cast<SetField>(k))) {
                     params.own(values[k].take());
                   }
                 }
                 (void)ctx.exec(
                     statement_key(q_update_by_parent_ids, shape),
                     [&] {
                       int next = 3;
                       const auto value_cols = array_columns(shape, next);
                       return "UPDATE " + impl_->qt + " t SET " + array_set_sql(shape) +
                              " FROM unnest($1::text[], $2::boolean[]" + value_cols.args +
                              ") AS v(pid, fin" + value_cols.columns +
                              ") WHERE t.parent_execution_id = v.pid AND t.is_finished = v.fin";
                     },
                     params);
               }
             });
  impl_->work_created();
}

std::int64_t PostgresTaskExecutionsStorage::
    update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
        const UpdateAndDecrementParentActiveChildrenCountRequest& request) {
  if (request.limit <= 0) return 0;
  const auto shape = shape_of(request.update, std::nullopt);
  const auto count = impl_->run(
      "update_and_decrement_parent_active_children_count", Impl::Mode::transaction,
      [&](Impl::Ctx& ctx) {
        Params params;
        params.add(request.limit);
        ScalarBindVisitor v{params};
        visit_update(request.update, std::nullopt, v);
        const auto r = ctx.exec(
            statement_key(
                q_close_finished, shape,
                (request.is_finished ? 4U : 0U) + static_cast<std::uint64_t>(request.close_status)),
            [&] {
              int next = 2;
              return "WITH sel AS (SELECT id FROM " + impl_->qt +
                     " WHERE is_finished = " + claim_literal(request.is_finished) +
                     " AND close_status = " + claim_literal(to_string(request.close_status)) +
                     " ORDER BY updated_at LIMIT $1 FOR UPDATE SKIP LOCKED) UPDATE " + impl_->qt +
                     " t SET " + scalar_set_sql(shape, next) +
                     " FROM sel WHERE t.id = sel.id AND t.id = ANY(ARRAY(SELECT id FROM sel)) "
                     "RETURNING t.parent_execution_id";
            },
            params);
        std::map<std::string, std::pair<std::int64_t, Timestamp>> decrements;
        for (const auto& row : r) {
          if (row[0].is_null() || row[0].size() == 0) continue;
          auto& d = decrements[row[0].c_str()];
          ++d.first;
          d.second = request.update.updated_at;
        }
        impl_->decrement_parents(ctx, decrements);
        return static_cast<std::int64_t>(r.size());
      });
  if (count > 0) impl_->work_created();
  return count;
}

void PostgresTaskExecutionsStorage::delete_by_id(const DeleteByIdRequest& request) {
  impl_->run("delete_by_id", Impl::Mode::single, [&](Impl::Ctx& ctx) {
    Params params;
    params.ref(request.execution_id);
    (void)ctx.exec(
        statement_key(q_delete_by_id),
        [&] { return "DELETE FROM " + impl_->qt + " WHERE execution_id = $1"; }, params);
  });
}

std::uint64_t PostgresTaskExecutionsStorage::subscribe_to_external_work(
    std::function<void()> on_external_work) {
  return impl_->subscribe(std::move(on_external_work));
}

void PostgresTaskExecutionsStorage::unsubscribe_from_external_work(std::uint64_t token) noexcept {
  impl_->unsubscribe(token);
}

void PostgresTaskExecutionsStorage::delete_all() {
  impl_->run("delete_all", Impl::Mode::single, [&](Impl::Ctx& ctx) {
    (void)ctx.exec(
        statement_key(q_delete_all), [&] { return "DELETE FROM " + impl_->qt; }, Params{});
  });
}

}  // namespace durable_execution
