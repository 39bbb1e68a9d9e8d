// The testing kit's helpers as a backend author uses them: temp directories and files removed at
// scope exit, the temp-directory storage factory (store closed before its directory goes), the
// wrapper factories, and how DE_STORAGE_CONFORMANCE_SUITE names a factory.

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "durable_execution/errors.hpp"
#include "durable_execution/forwarding_storage.hpp"
#include "durable_execution/in_memory_storage.hpp"
#include "durable_execution/task_execution.hpp"
#include "durable_execution/testing/storage_conformance.hpp"
#include "durable_execution/testing/storage_factory.hpp"
#include "durable_execution/testing/temp_path.hpp"

namespace {

namespace de = durable_execution;
namespace det = durable_execution::testing;
namespace fs = std::filesystem;

void write_file(const fs::path& path) {
  std::ofstream out{path};
  out << "data";
}

de::TaskExecutionRecord new_record() {
  de::NewTaskExecution v;
  v.task_id = "task";
  v.execution_id = de::generate_execution_id();
  v.timeout = std::chrono::milliseconds{1000};
  return de::make_task_execution_record(de::now_timestamp(), std::move(v));
}

// Whether `storage` keeps a record it was given (one insert, one lookup).
bool round_trips(de::TaskExecutionsStorage& storage) {
  const auto record = new_record();
  storage.insert_many({record});
  const auto found = storage.get_many_by_id({{record.execution_id, {}}});
  return found.size() == 1 && found[0].has_value() && *found[0] == record;
}

TEST(TestingKitTempPath, PathsAreUniqueAndUnderTheTempDirectory) {
  std::set<std::string> paths;
  for (int i = 0; i < 100; ++i) paths.insert(det::temp_path("de_kit"));
  EXPECT_EQ(paths.size(), 100U);
  const auto path = fs::path{*paths.begin()};
  EXPECT_EQ(path.parent_path(), fs::temp_directory_path());
  EXPECT_EQ(path.filename().string().rfind("de_kit_", 0), 0U) << path;
  EXPECT_FALSE(fs::exists(path));  // nothing is created
}

TEST(TestingKitTempPath, TempDirectoryIsFreshAndRemovedWithItsContents) {
  fs::path kept;
  {
    det::TempDirectory dir{"de_kit_dir"};
    kept = dir.path();
    ASSERT_TRUE(fs::is_directory(kept));
    EXPECT_TRUE(fs::is_empty(kept));
    EXPECT_EQ(dir.file("store.db"), kept / "store.db");
    det::TempDirectory other{"de_kit_dir"};
    EXPECT_NE(other.path(), kept);
    fs::create_directories(kept / "nested");
    write_file(dir.file("store.db"));
    write_file(kept / "nested" / "side");
  }
  EXPECT_FALSE(fs::exists(kept));
}

TEST(TestingKitTempPath, TempFileIsRemovedWithItsDatabaseSideFiles) {
  fs::path kept;
  {
    det::TempFile file{"de_kit_file", ".db"};
    kept = file.path();
    EXPECT_EQ(kept.extension(), ".db");
    EXPECT_FALSE(fs::exists(kept));  // not created
    write_file(kept);
    write_file(kept.string() + "-wal");
    write_file(kept.string() + "-shm");
  }
  EXPECT_FALSE(fs::exists(kept));
  EXPECT_FALSE(fs::exists(kept.string() + "-wal"));
  EXPECT_FALSE(fs::exists(kept.string() + "-shm"));
}

// A file-based store stand-in: keeps a file in its directory, and records at destruction whether
// the directory was still there (a real store flushes and closes its files then).
class FileKeepingStorage final : public de::ForwardingTaskExecutionsStorage {
 public:
  FileKeepingStorage(fs::path file, bool& directory_existed_at_close)
      : ForwardingTaskExecutionsStorage(std::make_unique<de::InMemoryTaskExecutionsStorage>()),
        file_(std::move(file)),
        directory_existed_at_close_(directory_existed_at_close) {
    write_file(file_);
  }
  FileKeepingStorage(const FileKeepingStorage&) = delete;
  FileKeepingStorage& operator=(const FileKeepingStorage&) = delete;
  FileKeepingStorage(FileKeepingStorage&&) = delete;
  FileKeepingStorage& operator=(FileKeepingStorage&&) = delete;
  ~FileKeepingStorage() override {
    directory_existed_at_close_ = fs::is_directory(file_.parent_path());
  }

