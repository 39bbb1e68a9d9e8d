#include "durable_execution/testing/temp_path.hpp"

#include <atomic>
#include <random>
#include <system_error>

namespace durable_execution::testing {

std::string temp_path(const std::string& stem) {
  static std::atomic<unsigned> counter{0};
  // random_device makes names differ across processes (parallel ctest runs); the counter, within.
  std::random_device rd;
  auto name = stem + "_" + std::to_string(rd()) + "_" + std::to_string(counter.fetch_add(1));
  return (std::filesystem::temp_directory_path() / name).string();
}

TempDirectory::TempDirectory(const std::string& stem) : path_(temp_path(stem)) {
  std::filesystem::create_directories(path_);
}

TempDirectory::~TempDirectory() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

TempFile::TempFile(const std::string& stem, std::string_view extension)
    : path_(temp_path(stem) + std::string{extension}) {}

TempFile::~TempFile() {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    std::filesystem::remove(path_.string() + suffix, ignored);
  }
}

}  // namespace durable_execution::testing
