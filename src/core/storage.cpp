#include "durable_execution/storage.hpp"

namespace durable_execution {

// Key function: emits the vtable and typeinfo once, so catch and dynamic_cast work across
// shared objects.
TaskExecutionsStorage::~TaskExecutionsStorage() = default;

}  // namespace durable_execution
