// The storage conformance suite (the testing kit's) on SQLite: each test gets a fresh database
// file in its own temp directory, removed afterwards.
#include "durable_execution/testing/storage_conformance.hpp"
#include "storage_factory.hpp"

DE_STORAGE_CONFORMANCE_SUITE(Sqlite, durable_execution::testing::sqlite_factory());

// The same suite through the batching wrapper: a wrapped store must keep the whole contract.
DE_STORAGE_CONFORMANCE_SUITE(BatchingSqlite, durable_execution::testing::batching_factory(
                                                 durable_execution::testing::sqlite_factory()));
