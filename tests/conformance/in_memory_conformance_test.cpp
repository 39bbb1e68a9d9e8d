// The storage conformance suite over the in-memory store, and over the naive reference store
// (which checks the checks: a test failing on both is a wrong test), and over the fault-injection
// wrapper with no fault set (it must forward every call faithfully), and through the batching
// wrapper (combined calls must keep the contract).

#include "durable_execution/fault_injection_storage.hpp"
#include "durable_execution/in_memory_storage.hpp"
#include "reference_storage.hpp"
#include "storage_conformance.hpp"
#include "storage_factory.hpp"

INSTANTIATE_TEST_SUITE_P(InMemory, StorageConformance,
                         ::testing::Values(durable_execution::testing::in_memory_factory()),
                         durable_execution::testing::factory_name);

INSTANTIATE_TEST_SUITE_P(Reference, StorageConformance,
                         ::testing::Values(durable_execution::testing::reference_factory()),
                         durable_execution::testing::factory_name);

INSTANTIATE_TEST_SUITE_P(
    FaultInjection, StorageConformance,
    ::testing::Values(durable_execution::testing::StorageFactory{
        "FaultInjectionWithoutFaults",
        [] {
          return std::make_unique<durable_execution::FaultInjectingTaskExecutionsStorage>(
              std::make_unique<durable_execution::InMemoryTaskExecutionsStorage>());
        }}),
    durable_execution::testing::factory_name);

INSTANTIATE_TEST_SUITE_P(BatchingInMemory, StorageConformance,
                         ::testing::Values(durable_execution::testing::batching_factory(
                             durable_execution::testing::in_memory_factory())),
                         durable_execution::testing::factory_name);
