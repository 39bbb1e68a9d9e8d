// FaultInjectingTaskExecutionsStorage: each kind of fault, its bounds and its reproducibility.

#include "durable_execution/fault_injection_storage.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "durable_execution/errors.hpp"
#include "durable_execution/in_memory_storage.hpp"

namespace de = durable_execution;
using de::StorageOperation;
using namespace std::chrono_literals;

namespace {

de::TaskExecutionRecord record(const std::string& id) {
  de::NewTaskExecution n;
  n.task_id = "t";
  n.execution_id = id;
  n.timeout = 1000ms;
  n.input = "null";
  return de::make_task_execution_record(de::now_timestamp(), std::move(n));
}

bool exists(de::TaskExecutionsStorage& s, const std::string& id) {
  return s.get_many_by_id({de::GetByIdRequest{id, {}}}).front().has_value();
}

/** The pattern of failures (1 = failed) of `n` reads at a rate, for a seed. */
std::vector<int> failure_pattern(std::uint64_t seed, int n) {
  de::InMemoryTaskExecutionsStorage memory;
  de::FaultInjectingTaskExecutionsStorage s{memory, {.seed = seed, .failure_rate = 0.3}};
  std::vector<int> pattern;
  for (int i = 0; i < n; ++i) {
    try {
      (void)s.get_many_by_id({de::GetByIdRequest{"x", {}}});
      pattern.push_back(0);
    } catch (const de::DurableExecutionError& e) {
      EXPECT_TRUE(e.is_retryable());
      pattern.push_back(1);
    }
  }
  return pattern;
}

TEST(FaultInjectionStorage, ForwardsEverythingWithoutFaults) {
  de::InMemoryTaskExecutionsStorage memory;
  de::FaultInjectingTaskExecutionsStorage s{memory};
  s.insert_many({record("a")});
  EXPECT_TRUE(exists(memory, "a"));
  EXPECT_TRUE(exists(s, "a"));
  EXPECT_EQ(s.calls(), 2);
  EXPECT_EQ(s.injected_failures(), 0);
}

TEST(FaultInjectionStorage, RandomFailuresFollowTheRateAndTheSeed) {
  const auto a = failure_pattern(7, 2000);
  EXPECT_EQ(a, failure_pattern(7, 2000));  // reproducible
  EXPECT_NE(a, failure_pattern(8, 2000));  // and the seed matters
  int failed = 0;
  for (const int f : a) failed += f;
  EXPECT_GT(failed, 500);  // 30 % of 2,000 = 600
  EXPECT_LT(failed, 700);
}

TEST(FaultInjectionStorage, FailedCallsWriteNothingAndCarryTheChosenFlag) {
  de::InMemoryTaskExecutionsStorage memory;
  de::FaultInjectingTaskExecutionsStorage s{memory,
                                            {.failure_rate = 1, .failures_are_retryable = false}};
  try {
    s.insert_many({record("a")});
    FAIL() << "expected an injected fault";
  } catch (const de::DurableExecutionError& e) {
    EXPECT_FALSE(e.is_retryable());
    EXPECT_NE(std::string{e.what()}.find("Injected fault in insert_many"), std::string::npos);
  }
  EXPECT_FALSE(exists(memory, "a"));
  s.delete_all();  // test helpers never fail at random
  s.set_failure_rate(0);
  s.insert_many({record("a")});
  EXPECT_TRUE(exists(memory, "a"));
}

TEST(FaultInjectionStorage, FailNextFailsExactlyThatManyCallsOfThatMethod) {
  de::InMemoryTaskExecutionsStorage memory;
  de::FaultInjectingTaskExecutionsStorage s{memory};
  s.fail_next(StorageOperation::update_many_by_id, 2, false);
  s.insert_many({record("a")});  // another method: unaffected
  const std::vector<de::UpdateByIdRequest> update{{"a", {}, {}}};
  EXPECT_THROW(s.update_many_by_id(update), de::DurableExecutionError);
  EXPECT_THROW(s.update_many_by_id(update), de::DurableExecutionError);
  EXPECT_NO_THROW(s.update_many_by_id(update));
  EXPECT_EQ(s.injected_failures(StorageOperation::update_many_by_id), 2);
  EXPECT_EQ(s.injected_failures(StorageOperation::insert_many), 0);
}

TEST(FaultInjectionStorage, ABadRequestFailsItsWholeBatchOnly) {
  de::InMemoryTaskExecutionsStorage memory;
  de::FaultInjectingTaskExecutionsStorage s{memory};
  s.fail_requests([](StorageOperation op, const std::string& id) {
    return op == StorageOperation::insert_many && id == "bad";
  });
  EXPECT_THROW(s.insert_many({record("good1"), record("bad"), record("good2")}),
               de::DurableExecutionError);
  EXPECT_FALSE(exists(memory, "good1"));  // nothing of the failed batch was written
  s.insert_many({record("good1"), record("good2")});
  EXPECT_TRUE(exists(memory, "good2"));
  // Children inserts are matched by the child's id too.
  s.fail_requests([](StorageOperation, const std::string& id) { return id == "child"; }, true);
  try {
    s.update_many_by_id_and_insert_children_if_updated(
        {de::UpdateByIdAndInsertChildrenRequest{"good1", {}, {}, {record("child")}}});
    FAIL() << "expected an injected fault";
  } catch (const de::DurableExecutionError& e) {
    EXPECT_TRUE(e.is_retryable());
  }
  EXPECT_FALSE(exists(memory, "child"));
  s.clear_faults();
  s.update_many_by_id_and_insert_children_if_updated(
      {de::UpdateByIdAndInsertChildrenRequest{"good1", {}, {}, {record("child")}}});
  EXPECT_TRUE(exists(memory, "child"));
}

TEST(FaultInjectionStorage, LatencyDelaysEachCall) {
  de::InMemoryTaskExecutionsStorage memory;
  de::FaultInjectingTaskExecutionsStorage s{memory, {.min_latency = 20ms, .max_latency = 30ms}};
  const auto start = std::chrono::steady_clock::now();
  (void)s.get_many_by_id({de::GetByIdRequest{"x", {}}});
  (void)s.get_many_by_id({de::GetByIdRequest{"x", {}}});
  EXPECT_GE(std::chrono::steady_clock::now() - start, 40ms);
  s.set_latency(0ms, 0ms);
  const auto fast = std::chrono::steady_clock::now();
  (void)s.get_many_by_id({de::GetByIdRequest{"x", {}}});
  EXPECT_LT(std::chrono::steady_clock::now() - fast, 20ms);
}

TEST(FaultInjectionStorage, RejectsInvalidSettings) {
  de::InMemoryTaskExecutionsStorage memory;
  EXPECT_THROW(de::FaultInjectingTaskExecutionsStorage(memory, {.failure_rate = 1.5}),
               de::DurableExecutionError);
  de::FaultInjectingTaskExecutionsStorage s{memory};
  EXPECT_THROW(s.set_failure_rate(-0.1), de::DurableExecutionError);
  EXPECT_THROW(s.set_latency(10ms, 5ms), de::DurableExecutionError);
}

}  // namespace
