// The storage conformance suite (the testing kit's) on PostgreSQL: each test gets a new schema on
// the DE_TEST_PG_URL server, dropped afterwards. Without DE_TEST_PG_URL every test is skipped with
// a message (failed when CI is set).
#include "durable_execution/testing/storage_conformance.hpp"
#include "storage_factory.hpp"

DE_STORAGE_CONFORMANCE_SUITE(Postgres, durable_execution::testing::postgres_factory());

// The same suite through the batching wrapper: a wrapped store must keep the whole contract.
DE_STORAGE_CONFORMANCE_SUITE(BatchingPostgres, durable_execution::testing::batching_factory(
                                                   durable_execution::testing::postgres_factory()));
