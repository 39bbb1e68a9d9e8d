// WAL checkpoints of the SQLite backend (sqlite_checkpointer.hpp). wal_committed() runs on the
// writer's thread; loop() on the checkpoint thread.

#include "sqlite/sqlite_checkpointer.hpp"

#include <utility>

namespace durable_execution::sqlite {

WalCheckpointer::WalCheckpointer(OpenConnection open, std::mutex& writer_mutex)
    : open_(std::move(open)), writer_mutex_(writer_mutex) {}

WalCheckpointer::~WalCheckpointer() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void WalCheckpointer::attach(sqlite3* writer) {
  sqlite3_wal_hook(writer, &WalCheckpointer::on_wal_commit, this);
}

void WalCheckpointer::detach(sqlite3* writer) noexcept {
  sqlite3_wal_hook(writer, nullptr, nullptr);
}

int WalCheckpointer::on_wal_commit(void* self, sqlite3* db, const char* /*schema*/, int pages) {
  static_cast<WalCheckpointer*>(self)->wal_committed(db, pages);
  return SQLITE_OK;
}

void WalCheckpointer::wal_committed(sqlite3* db, int pages) noexcept {
  if (pages < requested_at_) requested_at_ = 0;  // the WAL was restarted
  if (pages < requested_at_ + kCheckpointPages) return;
  requested_at_ = pages;
  try {
    {
      std::lock_guard lock(mutex_);
      requested_ = true;
      if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    }
    cv_.notify_one();
  } catch (...) {
    // No thread: checkpoint here, as SQLite's own hook would.
    (void)sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
}

void WalCheckpointer::loop() {
  std::unique_ptr<Connection> c;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return requested_ || stop_; });
      if (stop_) return;
      requested_ = false;
    }
    try {
      if (!c) c = open_();
      // Busy (another process checkpointing) or any failure: the next request tries again.
      const int rc = sqlite3_wal_checkpoint_v2(c->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                               nullptr, nullptr);
      if (rc == SQLITE_OK) {
        // Writes went on meanwhile. A WAL restarts only once every frame is copied, so copy
        // the (short) tail with this process's writes paused; unbounded WAL growth otherwise.
        std::lock_guard lock(writer_mutex_);
        (void)sqlite3_wal_checkpoint_v2(c->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                        nullptr);
      }
    } catch (...) {
      c.reset();
    }
  }
}

}  // namespace durable_execution::sqlite
