// Unit tests of the poison limits (issue 10, items 4a, 6, 7): the nesting scan of JSON text, the
// iterative check of JSON values, the typed codec's refusals, saturating time arithmetic and the
// strict integer decoding of the record's JSON forms.

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "durable_execution/detail/json_limits.hpp"
#include "durable_execution/detail/saturating_time.hpp"
#include "durable_execution/limits.hpp"
#include "durable_execution/task.hpp"
#include "durable_execution/task_execution.hpp"

namespace de = durable_execution;
using namespace std::chrono_literals;

namespace {

std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

/** A value nested `depth` deep, built by the parser (which does not recurse). */
nlohmann::json deep_value(std::size_t depth) { return nlohmann::json::parse(nested_arrays(depth)); }

constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
constexpr auto kMin = std::numeric_limits<std::int64_t>::min();

}  // namespace

// ---- nesting of JSON text -----------------------------------------------------------------------

TEST(JsonNesting, TextScanCountsArraysAndObjectsButNotBracketsInStrings) {
  using de::detail::json_nesting_exceeds;
  EXPECT_FALSE(json_nesting_exceeds(nested_arrays(10), 10));
  EXPECT_TRUE(json_nesting_exceeds(nested_arrays(11), 10));
  EXPECT_FALSE(json_nesting_exceeds(R"({"a":[{"b":[1,2,{}]}]})", 5));
  EXPECT_TRUE(json_nesting_exceeds(R"({"a":[{"b":[1,2,{}]}]})", 4));
  // Brackets inside strings, escaped quotes included, are text.
  const std::string in_string = "[\"" + std::string(100, '[') + "\\\"" + std::string(100, '{') +
                                "\",\"\\\\\",[" + std::string(50, ' ') + "]]";
  EXPECT_FALSE(json_nesting_exceeds(in_string, 2));
  EXPECT_TRUE(json_nesting_exceeds(in_string, 1));
  // Long strings (past the byte-by-byte prefix): escaped quotes and backslash runs.
  const std::string long_escapes = "[\"" + std::string(40, 'a') + "\\\"[[[" +
                                   std::string(30, '\\') + "\",\"" + std::string(25, 'b') +
                                   "\\\\\",[" + std::string(2000, ' ') + "]]";
  EXPECT_FALSE(json_nesting_exceeds(long_escapes, 2));
  EXPECT_TRUE(json_nesting_exceeds(long_escapes, 1));
  EXPECT_TRUE(nlohmann::json::accept(long_escapes));
  // Siblings do not add up: depth is nesting, not count.
  std::string wide = "[";
  for (int i = 0; i < 1000; ++i) wide += (i ? ",[]" : "[]");
  wide += "]";
  EXPECT_FALSE(json_nesting_exceeds(wide, 2));
  EXPECT_TRUE(json_nesting_exceeds(wide, 1));
  // Malformed text gets an answer without reading past its end.
  EXPECT_FALSE(json_nesting_exceeds("\"unterminated [[[[[[[[[[[[", 3));
  EXPECT_TRUE(json_nesting_exceeds("]]]]" + std::string(20, '['), 5));
  EXPECT_FALSE(json_nesting_exceeds("", 0));
}

