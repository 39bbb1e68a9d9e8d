// Reasonable code compiles and does what it says (issue 14, items 2 and 3): a run returning a
// string literal has a std::string output, an `int` is accepted where it converts without
// narrowing, tasks without input take enqueue options, a recursive task names itself through a
// default-constructed Task, and an execution's input reads back typed with input_as<I>().
// What must not compile is in tests/compile_fail/.

#include <cstdint>
#include <type_traits>

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using ExecutorTypedApi = ExecutorTest;

struct Point {
  int x = 0;
  int y = 0;
  friend bool operator==(const Point&, const Point&) = default;
};
void to_json(nlohmann::json& j, const Point& p) { j = nlohmann::json{{"x", p.x}, {"y", p.y}}; }
void from_json(const nlohmann::json& j, Point& p) {
  p.x = j.at("x").get<int>();
  p.y = j.at("y").get<int>();
}

// Non-narrowing conversions are accepted ...
static_assert(InputFor<int, std::int64_t>);
static_assert(InputFor<int, double>);
static_assert(InputFor<float, double>);
static_assert(InputFor<std::int32_t, std::int64_t>);
static_assert(InputFor<std::uint32_t, std::int64_t>);
static_assert(InputFor<short, float>);
static_assert(InputFor<const char (&)[6], std::string>);
// ... narrowing ones are not (each has a compile-fail case as a user would write it).
static_assert(!InputFor<double, int>);
static_assert(!InputFor<std::int64_t, std::int32_t>);
static_assert(!InputFor<std::int64_t, double>);
static_assert(!InputFor<int, float>);
static_assert(!InputFor<double, float>);
static_assert(!InputFor<int, unsigned>);
static_assert(!InputFor<bool, int>);
static_assert(!InputFor<int, bool>);
static_assert(!InputFor<std::string, int>);

TEST_P(ExecutorTypedApi, ARunReturningAStringLiteralHasAStdStringOutput) {
  DurableExecutor executor{storage(), fast_options()};
  auto hello = executor.task({.id = "hello", .timeout = 1s}, [] { return "hello"; });
  static_assert(std::is_same_v<decltype(hello), Task<Empty, std::string>>);
  auto named = executor.task({.id = "named", .timeout = 1s},
                             [](const int& n) { return n > 0 ? "positive" : "not positive"; });
  static_assert(std::is_same_v<decltype(named), Task<int, std::string>>);
  auto parent = executor.parent_task(
      {.id = "parent", .timeout = 1s},
      [&](const int& n) {
        return ParentRunResult<int>{n, {child(named, n)}};
      },
      [](const ParentTaskOutput<int>& p) {
        return p.children.at(0).output_as<std::string>() == "positive" ? "yes" : "no";
      });
  static_assert(std::is_same_v<decltype(parent), Task<int, std::string>>);
  executor.start();
  EXPECT_EQ(executor.enqueue_task(hello).wait_and_get_finished_execution(bounded_wait()).output,
            "hello");
  EXPECT_EQ(executor.enqueue_task(named, 3).wait_and_get_finished_execution(bounded_wait()).output,
            "positive");
  EXPECT_EQ(executor.enqueue_task(parent, 3).wait_and_get_finished_execution(bounded_wait()).output,
            "yes");
}

TEST_P(ExecutorTypedApi, AnIntIsAcceptedForInt64AndDoubleInputsAndOutputs) {
  DurableExecutor executor{storage(), fast_options()};
  auto twice =
      executor.task({.id = "twice", .timeout = 1s}, [](const std::int64_t& x) { return 2 * x; });
  auto half = executor.task({.id = "half", .timeout = 1s}, [](const double& x) { return x / 2; });
  auto sum = executor.parent_task(
      {.id = "sum", .timeout = 1s},
      [&] {
        return ParentRunResult<Empty>{{}, {child(twice, 4), child(half, 3)}};
      },
      [](const ParentTaskOutput<Empty>& p) {
        return static_cast<double>(p.children.at(0).output_as<std::int64_t>()) +
               p.children.at(1).output_as<double>();
      });
  auto counter = executor.sleeping_task<std::int64_t>({.id = "counter", .timeout = 1h});
  executor.start();
  const int n = 21;
  EXPECT_EQ(executor.enqueue_task(twice, 21).wait_and_get_finished_execution(bounded_wait()).output,
            42);
  EXPECT_EQ(executor.enqueue_task(twice, n).wait_and_get_finished_execution(bounded_wait()).output,
            42);
  EXPECT_EQ(executor.enqueue_task(half, 3).wait_and_get_finished_execution(bounded_wait()).output,
            1.5);
  EXPECT_EQ(executor.enqueue_task(sum).wait_and_get_finished_execution(bounded_wait()).output, 9.5);
  auto sleeping = executor.enqueue_task(counter, "c1");
  EXPECT_EQ(executor.wakeup_sleeping_task_execution(counter, "c1", 5).output, 5);
  EXPECT_EQ(sleeping.get_execution().output, std::int64_t{5});
}

