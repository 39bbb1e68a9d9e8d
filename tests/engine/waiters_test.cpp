// Waiters: a wait is woken for its own execution only, by a stop request, or at its deadline.

#include "engine/waiters.hpp"

#include <gtest/gtest.h>

#include <array>
#include <future>

namespace dd = durable_execution::detail;
using namespace std::chrono_literals;

TEST(Waiters, ANotificationForItsExecutionWakesAWait) {
  dd::Waiters waiters;
  dd::Waiters::Registration wait{waiters, "a"};
  EXPECT_TRUE(waiters.any());
  waiters.notify(std::string{"a"});  // before the wait: kept until it waits
  EXPECT_TRUE(wait.wait_until(dd::SteadyClock::now() + 60s, {}));
}

TEST(Waiters, OtherExecutionsDoNotWakeIt) {
  dd::Waiters waiters;
  dd::Waiters::Registration wait{waiters, "a"};
  waiters.notify(std::array{std::string_view{"b"}, std::string_view{"c"}});
  EXPECT_FALSE(wait.wait_until(dd::SteadyClock::now() + 20ms, {}));
}

TEST(Waiters, NotifyAllWakesEveryWait) {
  dd::Waiters waiters;
  dd::Waiters::Registration a{waiters, "a"};
  dd::Waiters::Registration b{waiters, "b"};
  waiters.notify_all();
  EXPECT_TRUE(a.wait_until(dd::SteadyClock::now() + 60s, {}));
  EXPECT_TRUE(b.wait_until(dd::SteadyClock::now() + 60s, {}));
}

TEST(Waiters, AStopRequestEndsTheWait) {
  dd::Waiters waiters;
  dd::Waiters::Registration wait{waiters, "a"};
  std::stop_source stop;
  auto woken = std::async(std::launch::async, [&] {
    return wait.wait_until(dd::SteadyClock::now() + 60s, stop.get_token());
  });
  stop.request_stop();
  ASSERT_EQ(woken.wait_for(30s), std::future_status::ready);
  EXPECT_TRUE(woken.get());
}

TEST(Waiters, AWaitFromAnotherThreadIsWoken) {
  dd::Waiters waiters;
  dd::Waiters::Registration wait{waiters, "a"};
  auto woken = std::async(std::launch::async,
                          [&] { return wait.wait_until(dd::SteadyClock::now() + 60s, {}); });
  waiters.notify(std::string{"a"});
  ASSERT_EQ(woken.wait_for(30s), std::future_status::ready);
  EXPECT_TRUE(woken.get());
}

TEST(Waiters, RegistrationsUnregisterWhenDestroyed) {
  dd::Waiters waiters;
  { dd::Waiters::Registration wait{waiters, "a"}; }
  EXPECT_FALSE(waiters.any());
  waiters.notify(std::string{"a"});  // nobody to wake: no dangling pointer touched
}
