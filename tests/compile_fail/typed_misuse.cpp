// One misuse per DE_CASE; DE_CASE 0 is the control, the same code used correctly, which must
// compile (so the failing cases fail for the misuse, not for the scaffolding).

#include <chrono>
#include <string>

#include "durable_execution/durable_execution.hpp"

namespace de = durable_execution;

int main() {
  de::InMemoryTaskExecutionsStorage storage;
  de::DurableExecutor executor{storage};
  auto twice = executor.task({.id = "twice", .timeout = std::chrono::seconds{1}},
                             [](de::TaskRunContext&, const int& x) { return 2 * x; });
#if DE_CASE == 0
  auto handle = executor.enqueue_task(twice, 21);
  de::TaskExecution<int> execution = handle.get_execution();
  int out = execution.output.value_or(0);
  de::DurableExecutorClient client{storage, {twice.descriptor()}};
  (void)client.enqueue_task(twice, 1);
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
#endif
  return 0;
}
