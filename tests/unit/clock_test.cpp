// Clocks: the system clock, and the manual clock tests advance instead of sleeping.

#include "durable_execution/clock.hpp"

#include <gtest/gtest.h>

#include <atomic>

namespace de = durable_execution;
using namespace std::chrono_literals;

TEST(Clock, TheSystemClockReadsTheSystemsTime) {
  const auto clock = de::SystemClock::instance();
  const auto before = de::now_timestamp();
  const auto t = clock->now();
  EXPECT_GE(t, before);
  EXPECT_LE(t, de::now_timestamp());
  EXPECT_EQ(clock->subscribe_to_jumps([] {}), 0U);  // it never jumps
  EXPECT_EQ(de::SystemClock::instance(), clock);
}

TEST(Clock, AManualClockMovesOnlyWhenAdvanced) {
  const de::Timestamp start{std::chrono::milliseconds{1'000'000}};
  de::ManualClock clock{start};
  const auto steady = clock.steady_now();
  EXPECT_EQ(clock.now(), start);
  clock.advance(1h);
  EXPECT_EQ(clock.now(), start + 1h);
  EXPECT_EQ(clock.steady_now(), steady + 1h);
  clock.advance(0ms);
  EXPECT_EQ(clock.now(), start + 1h);
  EXPECT_THROW(clock.advance(-1ms), de::DurableExecutionError);
  EXPECT_EQ(clock.now(), start + 1h);
}

TEST(Clock, AdvancingWakesSubscribersUntilTheyUnsubscribe) {
  de::ManualClock clock;
  std::atomic<int> calls{0};
  const auto id = clock.subscribe_to_jumps([&] { ++calls; });
  EXPECT_NE(id, 0U);
  clock.advance(1ms);
  clock.advance(1ms);
  EXPECT_EQ(calls.load(), 2);
  clock.unsubscribe_from_jumps(id);
  clock.advance(1ms);
  EXPECT_EQ(calls.load(), 2);
}
