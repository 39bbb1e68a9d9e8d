// File identity checks of the SQLite backend (sqlite_file_identity.hpp). resolve() and record()
// run on the opening thread; check() on every caller thread, before each transaction.

#include "sqlite/sqlite_file_identity.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace durable_execution::sqlite {

void refuse_database(const std::string& path, const std::string& why) {
  throw DurableExecutionError("SQLite storage (" + path + ") cannot use this database: " + why,
                              ErrorType::generic, false, false);
}

FileIdentity::FileIdentity(std::string path, std::function<void(std::string_view)> warn)
    : path_(std::move(path)), warn_(std::move(warn)) {}

void FileIdentity::resolve(sqlite3* writer) {
  const char* file = sqlite3_db_filename(writer, "main");
  if (file == nullptr || *file == '\0') {
    refuse_database(
        path_,
        "it is an in-memory or temporary database, private to one connection, and this storage "
        "opens several (and other processes could not share it); use a database file, or "
        "InMemoryTaskExecutionsStorage for an ephemeral store");
  }
  struct stat st {};
  if (::stat(file, &st) != 0 && errno != ENOENT) {
    refuse_database(
        path_, "its file " + std::string{file} + " cannot be examined: " + std::strerror(errno));
  }
  file_name_ = file;
  const bool is_uri = path_.rfind("file:", 0) == 0;
  if (!is_uri) connect_path_ = file_name_;
}

void FileIdentity::record() {
  struct stat st {};
  if (::stat(file_name_.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    refuse_database(path_, "no database file exists at " + file_name_ +
                               " (a VFS without files?); another connection could not open it");
  }
  device_ = st.st_dev;
  inode_ = st.st_ino;
}

void FileIdentity::check() {
  if (gone_.load(std::memory_order_acquire)) throw gone_error();
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  auto next = next_check_.load(std::memory_order_relaxed);
  if (now < next) return;
  if (!next_check_.compare_exchange_strong(
          next, now + std::chrono::nanoseconds{kCheckInterval}.count())) {
    return;  // another thread checks
  }
  struct stat st {};
  std::string problem;
  if (::stat(file_name_.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) problem = "was deleted";
  } else if (st.st_dev != device_ || st.st_ino != inode_) {
    problem = "was replaced by another file";
  }
  if (problem.empty()) return;
  {
    std::lock_guard lock(gone_mutex_);
    gone_reason_ = problem;
  }
  if (!gone_.exchange(true)) warn_(gone_error().what());
  throw gone_error();
}

DurableExecutionError FileIdentity::gone_error() const {
  std::string reason;
  {
    std::lock_guard lock(gone_mutex_);
    reason = gone_reason_;
  }
  return DurableExecutionError(
      "SQLite storage (" + path_ + "): the database file " + file_name_ + " " + reason +
          " while this storage had it open; every call fails from now on, since writes would "
          "go to the old file and be lost. Restore the file and open a new storage",
      ErrorType::generic, false, false);
}

}  // namespace durable_execution::sqlite
