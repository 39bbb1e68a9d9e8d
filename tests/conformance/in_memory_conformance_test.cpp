// The storage conformance suite over the in-memory store, and over the naive reference store
// (which checks the checks: a test failing on both is a wrong test).

#include "reference_storage.hpp"
#include "storage_conformance.hpp"

INSTANTIATE_TEST_SUITE_P(InMemory, StorageConformance,
                         ::testing::Values(durable_execution::testing::in_memory_factory()),
                         durable_execution::testing::factory_name);

INSTANTIATE_TEST_SUITE_P(Reference, StorageConformance,
                         ::testing::Values(durable_execution::testing::reference_factory()),
                         durable_execution::testing::factory_name);
