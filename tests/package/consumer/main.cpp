// Uses an installed durable_execution as an application would, on every storage the install
// provides: the storage calls of one execution (insert, claim, complete, read back), then one
// task run by an executor. Exits non-zero with a message on the first mismatch.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <durable_execution/durable_execution.hpp>
#include <durable_execution/version.hpp>
#include <exception>
#include <filesystem>
#include <string>

#ifdef DE_CONSUMER_WITH_SQLITE
#include <durable_execution/sqlite/sqlite_storage.hpp>
#endif
#ifdef DE_CONSUMER_WITH_POSTGRES
#include <durable_execution/postgres/postgres_storage.hpp>
#endif

namespace de = durable_execution;

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "consumer check failed: %s\n", what);
    std::exit(1);
  }
}

// The storage calls the engine makes for one simple task, in order.
void run_one_execution(de::TaskExecutionsStorage& storage) {
  const de::Timestamp now = de::now_timestamp();
  const std::string id = de::generate_execution_id();
  storage.insert_many({de::make_task_execution_record(
      now, {.task_id = "consumer_task", .execution_id = id, .input = R"("hello")"})});

  const auto claimed = storage.update_by_status_and_start_at_less_than_and_return({
      .status = de::TaskExecutionStatus::ready,
      .start_at_less_than = now + std::chrono::milliseconds{1},
      .update = de::normalize_update(now, {.executor_id = "consumer",
                                           .status = de::TaskExecutionStatus::running,
                                           .started_at = now}),
      .update_expires_at_with_started_at = now,
      .limit = 10,
  });
  check(claimed.size() == 1 && claimed[0].execution_id == id, "the claim returns the execution");

  storage.update_many_by_id({{
      .execution_id = id,
      .filters = {.status = de::TaskExecutionStatus::running},
      .update = de::normalize_update(
          now, {.status = de::TaskExecutionStatus::completed, .output = R"("HELLO")"}),
  }});

  const auto found = storage.get_many_by_id({{.execution_id = id}});
  check(found.size() == 1 && found[0].has_value(), "the execution is stored");
  check(found[0]->status == de::TaskExecutionStatus::completed && found[0]->is_finished,
        "the execution is completed");
  check(found[0]->output == std::string{R"("HELLO")"}, "the output is stored");
}

// One task through the executor: register, start, enqueue, wait (bounded), read the typed output.
void run_one_task(de::TaskExecutionsStorage& storage) {
  de::DurableExecutor executor{storage};
  auto shout = executor.task({.id = "shout", .timeout = std::chrono::seconds{5}},
                             [](const std::string& text) { return text + "!"; });
  executor.start();
  de::TaskExecutionHandle<std::string> handle = executor.enqueue_task(shout, std::string{"hello"});
  const auto done = handle.wait_and_get_finished_execution({.timeout = std::chrono::seconds{30}});
  check(done.status == de::TaskExecutionStatus::completed, "the task completes");
  check(done.output == std::string{"hello!"}, "the task's output is returned");
  executor.shutdown();
}

}  // namespace

int main() {
  try {
    check(std::string{DURABLE_EXECUTION_VERSION}.size() >= 5, "version.hpp is installed");

    {
      de::InMemoryTaskExecutionsStorage storage;
      run_one_execution(storage);
    }
    {
      de::InMemoryTaskExecutionsStorage storage;
      run_one_task(storage);
    }

#ifdef DE_CONSUMER_WITH_SQLITE
    for (const auto run : {&run_one_execution, &run_one_task}) {
      const std::string path = (std::filesystem::temp_directory_path() /
                                ("de_consumer_" + de::generate_execution_id() + ".db"))
                                   .string();
      {
        de::SqliteTaskExecutionsStorage storage{path};
        run(storage);
      }
      for (const char* suffix : {"", "-wal", "-shm"}) {
        std::filesystem::remove(path + suffix);
      }
    }
#endif
#ifdef DE_CONSUMER_WITH_POSTGRES
    // Without a server: the library links and validates before connecting.
    bool refused = false;
    try {
      de::PostgresTaskExecutionsStorage storage{"postgresql://127.0.0.1:1/db",
                                                {.schema = "bad schema"}};
    } catch (const de::DurableExecutionError&) {
      refused = true;
    }
    check(refused, "an invalid PostgreSQL schema name is refused");
    // With the test server (DE_TEST_PG_URL, as in CI): the same calls as on the other storages.
    if (const char* url = std::getenv("DE_TEST_PG_URL"); url != nullptr && *url != '\0') {
      for (const auto run : {&run_one_execution, &run_one_task}) {
        de::PostgresTaskExecutionsStorage storage{url, {.schema = "de_package_consumer"}};
        storage.delete_all();
        run(storage);
        storage.delete_all();
      }
    }
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer failed: %s\n", e.what());
    return 1;
  }
  std::printf("durable_execution %s: ok\n", DURABLE_EXECUTION_VERSION);
  return 0;
}
