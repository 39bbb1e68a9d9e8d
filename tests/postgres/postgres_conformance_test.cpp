// The shared storage conformance suite (tests/conformance/) on PostgreSQL: each test gets a new
// schema on the DE_TEST_PG_URL server, dropped afterwards. Without DE_TEST_PG_URL every test is
// skipped with a message (failed when CI is set).
#include "storage_conformance.hpp"
#include "storage_factory.hpp"

INSTANTIATE_TEST_SUITE_P(Postgres, StorageConformance,
                         ::testing::Values(durable_execution::testing::postgres_factory()),
                         durable_execution::testing::factory_name);

// The same suite through the batching wrapper: a wrapped store must keep the whole contract.
INSTANTIATE_TEST_SUITE_P(BatchingPostgres, StorageConformance,
                         ::testing::Values(durable_execution::testing::batching_factory(
                             durable_execution::testing::postgres_factory())),
                         durable_execution::testing::factory_name);
