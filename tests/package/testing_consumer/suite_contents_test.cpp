// Checks of the kit itself, not something a user writes: the one macro call registered the
// whole suite (each of its source files contributes tests; a static link that dropped one would
// silently run fewer).
#include <gtest/gtest.h>

#include <set>
#include <string>

namespace {

std::set<std::string> registered_tests(const std::string& suite) {
  std::set<std::string> names;
  const auto& unit = *::testing::UnitTest::GetInstance();
  for (int i = 0; i < unit.total_test_suite_count(); ++i) {
    const auto& s = *unit.GetTestSuite(i);
    if (suite != s.name()) continue;
    for (int j = 0; j < s.total_test_count(); ++j) names.insert(s.GetTestInfo(j)->name());
  }
  return names;
}

TEST(TestingKitSuite, OneMacroCallRegistersEveryPartOfTheSuite) {
  const auto names = registered_tests("AuditedStorage/StorageConformance");
  // One test of each of the suite's parts: records and lookups, claims, concurrency.
  for (const char* expected : {"InsertRoundTripsEveryField/AuditedStorage",
                               "ClaimByStatusAndStartAtTakesOldestStartAtFirst/AuditedStorage",
                               "ConcurrentClaimsAreDisjointAndComplete/AuditedStorage"}) {
    EXPECT_TRUE(names.count(expected) == 1) << expected << " is not registered";
  }
  EXPECT_GE(names.size(), 40U);
  EXPECT_EQ(registered_tests("BatchingAuditedStorage/StorageConformance").size(), names.size());
}

}  // namespace
