// A simple task: typed input and output, retries, a timeout, and a handle to wait on.
//
// Build it standalone or in the project's tree (examples/README.md); in the tree it is
// ./examples/simple_task/simple_task.

#include <chrono>
#include <iostream>
#include <string>

#include "durable_execution/durable_execution.hpp"

namespace de = durable_execution;
using namespace std::chrono_literals;

// Any type with nlohmann to_json/from_json can be an input or an output.
struct Email {
  std::string to;
  std::string subject;
};
void to_json(nlohmann::json& j, const Email& e) { j = {{"to", e.to}, {"subject", e.subject}}; }
void from_json(const nlohmann::json& j, Email& e) {
  e.to = j.at("to").get<std::string>();
  e.subject = j.at("subject").get<std::string>();
}

int main() {
  de::InMemoryTaskExecutionsStorage storage;  // or SqliteTaskExecutionsStorage for durability
  de::DurableExecutor executor{storage, {.max_concurrent_task_executions = 16}};

  // Input (Email) and output (std::string) are deduced from the callable.
  auto send_email = executor.task(
      {.id = "send_email", .timeout = 5s, .retry = {.max_attempts = 2, .base_delay = 10ms}},
      [](de::TaskRunContext& ctx, const Email& email) {
        // Fails once to show a retry; ctx.attempt() is 0 on the first run.
        if (ctx.attempt() == 0) throw std::runtime_error("mail server busy");
        if (ctx.stop_requested()) throw de::DurableExecutionCancelledError{};
        return "sent '" + email.subject + "' to " + email.to;
      });

  // Inputs can be validated (and converted) before the run: a rejected input fails the
  // execution without running the task.
  auto word_count = executor
                        .validate_input([](const std::string& text) {
                          if (text.empty()) throw std::invalid_argument("empty text");
                          return text;
                        })
                        .task({.id = "word_count", .timeout = 1s}, [](const std::string& text) {
                          int words = 0;
                          bool in_word = false;
                          for (char c : text) {
                            const bool space = c == ' ';
                            words += (!space && !in_word) ? 1 : 0;
                            in_word = !space;
                          }
                          return words;
                        });

  executor.start();

  auto email = executor.enqueue_task(send_email, Email{"ada@example.com", "hello"});
  auto count = executor.enqueue_task(word_count, "durable execution in C++");
  auto empty = executor.enqueue_task(word_count, "");

  auto e1 = email.wait_and_get_finished_execution({.polling_interval = 100ms, .timeout = 10s});
  std::cout << "send_email: " << de::to_string(e1.status) << ", output: " << e1.output.value_or("")
            << ", retries: " << e1.retry_attempts << "\n";

  auto e2 = count.wait_and_get_finished_execution({.timeout = 10s});
  std::cout << "word_count: " << de::to_string(e2.status) << ", output: " << e2.output.value_or(-1)
            << "\n";

  auto e3 = empty.wait_and_get_finished_execution({.timeout = 10s});
  std::cout << "word_count(\"\"): " << de::to_string(e3.status)
            << ", error: " << (e3.error ? e3.error->message : "") << "\n";

  executor.shutdown();
  return e1.status == de::TaskExecutionStatus::completed && e2.output == 4 &&
                 e3.status == de::TaskExecutionStatus::failed
             ? 0
             : 1;
}
