// One misuse per DE_CASE; DE_CASE 0 is the control, the same code used correctly, which must
// compile (so the failing cases fail for the misuse, not for the scaffolding).

#include <chrono>
#include <cstdint>
#include <string>

#include "durable_execution/durable_execution.hpp"

namespace de = durable_execution;

int main() {
  de::InMemoryTaskExecutionsStorage storage;
  de::DurableExecutor executor{storage};
  auto twice = executor.task({.id = "twice", .timeout = std::chrono::seconds{1}},
                             [](de::TaskRunContext&, const int& x) { return 2 * x; });
  auto twice_long = executor.task({.id = "twice_long", .timeout = std::chrono::seconds{1}},
                                  [](const std::int32_t& x) { return std::int64_t{2} * x; });
  auto half = executor.task({.id = "half", .timeout = std::chrono::seconds{1}},
                            [](const double& x) { return x / 2; });
  auto webhook = de::Task<std::string, int>::sleeping_reference(
      {.id = "webhook", .timeout = std::chrono::seconds{1}});
#if DE_CASE == 0
  auto handle = executor.enqueue_task(twice, 21);
  de::TaskExecution<int> execution = handle.get_execution();
  int out = execution.output.value_or(0);
  de::DurableExecutorClient client{storage, {twice.descriptor()}};
  (void)client.enqueue_task(twice, 1);
  (void)client.enqueue_task(twice_long, std::int32_t{1});
  (void)client.enqueue_task(half, 1);  // int -> double: no narrowing
  de::TaskExecution<int> woken = client.wakeup_sleeping_task_execution(webhook, "id", 1);
  (void)woken.input_as<std::string>();
  return out;
#elif DE_CASE == 1
  (void)executor.enqueue_task(twice, std::string{"21"});  // input must be an int
#elif DE_CASE == 2
  (void)executor.enqueue_task(twice, 21.5);  // no silent narrowing double -> int
#elif DE_CASE == 3
  auto handle = executor.enqueue_task(twice, 21);
  std::string out = *handle.get_execution().output;  // the output is an int
  return static_cast<int>(out.size());
#elif DE_CASE == 4
  de::TaskExecutionHandle<std::string> handle = executor.enqueue_task(twice, 21);
  (void)handle;
#elif DE_CASE == 5
  de::DurableExecutorClient client{storage, {twice.descriptor()}};
  (void)client.enqueue_task(twice, "21");
#elif DE_CASE == 6
  de::DurableExecutorClient client{storage, {webhook.descriptor()}};
  (void)client.wakeup_sleeping_task_execution(webhook, "id", std::string{"7"});  // output is int
#elif DE_CASE == 7
  (void)executor.enqueue_task(twice_long, std::int64_t{21});  // int64 -> int32 narrows
#elif DE_CASE == 8
  (void)executor.enqueue_task(half, std::int64_t{21});  // int64 -> double loses digits
#elif DE_CASE == 9
  (void)de::Task<int, int>::sleeping_reference({.id = "webhook"});  // input is a unique id
#elif DE_CASE == 10
  de::DurableExecutorClient client{storage, {webhook.descriptor()}};
  de::TaskExecution<std::string> woken = client.wakeup_sleeping_task_execution(webhook, "id", 1);
  (void)woken;
#endif
  return 0;
}
