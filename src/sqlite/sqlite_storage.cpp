#include "durable_execution/sqlite/sqlite_storage.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>

#include "durable_execution/detail/saturating_time.hpp"
#include "durable_execution/errors.hpp"
#include "sql/rate_limited_log.hpp"
#include "sql/sql_mapping.hpp"

namespace durable_execution {

namespace {

// The shared SQL mapping: column layout, indexes, JSON columns, update shapes.
using namespace sql;  // NOLINT(google-build-using-namespace)

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

constexpr std::string_view kSchemaTable = "durable_execution_schema";

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (auto pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
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
  std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  // sqlite_* names are reserved by SQLite; the schema table is ours.
  return lower.rfind("sqlite_", 0) != 0 && lower != kSchemaTable;
}

// Every write runs inside a transaction that is rolled back whole when any statement fails, so
// no statement needs its own rollback: OR FAIL (instead of the default ABORT) spares SQLite the
// statement journal (a savepoint per statement) that ABORT needs for multi-row statements and
// RETURNING. Errors (constraints, NOT NULL) are still raised with the same codes.
constexpr std::string_view kUpdate = "UPDATE OR FAIL ";
constexpr std::string_view kInsert = "INSERT OR FAIL INTO ";

// ---- statements ------------------------------------------------------------------------------

/**
 * A prepared statement on SQLite's C API. SQLiteCpp's Statement copies every bound string and
 * hands out a Column (a shared_ptr copy) per column read; on the engine's hot path those costs
 * were a large part of a write transaction, so the storage binds and reads through this instead.
 * Errors are thrown as SQLite::Exception, like SQLiteCpp's, so one translation covers both.
 */
class Stmt {
 public:
  Stmt(sqlite3* db, std::string sql) : db_(db), sql_(std::move(sql)) {
    const int rc = sqlite3_prepare_v3(db_, sql_.c_str(), static_cast<int>(sql_.size() + 1),
                                      SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt_);
      throw SQLite::Exception(db_, rc);
    }
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt(Stmt&&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() { sqlite3_finalize(stmt_); }

  [[nodiscard]] const std::string& sql() const noexcept { return sql_; }
  void reset() noexcept { (void)sqlite3_reset(stmt_); }

  void bind(int index, std::int64_t value) { check(sqlite3_bind_int64(stmt_, index, value)); }
  /** Binds text that stays alive and unchanged until the statement is stepped to completion. */
  void bind_static(int index, std::string_view value) {
    check(
        sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8));
  }
  /** Binds a copy of the text (for temporaries). */
  void bind_copy(int index, std::string_view value) {
    check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                              SQLITE_UTF8));
  }
  void bind_null(int index) { check(sqlite3_bind_null(stmt_, index)); }

  /** One step: true if a row is available. */
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw SQLite::Exception(db_, rc);
  }
  /** Runs to completion; returns the number of rows changed. */
  std::int64_t exec() {
    while (step()) {
    }
    return sqlite3_changes64(db_);
  }

  [[nodiscard]] int type(int col) const noexcept { return sqlite3_column_type(stmt_, col); }
  [[nodiscard]] bool is_null(int col) const noexcept { return type(col) == SQLITE_NULL; }
  [[nodiscard]] std::int64_t int64(int col) const noexcept {
    return sqlite3_column_int64(stmt_, col);
  }
  [[nodiscard]] std::string_view text(int col) const noexcept {
    const auto* p = sqlite3_column_text(stmt_, col);
    const auto n = sqlite3_column_bytes(stmt_, col);
    if (p == nullptr) return {};
    return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)};
  }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK) throw SQLite::Exception(db_, rc);
  }

  sqlite3* db_;
  std::string sql_;
  sqlite3_stmt* stmt_ = nullptr;
};

// ---- values ----------------------------------------------------------------------------------

/** Binds an update's values from parameter 1 on; returns the next parameter index. */
struct BindVisitor {
  Stmt& stmt;
  int next = 1;
  void value(SetField /*f*/, std::int64_t x) { stmt.bind(next++, x); }
  void value(SetField /*f*/, std::string_view x) { stmt.bind_static(next++, x); }
  void value(SetField /*f*/, const std::string& x) { stmt.bind_copy(next++, x); }
  void value(SetField /*f*/, Increment /*x*/) {}
  void null(SetField /*f*/) {}
};

int bind_update(Stmt& stmt, const TaskExecutionUpdate& u,
                std::optional<Timestamp> expires_at_base) {
  BindVisitor v{stmt};
  visit_update(u, expires_at_base, v);
  return v.next;
}

// ---- reading rows ----------------------------------------------------------------------------

std::string_view sqlite_type_name(int type) {
  switch (type) {
    case SQLITE_INTEGER:
      return "INTEGER";
    case SQLITE_FLOAT:
      return "REAL";
    case SQLITE_TEXT:
      return "TEXT";
    case SQLITE_BLOB:
      return "BLOB";
    default:
      return "NULL";
  }
}

/** A result row's cells as the shared RowReader reads them (sql_mapping.hpp). */
struct SqliteCells {
  const Stmt& stmt;

  [[nodiscard]] bool is_null(int col) const { return stmt.is_null(col); }
  [[nodiscard]] std::optional<std::string_view> text(int col) const {
    if (stmt.type(col) != SQLITE_TEXT) return std::nullopt;
    return stmt.text(col);
  }
  [[nodiscard]] std::optional<std::int64_t> integer(int col) const {
    if (stmt.type(col) != SQLITE_INTEGER) return std::nullopt;
    return stmt.int64(col);
  }
  [[nodiscard]] std::string_view type_name(int col) const {
    return sqlite_type_name(stmt.type(col));
  }
};

/**
 * Reads the current row of `stmt` (the rowid in column 0, then kColumns). Never throws for what
 * the row holds: a damaged row reads as a failed record (mark_corrupt) and sets `*corrupt`.
 */