TEST_P(ExecutorTypedApi, ATaskWithoutInputTakesEnqueueOptions) {
  DurableExecutor executor{storage(), fast_options()};
  auto tick = executor.task({.id = "tick", .timeout = 1s}, [] { return 1; });
  auto delayed = executor.enqueue_task(tick, {.sleep_before_run = 1h, .timeout = 5s});
  auto e = delayed.get_execution();
  EXPECT_EQ(e.sleep_before_run, 1h);
  EXPECT_EQ(e.timeout, 5s);
  executor.start();
  auto soon = executor.enqueue_task(tick, {.timeout = 2s});
  auto done = soon.wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(done.output, 1);
  EXPECT_EQ(done.timeout, 2s);
  EXPECT_EQ(delayed.get_execution().status, TaskExecutionStatus::ready);  // an hour to go
}

TEST_P(ExecutorTypedApi, InputAsDecodesTheStoredInput) {
  DurableExecutor executor{storage(), fast_options()};
  auto norm = executor.task({.id = "norm", .timeout = 1s},
                            [](const Point& p) { return p.x * p.x + p.y * p.y; });
  auto tick = executor.task({.id = "tick", .timeout = 1s}, [] {});
  auto webhook = executor.sleeping_task<int>({.id = "webhook", .timeout = 1h});
  executor.start();
  auto e = executor.enqueue_task(norm, Point{3, 4}).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.output, 25);
  EXPECT_EQ(e.input_as<Point>(), (Point{3, 4}));
  EXPECT_EQ(nlohmann::json::parse(e.input), (nlohmann::json{{"x", 3}, {"y", 4}}));  // raw text
  EXPECT_EQ(e.input_as<nlohmann::json>()["y"], 4);
  try {
    (void)e.input_as<std::string>();
    ADD_FAILURE() << "an object read as a string";
  } catch (const DurableExecutionError& error) {
    EXPECT_NE(std::string{error.what()}.find("Error deserializing value"), std::string::npos)
        << error.what();
  }
  auto empty = executor.enqueue_task(tick).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(empty.input_as<Empty>(), Empty{});
  // A sleeping task's input is its unique id, verbatim.
  auto sleeping = executor.enqueue_task(webhook, "order_7").get_execution();
  EXPECT_EQ(sleeping.sleeping_task_unique_id, "order_7");
  EXPECT_EQ(sleeping.input, "null");
  EXPECT_EQ(sleeping.input_as<std::string>(), "order_7");
  EXPECT_THROW((void)sleeping.input_as<int>(), DurableExecutionError);
}

TEST_P(ExecutorTypedApi, ARecursiveParentTaskDeclaresChildrenOfItself) {
  // Declared before the executor, so that it outlives the threads that run `fib`, and
  // assigned before start(), so that every run sees the registered task.
  Task<int, std::int64_t> fib;
  DurableExecutor executor{storage(), fast_options()};
  fib = executor.parent_task(
      {.id = "fib", .timeout = 5s},
      [&fib](const int& n) {
        ParentRunResult<std::int64_t> r{n < 2 ? n : 0, {}};
        if (n >= 2) r.children = {child(fib, n - 1), child(fib, n - 2)};
        return r;
      },
      [](const ParentTaskOutput<std::int64_t>& p) {
        std::int64_t total = p.output;
        for (const auto& c : p.children) total += c.output_as<std::int64_t>();
        return total;
      });
  executor.start();
  auto e = executor.enqueue_task(fib, 7).wait_and_get_finished_execution(bounded_wait(30s));
  ASSERT_EQ(e.status, TaskExecutionStatus::completed) << (e.error ? e.error->message : "");
  EXPECT_EQ(e.output, 13);
  EXPECT_EQ(e.children->size(), 2U);
}

TEST_P(ExecutorTypedApi, ARecursiveTaskEnqueuesItself) {
  Task<int, int> countdown;
  Permits ran;
  DurableExecutor executor{storage(), fast_options()};
  countdown = executor.task({.id = "countdown", .timeout = 1s}, [&](const int& n) {
    if (n > 0) (void)executor.enqueue_task(countdown, n - 1);
    ran.release(1);
    return n;
  });
  executor.start();
  (void)executor.enqueue_task(countdown, 4);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(ran.acquire()) << "run " << i;
}

TEST_P(ExecutorTypedApi, AnUnsetTaskIsNotFound) {
  Task<int, int> unset;
  EXPECT_EQ(unset.id(), "");
  DurableExecutor executor{storage(), fast_options()};
  auto parent = executor.parent_task({.id = "parent", .timeout = 1s}, [&](const int& n) {
    return ParentRunResult<int>{n, {child(unset, n)}};
  });
  executor.start();
  EXPECT_THROW((void)executor.enqueue_task(unset, 1), DurableExecutionNotFoundError);
  auto e = executor.enqueue_task(parent, 1).wait_and_get_finished_execution(bounded_wait());
  EXPECT_EQ(e.status, TaskExecutionStatus::failed);
  ASSERT_TRUE(e.error.has_value());
  EXPECT_EQ(e.error->error_type, ErrorType::not_found) << e.error->message;
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorTypedApi, ::testing::ValuesIn(all_storage_factories()),
                         factory_name);

}  // namespace
}  // namespace durable_execution::testing
