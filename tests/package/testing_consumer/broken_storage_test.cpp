// The suite catches a storage that breaks the contract: this one claims one row more than the
// limit. Run with a filter on the claim tests; ctest expects their failure in the output.
#include <durable_execution/forwarding_storage.hpp>
#include <durable_execution/in_memory_storage.hpp>
#include <durable_execution/testing/storage_conformance.hpp>
#include <memory>
#include <vector>

namespace {

class OverClaimingStorage final : public durable_execution::ForwardingTaskExecutionsStorage {
 public:
  OverClaimingStorage()
      : ForwardingTaskExecutionsStorage(
            std::make_unique<durable_execution::InMemoryTaskExecutionsStorage>()) {}

  std::vector<durable_execution::TaskExecutionRecord>
  update_by_status_and_start_at_less_than_and_return(
      const durable_execution::UpdateByStatusAndStartAtLessThanRequest& request) override {
    auto wrong = request;
    wrong.limit += 1;
    return ForwardingTaskExecutionsStorage::update_by_status_and_start_at_less_than_and_return(
        wrong);
  }
};

}  // namespace

DE_STORAGE_CONFORMANCE_SUITE(OverClaiming, [] { return std::make_unique<OverClaimingStorage>(); });
