// The storage conformance suite over the in-memory store, and over the naive reference store
// (which checks the checks: a test failing on both is a wrong test), and over the fault-injection
// wrapper with no fault set (it must forward every call faithfully), and through the batching
// wrapper (combined calls must keep the contract). Each runs with the macro a user calls.

#include "durable_execution/testing/storage_conformance.hpp"
#include "durable_execution/testing/storage_factory.hpp"
#include "reference_storage.hpp"

namespace {

namespace det = durable_execution::testing;

det::StorageFactory fault_injection_without_faults() {
  auto factory = det::fault_injection_factory(det::in_memory_factory());
  factory.name = "FaultInjectionWithoutFaults";
  return factory;
}

}  // namespace

DE_STORAGE_CONFORMANCE_SUITE(InMemory, det::in_memory_factory());
DE_STORAGE_CONFORMANCE_SUITE(Reference, det::reference_factory());
DE_STORAGE_CONFORMANCE_SUITE(FaultInjection, fault_injection_without_faults());
DE_STORAGE_CONFORMANCE_SUITE(BatchingInMemory, det::batching_factory(det::in_memory_factory()));
