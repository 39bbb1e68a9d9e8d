#pragma once

// Part of the testing kit (durable_execution::testing): unique temp paths, and temp directories
// and files removed at scope exit, for backends and tests that keep data in files.

#include <filesystem>
#include <string>
#include <string_view>

namespace durable_execution::testing {

/**
 * @brief A new path in the system temp directory, `<stem>_<random>_<counter>`, unique within the
 * process and (with high probability) across processes. Nothing is created.
 * @note Thread safety: thread-safe.
 */
[[nodiscard]] std::string temp_path(const std::string& stem);

/**
 * @brief A fresh, empty directory under the system temp directory, removed with everything in it
 * when this object is destroyed.
 *
 * @code
 * durable_execution::testing::TempDirectory dir{"my_store"};
 * MyFileStore store{dir.file("store.db")};  // a database and its side files, all removed
 * @endcode
 *
 * @note Thread safety: thread-compatible. Whatever has files open inside the directory should be
 *   closed before this object is destroyed (declare the directory first).
 */
class TempDirectory {
 public:
  /** @brief Creates the directory (temp_path(stem)); throws std::filesystem::filesystem_error. */
  explicit TempDirectory(const std::string& stem = "de_test");
  /** @brief Removes the directory and its contents; never throws (failures are ignored). */
  ~TempDirectory();
  TempDirectory(const TempDirectory&) = delete;
  TempDirectory& operator=(const TempDirectory&) = delete;
  TempDirectory(TempDirectory&&) = delete;
  TempDirectory& operator=(TempDirectory&&) = delete;

  /** @brief The directory. */
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  /** @brief `path() / name`; nothing is created. */
  [[nodiscard]] std::filesystem::path file(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/**
 * @brief A unique temp file path (temp_path(stem) + `extension`; the file is not created), whose
 * file is removed when this object is destroyed, together with the side files a database keeps
 * next to it (`-wal`, `-shm`, `-journal`).
 * @note Thread safety: thread-compatible.
 */
class TempFile {
 public:
  /** @brief Picks the path (temp_path(stem) + `extension`); creates nothing. */
  explicit TempFile(const std::string& stem = "de_test", std::string_view extension = "");
  /** @brief Removes the file and its side files; never throws. */
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  TempFile(TempFile&&) = delete;
  TempFile& operator=(TempFile&&) = delete;

  /** @brief The file's path. */
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace durable_execution::testing
