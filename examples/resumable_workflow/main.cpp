// A durable workflow on the embedded default, a SQLite file: a parent task fans out one child
// per image, and a finalize step combines their outputs. Kill the process mid-way (Ctrl-C, or
// `kill -9`) and run it again: the new process picks up the unfinished workflow from the file,
// keeps the images already processed, and finishes the rest.
//
//   ./resumable_workflow [database path, default durable_example.db]

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "durable_execution/durable_execution.hpp"
#include "durable_execution/sqlite/sqlite_storage.hpp"

namespace de = durable_execution;
using namespace std::chrono_literals;

namespace {

constexpr int kImages = 12;

// The application keeps the id of its workflow execution (here in a file beside the database),
// as it would keep an order id: it is how a restarted process finds its work again.
std::string read_saved_id(const std::filesystem::path& path) {
  std::ifstream in{path};
  std::string id;
  std::getline(in, id);
  return id;
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path db = argc > 1 ? argv[1] : "durable_example.db";
  const std::filesystem::path id_file = db.string() + ".workflow";

  de::SqliteTaskExecutionsStorage storage{db.string()};
  // A short leeway, so that steps a killed process was running are retried ~1 s after their
  // timeout rather than after the default 5 minutes.
  de::DurableExecutor executor{storage,
                               {.expire_leeway = 1s,
                                .background_process_intra_batch_sleep = 100ms,
                                .max_concurrent_task_executions = 2,
                                .log_level = de::LogLevel::error}};

  auto resize = executor.task<int, std::string>(
      {.id = "resize_image", .timeout = 2s, .retry = {.max_attempts = 3, .base_delay = 100ms}},
      [](de::TaskRunContext& ctx, const int& image) {
        std::this_thread::sleep_for(500ms);  // the "work"
        if (ctx.stop_requested()) throw de::DurableExecutionCancelledError{};
        // One write per line: steps run on several worker threads.
        std::cout << ("  image " + std::to_string(image) + " resized by process " +
                      std::to_string(getpid()) +
                      (ctx.prev_error() ? " (retry after: " + ctx.prev_error()->message + ")"
                                        : "") +
                      "\n")
                  << std::flush;
        return "image_" + std::to_string(image) + "_small.jpg";
      });

  auto publish = executor.parent_task<int>(
      {.id = "publish_album", .timeout = 5s},
      [resize](const int& images) {
        de::ParentRunResult<int> result{images, {}};
        for (int i = 0; i < images; ++i) result.children.push_back(de::child(resize, i));
        return result;
      },
      [](const de::ParentTaskOutput<int>& done) {
        int resized = 0;
        for (const auto& child : done.children) resized += child.is_completed() ? 1 : 0;
        return "album published: " + std::to_string(resized) + "/" + std::to_string(done.output) +
               " images resized";
      });

  executor.start();

  std::string id = read_saved_id(id_file);
  if (!id.empty() &&
      !executor.get_task_execution_handle(publish, id).get_execution().is_finished()) {
    std::cout << "Resuming workflow " << id << " left unfinished by a previous run\n";
  } else {
    id = executor.enqueue_task(publish, kImages).execution_id();
    std::ofstream{id_file} << id << "\n";
    std::cout << "Started workflow " << id << " (" << kImages
              << " images; kill this process and run it again to see it resume)\n";
  }

  auto done = executor.get_task_execution_handle(publish, id)
                  .wait_and_get_finished_execution({.polling_interval = 50ms, .timeout = 120s});
  std::cout << "Workflow " << de::to_string(done.status) << ": "
            << (done.output  ? *done.output
                : done.error ? done.error->message
                             : "")
            << "\n";
  executor.shutdown();
  std::filesystem::remove(id_file);
  return done.status == de::TaskExecutionStatus::completed ? 0 : 1;
}