TEST(JsonNesting, ValueCheckNeverRecursesPastTheLimit) {
  using de::detail::check_json_value;
  EXPECT_NO_THROW(check_json_value(deep_value(512), 512));
  EXPECT_THROW(check_json_value(deep_value(513), 512), std::domain_error);
  // 100,000 levels: an unbounded walk (or nlohmann's recursive copy and dump) would overflow the
  // stack; the check and the value's destruction do not recurse.
  const auto very_deep = deep_value(100'000);
  try {
    check_json_value(very_deep, de::max_serialized_nesting_depth);
    FAIL() << "a 100,000-deep value must be refused";
  } catch (const std::domain_error& e) {
    EXPECT_NE(std::string{e.what()}.find("nesting depth exceeds the maximum of 512"),
              std::string::npos)
        << e.what();
  }
  nlohmann::json objects = nlohmann::json::parse(R"({"a":{"b":{"c":[1,{"d":null}]}}})");
  EXPECT_NO_THROW(check_json_value(objects, 5));
  EXPECT_THROW(check_json_value(objects, 4), std::domain_error);
}

TEST(JsonNesting, ValueCheckRefusesNonFiniteNumbersAnywhere) {
  using de::detail::check_json_value;
  for (const double bad : {std::nan(""), std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity()}) {
    EXPECT_THROW(check_json_value(nlohmann::json(bad), 10), std::domain_error);
    nlohmann::json nested = {{"a", {1, 2, {{"b", bad}}}}};
    EXPECT_THROW(check_json_value(nested, 10), std::domain_error);
  }
  EXPECT_NO_THROW(check_json_value(nlohmann::json{{"x", 1.5}, {"y", -0.0}}, 10));
}

// ---- the typed codec ----------------------------------------------------------------------------

TEST(TypedCodec, SerializingRefusesDeepValuesAndNonFiniteNumbersWithAClearError) {
  try {
    (void)de::detail::serialize_value(deep_value(100'000));
    FAIL() << "a 100,000-deep input must not serialize";
  } catch (const de::DurableExecutionError& e) {
    EXPECT_FALSE(e.is_retryable());
    EXPECT_NE(std::string{e.what()}.find("Error serializing value: nesting depth exceeds"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(de::detail::serialize_value(deep_value(512)), nested_arrays(512));
  try {
    (void)de::detail::serialize_value(std::nan(""));
    FAIL() << "NaN must not serialize (it would be stored as null)";
  } catch (const de::DurableExecutionError& e) {
    EXPECT_NE(std::string{e.what()}.find("NaN or infinite"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)de::detail::serialize_value(
                   std::vector<double>{1.0, std::numeric_limits<double>::infinity()}),
               de::DurableExecutionError);
  EXPECT_EQ(de::detail::serialize_value(2.5), "2.5");
}

TEST(TypedCodec, DeserializingRefusesStoredTextNestedTooDeepBeforeDecoding) {
  const auto deep = nested_arrays(100'000);
  try {
    (void)de::detail::deserialize_value<nlohmann::json>(deep);
    FAIL() << "a 100,000-deep stored value must not decode";
  } catch (const de::DurableExecutionError& e) {
    EXPECT_FALSE(e.is_retryable());
    EXPECT_NE(std::string{e.what()}.find("Error deserializing value: nesting depth exceeds the "
                                         "maximum of 1024"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW((void)de::detail::deserialize_value<std::vector<int>>(deep),
               de::DurableExecutionError);
  // Up to the stored limit, values decode (and compare) as usual.
  const auto at_limit = nested_arrays(de::max_stored_nesting_depth);
  EXPECT_EQ(de::detail::deserialize_value<nlohmann::json>(at_limit), deep_value(1024));
  // A string never nests: brackets in it are text, and no scan is needed.
  EXPECT_EQ(de::detail::deserialize_value<std::string>("\"[[[[\""), "[[[[");
}

TEST(TypedCodec, AViewOfACompletedRecordWhoseOutputDoesNotDecodeKeepsTheStatus) {
  de::TaskExecutionRecord r;
  r.task_id = "t";
  r.execution_id = "te_x";
  r.status = de::TaskExecutionStatus::completed;
  r.is_finished = true;
  r.output = "null";  // what a NaN output used to be stored as
  const auto view = de::TaskExecution<double>::from_record(r);
  EXPECT_EQ(view.status, de::TaskExecutionStatus::completed);
  EXPECT_FALSE(view.output.has_value());
  ASSERT_TRUE(view.output_error.has_value());
  EXPECT_FALSE(view.output_error->is_retryable);
  EXPECT_NE(view.output_error->message.find("Error deserializing value"), std::string::npos)
      << view.output_error->message;
  r.output = "2.5";
  const auto good = de::TaskExecution<double>::from_record(r);
  ASSERT_TRUE(good.output.has_value());
  EXPECT_EQ(*good.output, 2.5);
  EXPECT_FALSE(good.output_error.has_value());
}

// ---- saturating time arithmetic -----------------------------------------------------------------

TEST(SaturatingTime, SumsAndDifferencesClampAtTheInt64Limits) {
  using de::detail::saturating_add;
  using de::detail::saturating_sub;
  static_assert(saturating_add(std::int64_t{1}, std::int64_t{2}) == 3);
  static_assert(saturating_add(kMax, std::int64_t{1}) == kMax);
  static_assert(saturating_add(kMin, std::int64_t{-1}) == kMin);
  static_assert(saturating_sub(kMin, std::int64_t{1}) == kMin);
  static_assert(saturating_sub(kMax, std::int64_t{-1}) == kMax);
  static_assert(saturating_sub(std::int64_t{0}, kMin) == kMax);
  const auto now = de::from_unix_ms(1'750'000'000'000);
  EXPECT_EQ(de::to_unix_ms(saturating_add(now, std::chrono::milliseconds::max())), kMax);
  EXPECT_EQ(de::to_unix_ms(saturating_add(now, std::chrono::milliseconds::min())),
            1'750'000'000'000 + kMin);
  EXPECT_EQ(de::to_unix_ms(saturating_add(de::from_unix_ms(kMin), -1ms)), kMin);
  EXPECT_EQ(saturating_sub(de::from_unix_ms(kMin), now).count(), kMin);
  EXPECT_EQ(saturating_sub(de::from_unix_ms(kMax), de::from_unix_ms(-5)).count(), kMax);
  EXPECT_EQ(saturating_add(5ms, 7ms), 12ms);
}

TEST(SaturatingTime, SteadyDeadlinesClampToTheClocksRange) {
  using Clock = std::chrono::steady_clock;
  const auto now = Clock::now();
  EXPECT_EQ(de::detail::saturating_deadline(now, std::chrono::milliseconds::max()),
            Clock::time_point::max());
  EXPECT_EQ(de::detail::saturating_deadline(now, std::chrono::milliseconds{kMax / 2}),
            Clock::time_point::max());
  EXPECT_EQ(de::detail::saturating_deadline(now, std::chrono::milliseconds::min()),
            Clock::time_point::min());
  EXPECT_EQ(de::detail::saturating_deadline(now, 1500ms), now + 1500ms);
  EXPECT_EQ(de::detail::saturating_deadline(now, -3ms), now - 3ms);
  EXPECT_EQ(de::detail::saturating_deadline(now, de::max_duration), now + de::max_duration);
}

TEST(SaturatingTime, RetryDelaysStayWithinZeroAndTheMaximumDuration) {
  using de::detail::retry_delay;
  // An hour, times 10^99, and no max_delay: far beyond int64 as a double.
  const de::RetryOptions huge{100, 3'600'000ms, 10.0, std::nullopt};
  EXPECT_EQ(retry_delay(huge, 99), de::max_duration);
  EXPECT_EQ(retry_delay({1, 100ms, 2.0, std::nullopt}, 3), 800ms);
  EXPECT_EQ(retry_delay({1, 100ms, 2.0, 250ms}, 3), 250ms);
  EXPECT_EQ(retry_delay({1, 100ms, 1.0, std::nullopt}, 0), 100ms);
  // Options no validation would pass (a row written by another program): still a sane delay.
  EXPECT_EQ(retry_delay({1, -5ms, 2.0, std::nullopt}, 2), 0ms);
  EXPECT_EQ(retry_delay({1, 100ms, -3.0, std::nullopt}, 1), 0ms);
  EXPECT_EQ(retry_delay({1, 100ms, std::numeric_limits<double>::infinity(), std::nullopt}, 1),
            de::max_duration);
  EXPECT_EQ(retry_delay({1, 100ms, std::nan(""), std::nullopt}, 1), 0ms);
  EXPECT_EQ(retry_delay({1, std::chrono::milliseconds::max(), 1.0, std::nullopt}, 0),
            de::max_duration);
}

TEST(SaturatingTime, NewRecordsSaturateStartAndExpiry) {
  const auto now = de::from_unix_ms(1'750'000'000'000);
  de::NewTaskExecution n;
  n.task_id = "t";
  n.execution_id = "te_x";
  n.is_sleeping_task = true;
  n.sleep_before_run = std::chrono::milliseconds::max();
  n.timeout = std::chrono::milliseconds::max();
  const auto r = de::make_task_execution_record(now, n);
  EXPECT_EQ(de::to_unix_ms(r.start_at), kMax);
  ASSERT_TRUE(r.expires_at.has_value());
  EXPECT_EQ(de::to_unix_ms(*r.expires_at), kMax);
}

// ---- strict integers in the JSON forms ----------------------------------------------------------

TEST(StrictJsonIntegers, RetryOptionsRefuseNumbersTheirFieldsCannotHold) {
  auto parse = [](const char* text) { return nlohmann::json::parse(text).get<de::RetryOptions>(); };
  EXPECT_EQ(parse(R"({"maxAttempts":3,"baseDelayMs":100})").max_attempts, 3);
  EXPECT_EQ(parse(R"({"maxAttempts":3.0,"baseDelayMs":1e3})").base_delay, 1000ms);
  // A float beyond int64 used to be converted with undefined behaviour.
  EXPECT_THROW(parse(R"({"maxAttempts":1,"baseDelayMs":1e300})"), std::exception);
  EXPECT_THROW(parse(R"({"maxAttempts":1,"maxDelayMs":-1e19})"), std::exception);
  EXPECT_THROW(parse(R"({"maxAttempts":4294967296})"), std::exception);
  EXPECT_THROW(parse(R"({"maxAttempts":1.5})"), std::exception);
  EXPECT_THROW(parse(R"({"maxAttempts":"3"})"), std::exception);
  EXPECT_THROW(parse(R"({"maxAttempts":18446744073709551615})"), std::exception);
}
