#pragma once

// File identity checks of the SQLite backend: at open, refuse databases that other connections
// could not share (in-memory, temporary, VFSs without files), and record which file was opened;
// later, notice when that file is deleted or replaced under the open connections. Threads: the
// opening thread calls resolve() and record(); any caller thread calls check() (lock-free but for
// the rare failure, when a mutex guards the reason).

#include <sqlite3.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "durable_execution/errors.hpp"

namespace durable_execution::sqlite {

/** Throws the non-retryable error that refuses the database at `path`, saying `why`. */
[[noreturn]] void refuse_database(const std::string& path, const std::string& why);

/** The identity of the database file a storage opened, checked on every call. */
class FileIdentity {
 public:
  /** `path` as the user gave it; `warn` logs (once) that the file is gone. */
  FileIdentity(std::string path, std::function<void(std::string_view)> warn);

  /**
   * Takes the file name SQLite resolved for the first connection, `writer`; refuses `:memory:`,
   * `""` (a temporary database), `mode=memory` URIs and VFSs without files: each connection of
   * this storage (and every other process) would see a database of its own.
   */
  void resolve(sqlite3* writer);

  /** The database file (absolute), as SQLite resolved it. */
  [[nodiscard]] const std::string& file_name() const noexcept { return file_name_; }
  /** What connections open: the resolved file (a later chdir() cannot move them), or the URI. */
  [[nodiscard]] const std::string& connect_path() const noexcept {
    return connect_path_.empty() ? path_ : connect_path_;
  }

  /** After the schema is in place: the file must exist on disk. Records its identity. */
  void record();

  /**
   * Whether the database file is still the one this storage opened. Deleting or replacing the
   * file under open connections goes unseen by SQLite: writes would go on into the deleted file
   * and be lost, and a restart would redo everything. Checked (one stat call) at most every
   * kCheckInterval; once the file is found gone, every call fails (non-retryable).
   */
  void check();

 private:
  static constexpr std::chrono::milliseconds kCheckInterval{10};

  [[nodiscard]] DurableExecutionError gone_error() const;

  std::string path_;
  std::function<void(std::string_view)> warn_;
  std::string file_name_;
  std::string connect_path_;
  dev_t device_{};
  ino_t inode_{};
  std::atomic<std::int64_t> next_check_{0};
  std::atomic<bool> gone_{false};
  mutable std::mutex gone_mutex_;
  std::string gone_reason_;
};

}  // namespace durable_execution::sqlite