 private:
  fs::path file_;
  bool& directory_existed_at_close_;
};

TEST(TestingKitFactories, TempDirectoryFactoryClosesTheStoreBeforeRemovingItsDirectory) {
  std::vector<fs::path> directories;
  bool directory_existed_at_close = false;
  const auto factory = det::temp_directory_storage_factory(
      "FileKeeping", [&](const fs::path& directory) -> std::unique_ptr<de::TaskExecutionsStorage> {
        EXPECT_TRUE(fs::is_directory(directory));
        EXPECT_TRUE(fs::is_empty(directory));
        directories.push_back(directory);
        return std::make_unique<FileKeepingStorage>(directory / "store.db",
                                                    directory_existed_at_close);
      });
  EXPECT_EQ(factory.name, "FileKeeping");
  {
    auto first = factory.make();
    auto second = factory.make();
    ASSERT_EQ(directories.size(), 2U);
    EXPECT_NE(directories[0], directories[1]);
    EXPECT_TRUE(fs::exists(directories[0] / "store.db"));
    EXPECT_TRUE(round_trips(*first));
  }
  EXPECT_TRUE(directory_existed_at_close);
  EXPECT_FALSE(fs::exists(directories[0]));
  EXPECT_FALSE(fs::exists(directories[1]));
}

TEST(TestingKitFactories, TempDirectoryFactoryLeavesNoDirectoryWhenOpenThrows) {
  fs::path seen;
  const auto factory = det::temp_directory_storage_factory(
      "Failing", [&](const fs::path& directory) -> std::unique_ptr<de::TaskExecutionsStorage> {
        seen = directory;
        throw std::runtime_error("cannot open");
      });
  EXPECT_THROW((void)factory.make(), std::runtime_error);
  ASSERT_FALSE(seen.empty());
  EXPECT_FALSE(fs::exists(seen));
}

TEST(TestingKitFactories, WrapperFactoriesNameAndWrapTheInnerStore) {
  const auto batching = det::batching_factory(det::in_memory_factory());
  EXPECT_EQ(batching.name, "BatchingInMemory");
  EXPECT_TRUE(round_trips(*batching.make()));

  const auto faultless = det::fault_injection_factory(det::in_memory_factory());
  EXPECT_EQ(faultless.name, "FaultInjectionInMemory");
  EXPECT_TRUE(round_trips(*faultless.make()));

  // The options reach the wrapper: every call fails, non-retryably, before reaching the store.
  const auto failing = det::fault_injection_factory(
      det::in_memory_factory(), {.failure_rate = 1.0, .failures_are_retryable = false});
  auto storage = failing.make();
  try {
    storage->insert_many({new_record()});
    FAIL() << "insert_many succeeded at failure rate 1";
  } catch (const de::DurableExecutionError& e) {
    EXPECT_FALSE(e.is_retryable());
  }

  // A wrapper keeps the inner factory's availability check.
  auto unavailable = det::in_memory_factory();
  unavailable.unavailable_reason = [] { return std::string{"no server"}; };
  EXPECT_EQ(det::batching_factory(unavailable).unavailable_reason(), "no server");
  EXPECT_EQ(det::fault_injection_factory(unavailable).unavailable_reason(), "no server");
}

TEST(TestingKitFactories, SuiteMacroNamesCallablesAfterTheSuiteAndKeepsFactoryNames) {
  const auto from_callable = det::detail::to_storage_factory(
      "MyStore", [] { return std::make_unique<de::InMemoryTaskExecutionsStorage>(); });
  EXPECT_EQ(from_callable.name, "MyStore");
  EXPECT_FALSE(from_callable.unavailable_reason);
  EXPECT_TRUE(round_trips(*from_callable.make()));

  EXPECT_EQ(det::detail::to_storage_factory("Suite", det::in_memory_factory()).name, "InMemory");
  EXPECT_EQ(det::detail::to_storage_factory("Suite", det::StorageFactory{"", nullptr}).name,
            "Suite");
}

}  // namespace
