// Polling task: poll an external system until a value appears, at most N polls with a sleep
// before each. Here the "external system" is an atomic set by another thread after ~200 ms; the
// second polling task gives up after 3 polls and reports {is_success = false}.
//
// Build it standalone or in the project's tree (examples/README.md); in the tree it is
// ./examples/polling_task/polling_task.

#include <atomic>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "durable_execution/durable_execution.hpp"

namespace de = durable_execution;
using namespace std::chrono_literals;

namespace {

// Stands in for a job service: a job's result appears once it is done (0 = not yet).
std::atomic<int> job_result{0};

std::string describe(const de::TaskExecution<de::PollingResult<int>>& e) {
  if (!e.output)
    return std::string{de::to_string(e.status)} + ", error: " + (e.error ? e.error->message : "");
  return std::string{de::to_string(e.status)} +
         ", {is_success: " + (e.output->is_success ? "true" : "false") +
         ", output: " + (e.output->output ? std::to_string(*e.output->output) : "none") + "}";
}

}  // namespace

int main() {
  de::InMemoryTaskExecutionsStorage storage;
  de::DurableExecutor executor{storage, {.background_process_intra_batch_sleep = 20ms}};

  // The poll function: one check per run. It returns PollResult<int>: {true, output} when done,
  // {} when not yet. A throw would end the polling task finalize_failed ("Poll task ... failed").
  std::atomic<int> polls{0};
  auto check_job = executor.task({.id = "check_job", .timeout = 1s}, [&](const std::string& job) {
    ++polls;
    const int result = job == "job_1" ? job_result.load() : 0;  // job_2 never finishes
    return result != 0 ? de::PollResult<int>{true, result} : de::PollResult<int>{};
  });

  // At most 20 polls, 50 ms apart (~1 s budget); the output is PollingResult<int>.
  auto wait_job = executor.polling_task("wait_job", check_job, 20, 50ms);
  // The sleep can depend on the attempt (here a linear back-off: 0, 10, 20 ms).
  auto wait_job_briefly = executor.polling_task(
      "wait_job_briefly", check_job, 3, [](std::int32_t attempt) { return attempt * 10ms; });

  executor.start();

  // The job finishes ~200 ms from now, on another thread.
  std::jthread job_service{[] {
    std::this_thread::sleep_for(200ms);
    job_result = 42;
  }};

  const auto started = std::chrono::steady_clock::now();
  auto done =
      executor.enqueue_task(wait_job, "job_1").wait_and_get_finished_execution({.timeout = 5s});
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  std::cout << "wait_job(job_1): " << describe(done) << "\n";
  // Timing varies from run to run, so it goes to stderr (the docs copy stdout).
  std::cerr << "  (" << polls.load() << " polls, " << elapsed.count() << " ms)\n";

  auto gave_up = executor.enqueue_task(wait_job_briefly, "job_2")
                     .wait_and_get_finished_execution({.timeout = 5s});
  std::cout << "wait_job_briefly(job_2): " << describe(gave_up) << "\n";

  executor.shutdown();
  return done.status == de::TaskExecutionStatus::completed && done.output &&
                 done.output->is_success && done.output->output == 42 &&
                 gave_up.status == de::TaskExecutionStatus::completed && gave_up.output &&
                 !gave_up.output->is_success
             ? 0
             : 1;
}
