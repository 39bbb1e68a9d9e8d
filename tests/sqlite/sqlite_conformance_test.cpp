// The shared storage conformance suite (tests/conformance/) on SQLite: each test gets a fresh
// temp database file, deleted afterwards.
#include "storage_conformance.hpp"
#include "storage_factory.hpp"

INSTANTIATE_TEST_SUITE_P(Sqlite, StorageConformance,
                         ::testing::Values(durable_execution::testing::sqlite_factory()),
                         durable_execution::testing::factory_name);

// The same suite through the batching wrapper: a wrapped store must keep the whole contract.
INSTANTIATE_TEST_SUITE_P(BatchingSqlite, StorageConformance,
                         ::testing::Values(durable_execution::testing::batching_factory(
                             durable_execution::testing::sqlite_factory())),
                         durable_execution::testing::factory_name);