TaskExecutionRecord read_record(const Stmt& stmt, const std::string& table, DecodeCache& cache,
                                bool* corrupt = nullptr) {
  return sql::read_record(SqliteCells{stmt}, "SQLite", table, cache, corrupt);
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

// The statements of the storage, the high byte of a statement cache key. Statements whose text
// depends on an update's shape or a request's filters add those bits (cache_key()).
enum Query : std::uint64_t {
  q_insert = 1,
  q_get_by_id,
  q_get_by_sleeping_task_unique_id,
  q_get_by_parent_execution_id,
  q_update_by_id,
  q_decrement_parent,
  q_parent_of,
  q_select_by_status_start_at,
  q_update_by_status_start_at,
  q_claim_by_status_start_at,
  q_select_by_status_ocfp_status,
  q_update_by_status_ocfp_status,
  q_select_by_close_status,
  q_update_by_close_status,
  q_select_by_executor_id_npc,
  q_update_by_executor_id_npc,
  q_update_by_is_sleeping_task_expires_at,
  q_update_exhausted_by_is_sleeping_task_expires_at,
  q_update_by_ocfp_expires_at,
  q_update_by_close_expires_at,
  q_update_by_parent_execution_id_is_finished,
  q_select_by_is_finished_close_status,
  q_update_by_is_finished_close_status,
  q_delete_by_id,
  q_delete_all,
  q_set_aside,
  q_set_aside_closed,
};

// What a corrupt row is set aside as (set_aside_corrupt): failed and finished, with its error;
// out of every claim (no executor, lease or cancellation pending) but still on the close path
// (an unreadable close status becomes idle), so that its parent is told. Parameters: the error
// JSON, now (finished_at if unreadable), now (updated_at).
constexpr std::string_view kSetAsideColumns =
    "status = 'failed', is_finished = 1, error = ?, "
    "finished_at = CASE WHEN typeof(finished_at) = 'integer' THEN finished_at ELSE ? END, "
    "executor_id = NULL, expires_at = NULL, run_output = NULL, needs_promise_cancellation = 0, "
    "on_children_finished_processing_expires_at = NULL, "
    "close_status = CASE WHEN close_status IN ('idle', 'ready', 'closing', 'closed') "
    "THEN close_status ELSE 'idle' END, "
    "close_expires_at = CASE WHEN typeof(close_expires_at) = 'integer' THEN close_expires_at "
    "ELSE NULL END, "
    "updated_at = ?";

// Layout: query (8 bits) | flags (8 bits) | NULL columns (24 bits) | set columns (24 bits).
static_assert(s_field_count <= 24);
std::uint64_t cache_key(Query q, UpdateShape shape = {}, std::uint64_t flags = 0) {
  return (static_cast<std::uint64_t>(q) << 56) | (flags << 48) |
         (static_cast<std::uint64_t>(shape.null) << 24) | static_cast<std::uint64_t>(shape.set);
}

/** One SQLite connection and its prepared statements; used by one thread at a time. */
struct Connection {
  std::unique_ptr<SQLite::Database> db;  // declared first: statements are finalized before close
  std::unordered_map<std::uint64_t, std::unique_ptr<Stmt>> statements;
  // Transaction control, prepared once (not in `statements`: they are not queries).
  std::unique_ptr<Stmt> begin_deferred;
  std::unique_ptr<Stmt> begin_immediate;
  std::unique_ptr<Stmt> commit;
  DecodeCache decode;
  // Messages of the current transaction (corrupt rows set aside), logged once it is over and
  // the connection's mutex released: the sink is user code.
  std::vector<std::string> warnings;
  // The JSON text of the retry options last inserted: the rows of a batch usually share them.
  std::optional<RetryOptions> encoded_retry_options;
  std::string encoded_retry_options_text;

  /** The cached statement for `key` (prepared from `make_sql()` on first use), reset. */
  template <class F>
  Stmt& statement(std::uint64_t key, F&& make_sql) {
    auto it = statements.find(key);
    if (it == statements.end()) {
      it = statements.emplace(key, std::make_unique<Stmt>(db->getHandle(), make_sql())).first;
    } else {
      it->second->reset();
    }
    return *it->second;
  }

  static void run(std::unique_ptr<Stmt>& stmt, sqlite3* handle, const char* sql) {
    if (!stmt) stmt = std::make_unique<Stmt>(handle, sql);
    stmt->reset();
    (void)stmt->exec();
    stmt->reset();
  }
  void begin(bool immediate) {
    if (immediate) {
      run(begin_immediate, db->getHandle(), "BEGIN IMMEDIATE");
    } else {
      run(begin_deferred, db->getHandle(), "BEGIN");
    }
  }
  void commit_transaction() { run(commit, db->getHandle(), "COMMIT"); }

  const std::string& retry_options_json(const RetryOptions& options) {
    if (!encoded_retry_options || !(*encoded_retry_options == options)) {
      encoded_retry_options_text = json_text(options);
      encoded_retry_options = options;
    }
    return encoded_retry_options_text;
  }

  void reset_statements() noexcept {
    for (auto& [key, stmt] : statements) stmt->reset();
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
  std::string file_name;     // the database file (absolute), as SQLite resolved it
  std::string connect_path;  // what later connections open: file_name, or the URI as given

  // The file's identity at open time, and whether it has been found deleted or replaced.
  static constexpr std::chrono::milliseconds kFileCheckInterval{10};
  dev_t file_device{};
  ino_t file_inode{};
  std::atomic<std::int64_t> next_file_check{0};
  std::atomic<bool> file_gone{false};
  mutable std::mutex file_gone_mutex;
  std::string file_gone_reason;

  sql::RateLimitedLog warning_log;

  // Writes go through the one writer connection (SQLite allows one writer per file anyway);
  // reads use a small pool so they never queue behind a write that waits for another process.
  mutable std::mutex writer_mutex;
  Connection writer;
  mutable std::mutex readers_mutex;
  std::condition_variable readers_cv;
  std::vector<std::unique_ptr<Connection>> readers;
  std::vector<Connection*> free_readers;

  // SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past its threshold,
  // on the committing connection: with one writer connection per storage, every other write
  // waited for it (pages copied back into the database, and the fsyncs of synchronous=NORMAL).
  // The writer's WAL hook hands checkpoints instead to a background thread with a connection of
  // its own: a PASSIVE checkpoint runs alongside writes, and the next write after a complete one
  // restarts the WAL, as before. Same threshold as SQLite's default.
  static constexpr int kCheckpointPages = 1000;
  std::mutex checkpoint_mutex;
  std::condition_variable checkpoint_cv;
  bool checkpoint_requested = false;
  bool checkpoint_stop = false;
  std::thread checkpoint_thread;    // started at the first request
  int checkpoint_requested_at = 0;  // WAL pages at the last request; writer_mutex guards it

  ~Impl() {
    if (writer.db) sqlite3_wal_hook(writer.db->getHandle(), nullptr, nullptr);
    {
      std::lock_guard lock(checkpoint_mutex);
      checkpoint_stop = true;
    }
    checkpoint_cv.notify_one();
    if (checkpoint_thread.joinable()) checkpoint_thread.join();
  }

  /** The writer's WAL hook (after each commit, with the WAL's size in pages). */
  static int on_wal_commit(void* self, sqlite3* db, const char* /*schema*/, int pages) {
    static_cast<Impl*>(self)->wal_committed(db, pages);
    return SQLITE_OK;
  }

  void wal_committed(sqlite3* db, int pages) noexcept {
    if (pages < checkpoint_requested_at) checkpoint_requested_at = 0;  // the WAL was restarted
    if (pages < checkpoint_requested_at + kCheckpointPages) return;
    checkpoint_requested_at = pages;
    try {
      {
        std::lock_guard lock(checkpoint_mutex);
        checkpoint_requested = true;
        if (!checkpoint_thread.joinable()) {
          checkpoint_thread = std::thread([this] { checkpoint_loop(); });
        }
      }
      checkpoint_cv.notify_one();
    } catch (...) {
      // No thread: checkpoint here, as SQLite's own hook would.
      (void)sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    }
  }

  void checkpoint_loop() {
    std::unique_ptr<Connection> c;
    for (;;) {
      {
        std::unique_lock lock(checkpoint_mutex);
        checkpoint_cv.wait(lock, [&] { return checkpoint_requested || checkpoint_stop; });
        if (checkpoint_stop) return;
        checkpoint_requested = false;
      }
      try {
        if (!c) {
          c = std::make_unique<Connection>();
          connect(*c);
          c->db->exec(std::string{"PRAGMA synchronous="} + synchronous_name());
        }
        // Busy (another process checkpointing) or any failure: the next request tries again.
        const int rc = sqlite3_wal_checkpoint_v2(c->db->getHandle(), nullptr,
                                                 SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        if (rc == SQLITE_OK) {
          // Writes went on meanwhile. A WAL restarts only once every frame is copied, so copy
          // the (short) tail with this process's writes paused; unbounded WAL growth otherwise.
          std::lock_guard lock(writer_mutex);
          (void)sqlite3_wal_checkpoint_v2(c->db->getHandle(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                          nullptr, nullptr);
        }
      } catch (...) {
        c.reset();
      }
    }
  }

  [[nodiscard]] const char* synchronous_name() const {
    return options.synchronous == SqliteSynchronous::off      ? "OFF"
           : options.synchronous == SqliteSynchronous::normal ? "NORMAL"
                                                              : "FULL";
  }

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
      // Before anything is written: a database no second connection can open is refused.
      refuse_private_database();
      // Refuse a newer schema before anything can change the file (not even its journal mode).
      with_busy_retries("open", [&] { refuse_newer_schema(read_version()); });
      configure(writer);
      with_busy_retries("schema migration", [&] { migrate(); });
      refuse_unshared_database();
      sqlite3_wal_hook(writer.db->getHandle(), &Impl::on_wal_commit, this);
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
    // Connections after the first open the file the first one resolved (a plain path made
    // absolute), so a later chdir() cannot send them to another file.
    c.db = std::make_unique<SQLite::Database>(
        connect_path.empty() ? path : connect_path,
        SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_URI | SQLite::OPEN_NOMUTEX,
        timeout);
  }

  // ---- file identity -------------------------------------------------------------------------

  [[noreturn]] void refuse(const std::string& why) const {
    throw DurableExecutionError("SQLite storage (" + path + ") cannot use this database: " + why,
                                ErrorType::generic, false, false);
  }

  /**
   * `:memory:`, `""` (a temporary database), `mode=memory` URIs and VFSs without files: each
   * connection of this storage (and every other process) would see a database of its own.
   */
  void refuse_private_database() {
    const char* file = sqlite3_db_filename(writer.db->getHandle(), "main");
    if (file == nullptr || *file == '\0') {
      refuse(
          "it is an in-memory or temporary database, private to one connection, and this storage "
          "opens several (and other processes could not share it); use a database file, or "
          "InMemoryTaskExecutionsStorage for an ephemeral store");
    }
    struct stat st {};
    if (::stat(file, &st) != 0 && errno != ENOENT) {
      refuse("its file " + std::string{file} + " cannot be examined: " + std::strerror(errno));
    }
    file_name = file;
    const bool is_uri = path.rfind("file:", 0) == 0;
    if (!is_uri) connect_path = file_name;
  }

  /**
   * After the schema is in place: the file must exist on disk, and a second connection must see
   * the same database (the table this one just created or found). Records the file's identity,
   * which check_file() compares against later.
   */
  void refuse_unshared_database() {
    struct stat st {};
    if (::stat(file_name.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      refuse("no database file exists at " + file_name +
             " (a VFS without files?); another connection could not open it");
    }
    file_device = st.st_dev;
    file_inode = st.st_ino;
    Connection probe;
    connect(probe);
    SQLite::Statement q(*probe.db, std::string{"SELECT version FROM "} + std::string{kSchemaTable} +
                                       " WHERE table_name = ?");
    q.bind(1, table);
    bool sees_table = false;
    try {
      sees_table = q.executeStep();
    } catch (const SQLite::Exception&) {
      sees_table = false;  // no schema table at all: another database
    }
    if (!sees_table) {
      refuse(
          "a second connection to it does not see the same database (a URI whose database "
          "is private to one connection?)");
    }
  }

  /**
   * Whether the database file is still the one this storage opened. Deleting or replacing the
   * file under open connections goes unseen by SQLite: writes would go on into the deleted file
   * and be lost, and a restart would redo everything. Checked (one stat call) at most every
   * kFileCheckInterval; once the file is found gone, every call fails (non-retryable).
   */
  void check_file() {
    if (file_gone.load(std::memory_order_acquire)) throw file_gone_error();
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto next = next_file_check.load(std::memory_order_relaxed);
    if (now < next) return;
    if (!next_file_check.compare_exchange_strong(
            next, now + std::chrono::nanoseconds{kFileCheckInterval}.count())) {
      return;  // another thread checks
    }
    struct stat st {};
    std::string problem;
    if (::stat(file_name.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) problem = "was deleted";
    } else if (st.st_dev != file_device || st.st_ino != file_inode) {
      problem = "was replaced by another file";
    }
    if (problem.empty()) return;
    {
      std::lock_guard lock(file_gone_mutex);
      file_gone_reason = problem;
    }
    if (!file_gone.exchange(true)) warn(file_gone_error().what());
    throw file_gone_error();
  }

  [[nodiscard]] DurableExecutionError file_gone_error() const {
    std::string reason;
    {
      std::lock_guard lock(file_gone_mutex);
      reason = file_gone_reason;
    }
    return DurableExecutionError(
        "SQLite storage (" + path + "): the database file " + file_name + " " + reason +
            " while this storage had it open; every call fails from now on, since writes would "
            "go to the old file and be lost. Restore the file and open a new storage",
        ErrorType::generic, false, false);
  }

  // ---- warnings ------------------------------------------------------------------------------

  /** Logs through the sink (default: stderr), rate-limited (sql::RateLimitedLog). */
  void warn(std::string_view message) noexcept {
    try {
      warning_log.warn("SQLite storage (" + path + "): ", message, options.log_sink);
    } catch (
        ...) {  // NOLINT(bugprone-empty-catch): building the prefix may throw; never fail a call
    }
  }

  void configure(Connection& c) {
    with_busy_retries("open", [&] {
      // A VFS without WAL support keeps its journal mode; locking is still correct then.
      (void)c.db->execAndGet("PRAGMA journal_mode=WAL").getString();
    });
    c.db->exec(std::string{"PRAGMA synchronous="} + synchronous_name());
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
      // Each step runs in this same transaction, so a failed migration leaves the file as it was.
      if (*version < 2) {
        // An adopted table may have the column already.
        if (!has_column("lease_expirations")) {
          db.exec(replace_all(std::string{kMigrateV2}, "{t}", quoted_table));
        }
        set_version(2);
        version = 2;
      }
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

  bool has_column(std::string_view name) {
    SQLite::Statement q(*writer.db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?");
    q.bind(1, table);
    q.bind(2, std::string{name});
    return q.executeStep();
  }

  void refuse_newer_schema(std::optional<std::int64_t> version) const {
    if (version && *version > SqliteTaskExecutionsStorage::schema_version) {
      throw DurableExecutionError("SQLite table " + table + " in " + path + " has schema version " +
                                      std::to_string(*version) +
                                      ", newer than the version this library supports (" +
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
    for (auto c : std::span{kColumns}.first(kColumnsV1)) {
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
    check_file();
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
      return run_transaction(*reader, false, operation, body);
    }
    // Destroyed in reverse order: the warnings are taken under the lock, logged after it.
    struct Log {
      Impl& impl;
      std::vector<std::string> messages;
      ~Log() {
        for (const auto& m : messages) impl.warn(m);
      }
    } log{*this, {}};
    std::lock_guard lock(writer_mutex);
    struct Take {
      Connection& c;
      std::vector<std::string>& into;
      ~Take() { into.swap(c.warnings); }
    } take{writer, log.messages};
    return run_transaction(writer, write, operation, body);
  }

  template <class F>
  auto run_transaction(Connection& c, bool immediate, std::string_view operation, F& body) {
    // Update shapes are bounded by the engine's call sites; the cap only guards misuse. Cleared
    // here, between transactions, so no statement reference is invalidated mid-call.
    if (c.statements.size() >= 512) c.statements.clear();
    using Result = decltype(body(c));
    std::optional<std::conditional_t<std::is_void_v<Result>, int, Result>> result;
    try {
      with_busy_retries(operation, [&] {
        c.warnings.clear();  // only the attempt that commits reports
        c.begin(immediate);
        try {
          if constexpr (std::is_void_v<Result>) {
            body(c);
            result = 0;
          } else {
            result = body(c);
          }
          c.reset_statements();  // release read cursors before COMMIT
          c.commit_transaction();
        } catch (...) {
          c.reset_statements();
          c.db->tryExec("ROLLBACK");
          result.reset();
          c.warnings.clear();
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
      throw DurableExecutionError(
          "SQLite storage (" + path + ") " + std::string{operation} + " failed: " + e.what(),
          ErrorType::generic, false, true);
    }
    if constexpr (!std::is_void_v<Result>) return std::move(*result);
  }

  // ---- SQL pieces ----------------------------------------------------------------------------

  std::string select_where(std::string_view where) const {
    return "SELECT " + select_list + " FROM " + quoted_table + " WHERE " + std::string{where};
  }

  std::vector<TaskExecutionRecord> read_all(Connection& c, Stmt& stmt) const {
    std::vector<TaskExecutionRecord> out;
    while (stmt.step()) out.push_back(read_record(stmt, table, c.decode));
    return out;
  }

  void insert_rows(Connection& c, const std::vector<TaskExecutionRecord>& rows) const {
    if (rows.empty()) return;
    auto& stmt = c.statement(cache_key(q_insert), [&] {
      std::string sql = std::string{kInsert} + quoted_table + " (";
      std::string params;
      for (std::size_t i = 0; i < kColumns.size(); ++i) {
        if (i > 0) {
          sql += ", ";
          params += ", ";
        }
        sql += kColumns[i];
        params += "?";
      }
      return sql + ") VALUES (" + params + ")";
    });
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (i > 0) stmt.reset();  // every parameter is rebound below
      bind_record(c, stmt, rows[i]);
      (void)stmt.exec();
    }
  }

  // Binds every column of kColumns, in order. Strings of the record are bound without a copy:
  // the record outlives the statement's execution; JSON built for the row is copied.
  static void bind_record(Connection& c, Stmt& stmt, const TaskExecutionRecord& r) {
    struct Binder {
      Connection& c;
      Stmt& stmt;
      int i = 1;
      void value(std::string_view v) { stmt.bind_static(i++, v); }
      void value(const std::string& v) { stmt.bind_copy(i++, v); }
      void value(std::int64_t v) { stmt.bind(i++, v); }
      void null() { stmt.bind_null(i++); }
      void retry_options(const RetryOptions& r) {
        value(std::string_view{c.retry_options_json(r)});
      }
    } v{c, stmt};
    visit_record(r, v);
  }

  struct UpdateResult {
    bool updated = false;
    std::string parent_execution_id;  // with want_parent: the updated row's parent, or ""
  };

  /**
   * Guarded update of one row by execution id. With `want_parent`, an updated row's parent
   * execution id is looked up after the update (the row's pages are hot then; a RETURNING
   * clause costs more: SQLite buffers its rows in a temporary table per statement run).
   */
  UpdateResult update_by_id(Connection& c, const std::string& execution_id,
                            const GetByIdFilters& filters, const TaskExecutionUpdate& update,
                            bool want_parent) const {
    const auto shape = shape_of(update, std::nullopt);
    const std::uint64_t flags = (filters.is_sleeping_task ? 1U : 0U) | (filters.status ? 2U : 0U) |
                                (filters.is_finished ? 4U : 0U);
    auto& stmt = c.statement(cache_key(q_update_by_id, shape, flags), [&] {
      std::string sql =
          std::string{kUpdate} + quoted_table + " SET " + shape.sql() + " WHERE execution_id = ?";
      if (filters.is_sleeping_task) sql += " AND is_sleeping_task = ?";
      if (filters.status) sql += " AND status = ?";
      if (filters.is_finished) sql += " AND is_finished = ?";
      return sql;
    });
    int next = bind_update(stmt, update, std::nullopt);
    stmt.bind_static(next++, execution_id);
    if (filters.is_sleeping_task) stmt.bind(next++, b(*filters.is_sleeping_task));
    if (filters.status) stmt.bind_static(next++, to_string(*filters.status));
    if (filters.is_finished) stmt.bind(next++, b(*filters.is_finished));
    UpdateResult result;
    result.updated = stmt.exec() > 0;
    if (result.updated && want_parent) {
      auto& parent = c.statement(cache_key(q_parent_of), [&] {
        return "SELECT parent_execution_id FROM " + quoted_table + " WHERE execution_id = ?";
      });
      parent.bind_static(1, execution_id);
      if (parent.step() && parent.type(0) == SQLITE_TEXT) {
        result.parent_execution_id = parent.text(0);
      }
      parent.reset();
    }
    return result;
  }

  // Like the reference engine's SQL stores, a decrement also bumps the parent's updated_at.
  void decrement_active_children_count(Connection& c, const std::string& parent_id,
                                       std::int64_t count, Timestamp updated_at) const {
    auto& dec = c.statement(cache_key(q_decrement_parent), [&] {
      return std::string{kUpdate} + quoted_table +
             " SET active_children_count = active_children_count - ?, updated_at = ? WHERE "
             "execution_id = ?";
    });
    dec.bind(1, count);
    dec.bind(2, ms(updated_at));
    dec.bind_static(3, parent_id);
    (void)dec.exec();
  }

  /**
   * Parent decrements of one call, applied once per parent (one row write instead of one per
   * child). A decrement commutes with writes to other rows, so it is only applied early when a
   * later request of the same call writes the parent itself: the call's result is the same as
   * applying every decrement in request order.
   */
  struct PendingDecrements {
    struct Entry {
      std::string parent;
      std::int64_t count;
      Timestamp updated_at;  // the last decrement's, as in request order
    };
    std::vector<Entry> entries;  // a call touches few parents: a linear search

    void add(std::string parent, Timestamp updated_at) {
      for (auto& e : entries) {
        if (e.parent == parent) {
          ++e.count;
          e.updated_at = updated_at;
          return;
        }
      }
      entries.push_back({std::move(parent), 1, updated_at});
    }
    void flush_one(const Impl& im, Connection& c, const std::string& execution_id) {
      for (auto it = entries.begin(); it != entries.end(); ++it) {
        if (it->parent == execution_id) {
          im.decrement_active_children_count(c, it->parent, it->count, it->updated_at);
          entries.erase(it);
          return;
        }
      }
    }
    void flush_all(const Impl& im, Connection& c) {
      for (const auto& e : entries) {
        im.decrement_active_children_count(c, e.parent, e.count, e.updated_at);
      }
      entries.clear();
    }
  };

  /**
   * Selects up to `limit` rows (`select_q`: `where` + `order_by`, parameters bound by
   * `bind_where(stmt, first)`), applies the update to each by rowid, and returns them with the
   * update applied, in selection order.
   */
  template <class BindWhere>
  std::vector<TaskExecutionRecord> select_and_update(
      Connection& c, Query select_q, Query update_q, std::string_view where, BindWhere&& bind_where,
      std::string_view order_by, std::int64_t limit, const TaskExecutionUpdate& update,
      std::optional<Timestamp> expires_at_base = std::nullopt, bool return_corrupt = false) const {
    std::vector<std::int64_t> ids;
    std::vector<TaskExecutionRecord> rows;
    std::vector<bool> corrupt;
    {
      auto& select = c.statement(cache_key(select_q), [&] {
        return select_where(where) + " ORDER BY " + std::string{order_by} + " LIMIT ?";
      });
      const int next = bind_where(select, 1);
      select.bind(next, limit);
      while (select.step()) {
        ids.push_back(select.int64(0));
        bool bad = false;
        rows.push_back(read_record(select, table, c.decode, &bad));
        corrupt.push_back(bad);
      }
      select.reset();
    }
    if (rows.empty()) return {};
    const auto shape = shape_of(update, expires_at_base);
    auto& upd = c.statement(cache_key(update_q, shape), [&] {
      return std::string{kUpdate} + quoted_table + " SET " + shape.sql() + " WHERE id = ?";
    });
    // Bindings survive a reset: the update's values are bound once, the rowid per row.
    const int id_param = bind_update(upd, update, expires_at_base);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (i > 0) upd.reset();
      upd.bind(id_param, ids[i]);
      (void)upd.exec();
      // The returned row is the stored row: the same update, applied by the same rules.
      auto& record = rows[i];
      apply_update(record, update);
      if (expires_at_base) {
        record.expires_at = detail::saturating_add(*expires_at_base, record.timeout);
      }
    }
    upd.reset();
    set_aside_corrupt(c, ids, rows, corrupt, update.updated_at, return_corrupt);
    return rows;
  }

  /**
   * Sets aside the corrupt rows a claim selected (`corrupt[i]`): each is written `failed` with
   * its "corrupt record" error in the claim's transaction, so that no claim selects it again, and
   * dropped from `rows` unless `keep` (the close claim: closing a failed execution is what the
   * engine does next anyway). A row whose set-aside write fails is skipped; the claim's own
   * update then stands and the row comes back after its lease (rate-limited log both ways).
   */
  void set_aside_corrupt(Connection& c, const std::vector<std::int64_t>& ids,
                         std::vector<TaskExecutionRecord>& rows, const std::vector<bool>& corrupt,
                         Timestamp now, bool keep) const {
    if (std::find(corrupt.begin(), corrupt.end(), true) == corrupt.end()) return;
    std::vector<TaskExecutionRecord> kept;
    kept.reserve(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (!corrupt[i]) {
        kept.push_back(std::move(rows[i]));
        continue;
      }
      const std::string message = rows[i].error->message;
      // Without a readable execution id nothing can close the row later (the engine addresses
      // rows by id): the close claim then closes it here.
      const bool close_here = keep && rows[i].execution_id.empty();
      auto& stmt = c.statement(cache_key(close_here ? q_set_aside_closed : q_set_aside), [&] {
        return std::string{kUpdate} + quoted_table + " SET " + std::string{kSetAsideColumns} +
               (close_here ? ", close_status = 'closed', closed_at = ?, close_expires_at = NULL"
                           : "") +
               " WHERE id = ?";
      });
      try {
        const auto error = json_text(*rows[i].error);
        int p = 1;
        stmt.bind_copy(p++, error);
        stmt.bind(p++, ms(now));
        stmt.bind(p++, ms(now));
        if (close_here) stmt.bind(p++, ms(now));
        stmt.bind(p, ids[i]);
        (void)stmt.exec();
        stmt.reset();
        c.warnings.push_back(std::string{"set aside a corrupt execution as failed"} +
                             (close_here ? " and closed" : "") + ": " + message);
        if (keep && !close_here) {
          rows[i].executor_id.reset();
          rows[i].updated_at = now;
          kept.push_back(std::move(rows[i]));
        }
      } catch (const SQLite::Exception& e) {
        stmt.reset();
        c.warnings.push_back("could not set aside a corrupt execution (" + std::string{e.what()} +
                             "); skipped: " + message);
      }
    }
    rows = std::move(kept);
  }

  /**
   * The claim: one UPDATE of the rows that an indexed, ordered, limited subquery selects
   * (`status = ? AND start_at < ?` by start_at), returning the stored rows (RETURNING), sorted
   * back into selection order: (start_at, rowid) is the order of the (status, start_at) index.
   * One statement instead of a SELECT and an UPDATE per row. Only for updates that leave
   * start_at alone (the sort key must be the selection's).
   */
  template <class BindWhere>
  std::vector<TaskExecutionRecord> claim_by_start_at(Connection& c, BindWhere&& bind_where,
                                                     std::int64_t limit,
                                                     const TaskExecutionUpdate& update,
                                                     Timestamp expires_at_base) const {
    const auto shape = shape_of(update, expires_at_base);
    auto& stmt = c.statement(cache_key(q_claim_by_status_start_at, shape), [&] {
      return std::string{kUpdate} + quoted_table + " SET " + shape.sql() +
             " WHERE id IN (SELECT id FROM " + quoted_table +
             " WHERE status = ? AND start_at < ? ORDER BY start_at LIMIT ?) RETURNING " +
             select_list;
    });
    int next = bind_update(stmt, update, expires_at_base);
    next = bind_where(stmt, next);
    stmt.bind(next, limit);
    std::vector<std::int64_t> ids;
    std::vector<TaskExecutionRecord> rows;
    std::vector<bool> corrupt;
    while (stmt.step()) {
      ids.push_back(stmt.int64(0));
      bool bad = false;
      rows.push_back(read_record(stmt, table, c.decode, &bad));
      corrupt.push_back(bad);
    }
    stmt.reset();
    if (std::find(corrupt.begin(), corrupt.end(), true) != corrupt.end()) {
      set_aside_corrupt(c, ids, rows, corrupt, update.updated_at, false);
      std::vector<std::int64_t> kept_ids;
      for (std::size_t i = 0; i < ids.size(); ++i) {
        if (!corrupt[i]) kept_ids.push_back(ids[i]);
      }
      ids = std::move(kept_ids);
    }
    std::vector<std::size_t> order(rows.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return rows[a].start_at != rows[b].start_at ? rows[a].start_at < rows[b].start_at
                                                  : ids[a] < ids[b];
    });
    std::vector<TaskExecutionRecord> out;
    out.reserve(rows.size());
    for (auto i : order) out.push_back(std::move(rows[i]));
    return out;
  }

  /** One UPDATE of the rows selected by an indexed, ordered, limited subquery; returns count. */
  template <class BindWhere>
  std::int64_t update_selected(Connection& c, Query q, std::string_view where,
                               BindWhere&& bind_where, std::string_view order_by,
                               std::int64_t limit, const TaskExecutionUpdate& update) const {
    const auto shape = shape_of(update, std::nullopt);
    auto& stmt = c.statement(cache_key(q, shape), [&] {
      return std::string{kUpdate} + quoted_table + " SET " + shape.sql() +
             " WHERE id IN (SELECT id FROM " + quoted_table + " WHERE " + std::string{where} +
             " ORDER BY " + std::string{order_by} + " LIMIT ?)";
    });
    int next = bind_update(stmt, update, std::nullopt);
    next = bind_where(stmt, next);
    stmt.bind(next, limit);
    return stmt.exec();
  }
};

// ---- public methods --------------------------------------------------------------------------

SqliteTaskExecutionsStorage::SqliteTaskExecutionsStorage(std::string path,
                                                         SqliteStorageOptions options)
    : impl_(std::make_unique<Impl>(std::move(path), std::move(options))) {}

SqliteTaskExecutionsStorage::~SqliteTaskExecutionsStorage() = default;

const std::string& SqliteTaskExecutionsStorage::path() const noexcept { return impl_->path; }
const std::string& SqliteTaskExecutionsStorage::table_name() const noexcept { return impl_->table; }

std::vector<std::string> SqliteTaskExecutionsStorage::prepared_statement_sql() const {
  std::vector<std::string> out;
  {
    std::lock_guard lock(impl_->writer_mutex);
    for (const auto& [key, stmt] : impl_->writer.statements) out.push_back(stmt->sql());
  }
  {
    // Only idle readers: a reader in use belongs to its thread until released.
    std::unique_lock lock(impl_->readers_mutex);
    impl_->readers_cv.wait(lock,
                           [&] { return impl_->free_readers.size() == impl_->readers.size(); });
    for (const auto& reader : impl_->readers) {
      for (const auto& [key, stmt] : reader->statements) out.push_back(stmt->sql());
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
  return impl_->transaction(false, "get_many_by_id", [&](Connection& c) {
    std::vector<std::optional<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto& stmt = c.statement(cache_key(q_get_by_id),
                               [&] { return impl_->select_where("execution_id = ?"); });
      stmt.bind_static(1, req.execution_id);
      std::optional<TaskExecutionRecord> found;
      if (stmt.step()) {
        auto record = read_record(stmt, impl_->table, c.decode);
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
  return impl_->transaction(false, "get_many_by_sleeping_task_unique_id", [&](Connection& c) {
    std::vector<std::optional<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto& stmt = c.statement(cache_key(q_get_by_sleeping_task_unique_id),
                               [&] { return impl_->select_where("sleeping_task_unique_id = ?"); });
      stmt.bind_static(1, req.sleeping_task_unique_id);
      std::optional<TaskExecutionRecord> found;
      if (stmt.step()) found = read_record(stmt, impl_->table, c.decode);
      out.push_back(std::move(found));
    }
    return out;
  });
}

void SqliteTaskExecutionsStorage::update_many_by_id(
    const std::vector<UpdateByIdRequest>& requests) {
  if (requests.empty()) return;
  const auto& im = *impl_;
  impl_->transaction(true, "update_many_by_id", [&](Connection& c) {
    Impl::PendingDecrements decrements;
    for (const auto& req : requests) {
      if (!decrements.entries.empty()) decrements.flush_one(im, c, req.execution_id);
      auto result =
          im.update_by_id(c, req.execution_id, req.filters, req.update,
                          req.decrement_parent_active_children_count || req.parent_update);
      if (!result.updated || result.parent_execution_id.empty()) continue;
      if (req.decrement_parent_active_children_count) {
        decrements.add(result.parent_execution_id, req.update.updated_at);
      }
      if (req.parent_update) {
        // Decrements first, as a request's own effects apply in order.
        decrements.flush_one(im, c, result.parent_execution_id);
        (void)im.update_by_id(c, result.parent_execution_id, req.parent_update->filters,
                              req.parent_update->update, false);
      }
    }
    decrements.flush_all(im, c);
  });
}

void SqliteTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(
    const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) {
  if (requests.empty()) return;
  impl_->transaction(true, "update_many_by_id_and_insert_children_if_updated", [&](Connection& c) {
    for (const auto& req : requests) {
      if (impl_->update_by_id(c, req.execution_id, req.filters, req.update, false).updated) {
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
        auto bind_where = [&](Stmt& s, int i) {
          s.bind_static(i, to_string(request.status));
          s.bind(i + 1, ms(request.start_at_less_than));
          return i + 2;
        };
        if (!request.update.start_at) {
          return impl_->claim_by_start_at(c, bind_where, request.limit, request.update,
                                          request.update_expires_at_with_started_at);
        }
        return impl_->select_and_update(c, q_select_by_status_start_at, q_update_by_status_start_at,
                                        "status = ? AND start_at < ?", bind_where, "start_at",
                                        request.limit, request.update,
                                        request.update_expires_at_with_started_at);
      });
}

std::vector<TaskExecutionRecord> SqliteTaskExecutionsStorage::
    update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
        const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->transaction(
      true, "update_by_status_and_on_children_finished_processing_status", [&](Connection& c) {
        return impl_->select_and_update(
            c, q_select_by_status_ocfp_status, q_update_by_status_ocfp_status,
            "status = ? AND on_children_finished_processing_status = ? AND "
            "active_children_count = 0",
            [&](Stmt& s, int i) {
              s.bind_static(i, to_string(request.status));
              s.bind_static(i + 1, to_string(request.on_children_finished_processing_status));
              return i + 2;
            },
            "updated_at", request.limit, request.update);
      });
}

std::vector<TaskExecutionRecord> SqliteTaskExecutionsStorage::update_by_close_status_and_return(
    const UpdateByCloseStatusRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->transaction(true, "update_by_close_status_and_return", [&](Connection& c) {
    return impl_->select_and_update(
        c, q_select_by_close_status, q_update_by_close_status, "close_status = ?",
        [&](Stmt& s, int i) {
          s.bind_static(i, to_string(request.close_status));
          return i + 1;
        },
        "updated_at", request.limit, request.update, std::nullopt, true);
  });
}

std::int64_t SqliteTaskExecutionsStorage::update_by_is_sleeping_task_and_expires_at_less_than(
    const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  return impl_->transaction(
      true, "update_by_is_sleeping_task_and_expires_at_less_than", [&](Connection& c) {
        auto bind_where = [&](Stmt& s, int i) {
          s.bind(i, b(request.is_sleeping_task));
          s.bind(i + 1, ms(request.expires_at_less_than));
          return i + 2;
        };
        std::int64_t exhausted = 0;
        if (request.max_lease_expirations) {
          // Rows past the crash-loop bound first; they leave the selection (no longer running).
          exhausted = impl_->update_selected(
              c, q_update_exhausted_by_is_sleeping_task_expires_at,
              "is_sleeping_task = ? AND expires_at < ? AND lease_expirations >= ?",
              [&](Stmt& s, int i) {
                i = bind_where(s, i);
                s.bind(i, std::int64_t{*request.max_lease_expirations});
                return i + 1;
              },
              "expires_at", request.limit, request.exhausted_update);
        }
        if (exhausted >= request.limit) return exhausted;
        return exhausted + impl_->update_selected(c, q_update_by_is_sleeping_task_expires_at,
                                                  "is_sleeping_task = ? AND expires_at < ?",
                                                  bind_where, "expires_at",
                                                  request.limit - exhausted, request.update);
      });
}

std::int64_t
SqliteTaskExecutionsStorage::update_by_on_children_finished_processing_expires_at_less_than(
    const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  return impl_->transaction(
      true, "update_by_on_children_finished_processing_expires_at_less_than", [&](Connection& c) {
        return impl_->update_selected(
            c, q_update_by_ocfp_expires_at, "on_children_finished_processing_expires_at < ?",
            [&](Stmt& s, int i) {
              s.bind(i, ms(request.on_children_finished_processing_expires_at_less_than));
              return i + 1;
            },
            "on_children_finished_processing_expires_at", request.limit, request.update);
      });
}

std::int64_t SqliteTaskExecutionsStorage::update_by_close_expires_at_less_than(
    const UpdateByCloseExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  return impl_->transaction(true, "update_by_close_expires_at_less_than", [&](Connection& c) {
    return impl_->update_selected(
        c, q_update_by_close_expires_at, "close_expires_at < ?",
        [&](Stmt& s, int i) {
          s.bind(i, ms(request.close_expires_at_less_than));
          return i + 1;
        },
        "close_expires_at", request.limit, request.update);
  });
}

std::vector<TaskExecutionRecord>
SqliteTaskExecutionsStorage::update_by_executor_id_and_needs_promise_cancellation_and_return(
    const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->transaction(true, "update_by_executor_id_and_needs_promise_cancellation_and_return",
                            [&](Connection& c) {
                              return impl_->select_and_update(
                                  c, q_select_by_executor_id_npc, q_update_by_executor_id_npc,
                                  "executor_id = ? AND needs_promise_cancellation = ?",
                                  [&](Stmt& s, int i) {
                                    s.bind_static(i, request.executor_id);
                                    s.bind(i + 1, b(request.needs_promise_cancellation));
                                    return i + 2;
                                  },
                                  "updated_at", request.limit, request.update);
                            });
}

std::vector<std::vector<TaskExecutionRecord>>
SqliteTaskExecutionsStorage::get_many_by_parent_execution_id(
    const std::vector<GetByParentExecutionIdRequest>& requests) {
  if (requests.empty()) return {};
  return impl_->transaction(false, "get_many_by_parent_execution_id", [&](Connection& c) {
    std::vector<std::vector<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto& stmt = c.statement(cache_key(q_get_by_parent_execution_id),
                               [&] { return impl_->select_where("parent_execution_id = ?"); });
      stmt.bind_static(1, req.parent_execution_id);
      out.push_back(impl_->read_all(c, stmt));
    }
    return out;
  });
}

void SqliteTaskExecutionsStorage::update_many_by_parent_execution_id_and_is_finished(
    const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) {
  if (requests.empty()) return;
  const auto& im = *impl_;
  impl_->transaction(
      true, "update_many_by_parent_execution_id_and_is_finished", [&](Connection& c) {
        for (const auto& req : requests) {
          const auto shape = shape_of(req.update, std::nullopt);
          auto& stmt =
              c.statement(cache_key(q_update_by_parent_execution_id_is_finished, shape), [&] {
                return std::string{kUpdate} + im.quoted_table + " SET " + shape.sql() +
                       " WHERE parent_execution_id = ? AND is_finished = ?";
              });
          const int next = bind_update(stmt, req.update, std::nullopt);
          stmt.bind_static(next, req.parent_execution_id);
          stmt.bind(next + 1, b(req.is_finished));
          (void)stmt.exec();
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
          auto& select = c.statement(cache_key(q_select_by_is_finished_close_status), [&] {
            return "SELECT id, parent_execution_id FROM " + im.quoted_table +
                   " WHERE is_finished = ? AND close_status = ? ORDER BY updated_at LIMIT ?";
          });
          select.bind(1, b(request.is_finished));
          select.bind_static(2, to_string(request.close_status));
          select.bind(3, request.limit);
          while (select.step()) {
            ids.push_back(select.int64(0));
            if (select.type(1) == SQLITE_TEXT) {
              const auto parent_id = select.text(1);
              if (!parent_id.empty()) ++decrements[std::string{parent_id}];
            }
          }
          select.reset();
        }
        if (ids.empty()) return std::int64_t{0};
        const auto shape = shape_of(request.update, std::nullopt);
        auto& upd = c.statement(cache_key(q_update_by_is_finished_close_status, shape), [&] {
          return std::string{kUpdate} + im.quoted_table + " SET " + shape.sql() + " WHERE id = ?";
        });
        const int id_param = bind_update(upd, request.update, std::nullopt);
        for (std::size_t i = 0; i < ids.size(); ++i) {
          if (i > 0) upd.reset();
          upd.bind(id_param, ids[i]);
          (void)upd.exec();
        }
        for (const auto& [parent_id, count] : decrements) {
          im.decrement_active_children_count(c, parent_id, count, request.update.updated_at);
        }
        return static_cast<std::int64_t>(ids.size());
      });
}

void SqliteTaskExecutionsStorage::delete_by_id(const DeleteByIdRequest& request) {
  impl_->transaction(true, "delete_by_id", [&](Connection& c) {
    auto& stmt = c.statement(cache_key(q_delete_by_id), [&] {
      return "DELETE FROM " + impl_->quoted_table + " WHERE execution_id = ?";
    });
    stmt.bind_static(1, request.execution_id);
    (void)stmt.exec();
  });
}

void SqliteTaskExecutionsStorage::delete_all() {
  impl_->transaction(true, "delete_all", [&](Connection& c) {
    (void)c.statement(cache_key(q_delete_all), [&] { return "DELETE FROM " + impl_->quoted_table; })
        .exec();
  });
}

}  // namespace durable_execution
