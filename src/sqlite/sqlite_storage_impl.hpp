#pragma once

// The state of a SqliteTaskExecutionsStorage (its Impl): the writer connection, the pool of
// reader connections, the schema, the file identity and the WAL checkpointer, composed; and
// transaction(), which runs a contract method's body on the right connection. Threads: any
// caller thread enters transaction() (writes queue on the writer's mutex, reads take a free
// reader); the checkpoint thread enters only its WalCheckpointer.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "durable_execution/sqlite/sqlite_storage.hpp"
#include "sql/rate_limited_log.hpp"
#include "sqlite/sqlite_checkpointer.hpp"
#include "sqlite/sqlite_connection.hpp"
#include "sqlite/sqlite_file_identity.hpp"
#include "sqlite/sqlite_queries.hpp"
#include "sqlite/sqlite_schema.hpp"

namespace durable_execution {

struct SqliteTaskExecutionsStorage::Impl {
  /** Validates the options, opens the file, migrates the schema, opens the readers. */
  Impl(std::string p, SqliteStorageOptions o);
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  Impl(Impl&&) = delete;
  Impl& operator=(Impl&&) = delete;
  ~Impl();

  std::string path;
  SqliteStorageOptions options;
  sqlite::BusyPolicy busy;
  sqlite::Schema schema;
  sqlite::TableQueries queries;
  sql::RateLimitedLog warning_log;
  sqlite::FileIdentity file;

  // Writes go through the one writer connection (SQLite allows one writer per file anyway);
  // reads use a small pool so they never queue behind a write that waits for another process.
  mutable std::mutex writer_mutex;
  sqlite::Connection writer;
  mutable std::mutex readers_mutex;
  mutable std::condition_variable readers_cv;
  std::vector<std::unique_ptr<sqlite::Connection>> readers;
  std::vector<sqlite::Connection*> free_readers;

  // Last: its thread stops (and its connection closes) before anything it uses goes.
  sqlite::WalCheckpointer checkpointer;

  /** Logs through the sink (default: stderr), rate-limited (sql::RateLimitedLog). */
  void warn(std::string_view message) noexcept;

  /**
   * Runs `body(connection)` in one transaction: on the writer with BEGIN IMMEDIATE (the write
   * lock is taken up front, so a busy database is waited for at BEGIN, never half-way and never
   * with a stale read snapshot), or on a pooled reader with a deferred BEGIN (one consistent
   * snapshot for all the reads of the call). Retries busy failures; translates SQLite errors.
   */
  template <class F>
  auto transaction(bool write, std::string_view operation, F&& body) {
    file.check();
    if (!write && !readers.empty()) {
      struct Release {
        Impl& impl;
        sqlite::Connection* c;
        ~Release() { impl.release_reader(c); }
      } release{*this, acquire_reader()};
      return sqlite::run_transaction(*release.c, false, busy, operation, body);
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
      sqlite::Connection& c;
      std::vector<std::string>& into;
      ~Take() { into.swap(c.warnings); }
    } take{writer, log.messages};
    return sqlite::run_transaction(writer, write, busy, operation, body);
  }

  /** The text of every statement prepared on the writer and on the (idle) readers. */
  [[nodiscard]] std::vector<std::string> prepared_statement_sql() const;

 private:
  void connect(sqlite::Connection& c) const;
  /** A second connection must see the table the writer just created or found. */
  void refuse_unshared_database() const;
  sqlite::Connection* acquire_reader();
  void release_reader(sqlite::Connection* c) noexcept;
};

}  // namespace durable_execution
