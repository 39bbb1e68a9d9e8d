#include "durable_execution/storage.hpp"

namespace durable_execution {

// Key function: emits the vtable and typeinfo once, so catch and dynamic_cast work across
// shared objects.
TaskExecutionsStorage::~TaskExecutionsStorage() = default;

// Most backends cannot hear other processes: their executors find such work by polling.
std::uint64_t TaskExecutionsStorage::subscribe_to_external_work(
    std::function<void()> /*on_external_work*/) {
  return 0;
}

void TaskExecutionsStorage::unsubscribe_from_external_work(std::uint64_t /*token*/) noexcept {}

}  // namespace durable_execution
