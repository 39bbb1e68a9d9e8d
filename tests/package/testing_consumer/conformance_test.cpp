// The whole storage conformance suite on the user's own storage: one macro call.
#include <durable_execution/testing/storage_conformance.hpp>
#include <memory>

#include "audited_storage.hpp"

DE_STORAGE_CONFORMANCE_SUITE(AuditedStorage,
                             [] { return std::make_unique<my_app::AuditedStorage>(); });

// The same storage behind the batching wrapper (what enable_storage_batching puts in front of it).
DE_STORAGE_CONFORMANCE_SUITE(BatchingAuditedStorage,
                             durable_execution::testing::batching_factory(
                                 {"AuditedStorage",
                                  [] { return std::make_unique<my_app::AuditedStorage>(); }}));
