// Opening a SQLite storage and its connection pool (sqlite_storage_impl.hpp). The constructor
// and destructor run on the owner's thread; acquire_reader()/release_reader() and warn() on any
// caller thread.

#include "sqlite/sqlite_storage_impl.hpp"

#include <algorithm>

#include "durable_execution/errors.hpp"

namespace durable_execution {

namespace {

/** Most read connections per storage: each is a file descriptor and a page cache. */
constexpr std::int32_t kMaxReadConnections = 64;

SqliteStorageOptions validated(SqliteStorageOptions options) {
  if (!sqlite::is_valid_table_name(options.table_name)) {
    throw DurableExecutionError(
        "Invalid SQLite table name '" + options.table_name +
            "': it must match [A-Za-z_][A-Za-z0-9_]{0,62}, must not start with sqlite_ and must "
            "not be durable_execution_schema (the storage's own schema table)",
        ErrorType::generic, false, false);
  }
  if (options.busy_timeout.count() < 0 || options.max_busy_retries < 0 ||
      options.read_connections < 0) {
    throw DurableExecutionError(
        "Invalid SQLite storage options: busy_timeout, max_busy_retries and read_connections "
        "must not be negative");
  }
  if (options.read_connections > kMaxReadConnections) {
    throw DurableExecutionError(
        "Invalid SQLite storage options: read_connections must be at most " +
        std::to_string(kMaxReadConnections) + " (got " + std::to_string(options.read_connections) +
        ")");
  }
  if (options.synchronous != SqliteSynchronous::off &&
      options.synchronous != SqliteSynchronous::normal &&
      options.synchronous != SqliteSynchronous::full) {
    throw DurableExecutionError(
        "Invalid SQLite storage options: synchronous must be off, normal or full");
  }
  if (options.cache_size_kib < 0) {
    throw DurableExecutionError(
        "Invalid SQLite storage options: cache_size_kib must not be "
        "negative");
  }
  return options;
}

}  // namespace

SqliteTaskExecutionsStorage::Impl::Impl(std::string p, SqliteStorageOptions o)
    : path(std::move(p)),
      options(validated(std::move(o))),
      busy{path, options.max_busy_retries},
      schema(path, options.table_name),
      queries(options.table_name),
      file(path, [this](std::string_view message) { warn(message); }),
      checkpointer(
          [this] {
            auto c = std::make_unique<sqlite::Connection>();
            connect(*c);
            sqlite::exec(c->handle(), sqlite::synchronous_pragma(options.synchronous));
            return c;
          },
          writer_mutex) {
  // Every SQLite failure at open time becomes a DurableExecutionError naming the file.
  try {
    connect(writer);
    // SQLite opens a file it may not write read-only, without an error: every write would fail.
    if (sqlite3_db_readonly(writer.handle(), "main") == 1) {
      throw DurableExecutionError("SQLite storage (" + path +
                                      ") open failed: the database is read-only (file "
                                      "permissions, an immutable file, or a mode=ro URI)",
                                  ErrorType::generic, false, false);
    }
    // Before anything is written: a database no second connection can open is refused.
    file.resolve(writer.handle());
    // Refuse a newer schema before anything can change the file (not even its journal mode).
    busy.run("open", [&] { schema.refuse_newer(schema.read_version(writer.handle())); });
    sqlite::configure(writer, options, busy);
    busy.run("schema migration", [&] { schema.migrate(writer.handle()); });
    file.record();
    refuse_unshared_database();
    checkpointer.attach(writer.handle());
    for (std::int32_t i = 0; i < options.read_connections; ++i) {
      auto reader = std::make_unique<sqlite::Connection>();
      connect(*reader);
      sqlite::configure(*reader, options, busy);
      sqlite::exec(reader->handle(), "PRAGMA query_only=1");  // a reader never writes
      free_readers.push_back(reader.get());
      readers.push_back(std::move(reader));
    }
  } catch (const SQLite::Exception& e) {
    throw sqlite::translate(e, path, "open");
  }
}

SqliteTaskExecutionsStorage::Impl::~Impl() {
  if (writer.db) sqlite::WalCheckpointer::detach(writer.handle());
}

void SqliteTaskExecutionsStorage::Impl::connect(sqlite::Connection& c) const {
  // Connections after the first open the file the first one resolved (a plain path made
  // absolute), so a later chdir() cannot send them to another file.
  sqlite::open_connection(c, file.connect_path(), options.busy_timeout);
}

void SqliteTaskExecutionsStorage::Impl::refuse_unshared_database() const {
  sqlite::Connection probe;
  connect(probe);
  bool sees_table = false;
  try {
    sees_table = schema.read_version(probe.handle()).has_value();
  } catch (const SQLite::Exception&) {
    sees_table = false;  // no schema table at all: another database
  }
  if (!sees_table) {
    sqlite::refuse_database(
        path,
        "a second connection to it does not see the same database (a URI whose database "
        "is private to one connection?)");
  }
}

void SqliteTaskExecutionsStorage::Impl::warn(std::string_view message) noexcept {
  try {
    warning_log.warn("SQLite storage (" + path + "): ", message, options.log_sink);
  } catch (...) {  // NOLINT(bugprone-empty-catch): building the prefix may throw; never fail a call
  }
}

sqlite::Connection* SqliteTaskExecutionsStorage::Impl::acquire_reader() {
  std::unique_lock lock(readers_mutex);
  readers_cv.wait(lock, [&] { return !free_readers.empty(); });
  auto* reader = free_readers.back();
  free_readers.pop_back();
  return reader;
}

void SqliteTaskExecutionsStorage::Impl::release_reader(sqlite::Connection* c) noexcept {
  {
    std::lock_guard lock(readers_mutex);
    free_readers.push_back(c);
  }
  readers_cv.notify_one();
}

std::vector<std::string> SqliteTaskExecutionsStorage::Impl::prepared_statement_sql() const {
  std::vector<std::string> out;
  {
    std::lock_guard lock(writer_mutex);
    writer.statements.append_sql(out);
  }
  {
    // Only idle readers: a reader in use belongs to its thread until released.
    std::unique_lock lock(readers_mutex);
    readers_cv.wait(lock, [&] { return free_readers.size() == readers.size(); });
    for (const auto& reader : readers) reader->statements.append_sql(out);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace durable_execution
