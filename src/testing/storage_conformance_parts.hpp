#pragma once

// The link anchors of the suite's source files (not installed). link_storage_conformance_suite()
// calls each one, so whoever references it also links every file's TEST_P registrations.

namespace durable_execution::testing::detail {

int storage_conformance_claims_part() noexcept;
int storage_conformance_concurrency_part() noexcept;

}  // namespace durable_execution::testing::detail
