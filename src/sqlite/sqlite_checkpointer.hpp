#pragma once

// WAL checkpoints of the SQLite backend. SQLite's automatic checkpoint runs inside the COMMIT
// that takes the WAL past its threshold, on the committing connection: with one writer
// connection per storage, every other write waited for it (pages copied back into the database,
// and the fsyncs of synchronous=NORMAL). The writer's WAL hook hands checkpoints instead to a
// background thread with a connection of its own: a PASSIVE checkpoint runs alongside writes, and
// the next write after a complete one restarts the WAL, as before. Same threshold as SQLite's
// default. Threads: the hook runs on the writer's thread (under the writer's mutex); the
// checkpoint thread, started at the first request, runs loop(); the owner constructs and
// destroys (which joins the thread).

#include <sqlite3.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "sqlite/sqlite_connection.hpp"

namespace durable_execution::sqlite {

/** Runs the writer's WAL checkpoints on a thread of its own. */
class WalCheckpointer {
 public:
  /** Opens the checkpoint thread's connection (configured for checkpoints). */
  using OpenConnection = std::function<std::unique_ptr<Connection>()>;

  /**
   * `writer_mutex` guards the writer connection; the checkpoint thread takes it to copy the WAL's
   * tail with this process's writes paused. Both must outlive this object.
   */
  WalCheckpointer(OpenConnection open, std::mutex& writer_mutex);
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;
  WalCheckpointer(WalCheckpointer&&) = delete;
  WalCheckpointer& operator=(WalCheckpointer&&) = delete;
  /** Stops the checkpoint thread and joins it. Detach the hook first. */
  ~WalCheckpointer();

  /** Installs the WAL hook on the writer connection: its commits request checkpoints. */
  void attach(sqlite3* writer);
  /** Removes the WAL hook. */
  static void detach(sqlite3* writer) noexcept;

 private:
  static constexpr int kCheckpointPages = 1000;

  /** The writer's WAL hook (after each commit, with the WAL's size in pages). */
  static int on_wal_commit(void* self, sqlite3* db, const char* schema, int pages);
  void wal_committed(sqlite3* db, int pages) noexcept;
  void loop();

  OpenConnection open_;
  std::mutex& writer_mutex_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool requested_ = false;
  bool stop_ = false;
  std::thread thread_;    // started at the first request
  int requested_at_ = 0;  // WAL pages at the last request; the writer's mutex guards it
};

}  // namespace durable_execution::sqlite
