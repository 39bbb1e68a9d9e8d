#include "durable_execution/durable_executor.hpp"

#include "durable_execution/durable_executor_client.hpp"

namespace durable_execution {

DurableExecutor::DurableExecutor(TaskExecutionsStorage& storage,
                                 const DurableExecutorOptions& options)
    : TaskSubmitter(
          std::make_shared<detail::Engine>(storage, options, detail::Engine::Mode::executor)) {}

DurableExecutor::~DurableExecutor() { engine_->shutdown_or_defer(); }

void DurableExecutor::start() { engine_->start(); }

void DurableExecutor::shutdown() { engine_->shutdown(); }

bool DurableExecutor::is_shutdown() const noexcept { return engine_->is_shutdown(); }

ExecutorStats DurableExecutor::stats() const { return engine_->stats(); }

std::vector<std::string> DurableExecutor::running_execution_ids() const {
  return engine_->running_execution_ids();
}

std::string DurableExecutor::executor_id() const { return engine_->executor_id(); }

namespace {

DurableExecutorOptions client_engine_options(const DurableExecutorClientOptions& o) {
  DurableExecutorOptions e;
  e.max_serialized_input_data_size = o.max_serialized_input_data_size;
  e.storage_max_retry_attempts = o.storage_max_retry_attempts;
  e.log_level = o.log_level;
  e.logger_name = o.logger_name;
  e.log_sink = o.log_sink;
  e.clock = o.clock;
  return e;
}

}  // namespace

DurableExecutorClient::DurableExecutorClient(TaskExecutionsStorage& storage,
                                             const std::vector<TaskDescriptor>& tasks,
                                             const DurableExecutorClientOptions& options)
    : TaskSubmitter(std::make_shared<detail::Engine>(storage, client_engine_options(options),
                                                     detail::Engine::Mode::client)) {
  for (const auto& t : tasks) engine_->register_descriptor(t);
}

DurableExecutorClient::~DurableExecutorClient() { engine_->shutdown_or_defer(); }

void DurableExecutorClient::shutdown() noexcept { engine_->shutdown_or_defer(); }

}  // namespace durable_execution
