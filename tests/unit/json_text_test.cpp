// The JSON fast paths must give exactly what nlohmann gives: the same values for every text the
// engine writes or a user could store, and the same errors for everything else.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "durable_execution/durable_executor.hpp"

namespace de = durable_execution;
using de::detail::deserialize_value;
using de::detail::serialize_value;

namespace {

struct Point {
  int x = 0;
  int y = 0;
  friend bool operator==(const Point&, const Point&) = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Point, x, y)

// The error message a deserialization gives, or "" if it succeeds.
template <class T>
std::string deserialize_error(const std::string& text) {
  try {
    (void)deserialize_value<T>(text);
    return "";
  } catch (const de::DurableExecutionError& e) {
    return e.what();
  }
}

// What the reference path (nlohmann alone) makes of the text, as the same kind of message.
template <class T>
std::string nlohmann_error(const std::string& text) {
  try {
    (void)nlohmann::json::parse(text).get<T>();
    return "";
  } catch (const de::DurableExecutionError& e) {  // passed through unwrapped, as by the executor
    return e.what();
  } catch (const std::exception& e) {
    return std::string{"Error deserializing value: "} + e.what();
  }
}

TEST(JsonText, StringsRoundTripLikeNlohmann) {
  const std::vector<std::string> values{
      "",       "plain text",          "with \"quotes\"", "back\\slash", "tab\there",
      "\n\r\b", std::string{"\0x", 2}, "caf\xC3\xA9",     "~ and \x7F",  "{\"not\":\"json\"}",
  };
  for (const auto& v : values) {
    const auto text = serialize_value(v);
    EXPECT_EQ(text, nlohmann::json(v).dump()) << v;
    EXPECT_EQ(deserialize_value<std::string>(text), v) << text;
  }
}

TEST(JsonText, StringTextsOutsideTheFastPathStillParse) {
  EXPECT_EQ(deserialize_value<std::string>(R"(  "padded"  )"), "padded");
  EXPECT_EQ(deserialize_value<std::string>(R"("\u00e9\n")"), "\xC3\xA9\n");
  for (const std::string bad :
       {R"("unterminated)", R"(42)", R"(null)", "\"caf\xC3\"", R"("a" x)"}) {
    const auto error = deserialize_error<std::string>(bad);
    EXPECT_FALSE(error.empty()) << bad;
    EXPECT_EQ(error, nlohmann_error<std::string>(bad)) << bad;
  }
  EXPECT_THROW((void)serialize_value(std::string{"\xFF"}), de::DurableExecutionError);
}

TEST(JsonText, CursorSplitsValuesOfEveryType) {
  de::detail::JsonCursor in{
      R"( {"a": [1, {"b": "]}\""}], "n": -1.5e3, "t": true, "s": "x\"y", "o": {}} )"};
  std::vector<std::string> seen;
  in.object([&](std::string_view key) {
    seen.push_back(std::string{key} + "=" + std::string{in.value()});
  });
  EXPECT_TRUE(in.at_end());
  EXPECT_EQ(seen, (std::vector<std::string>{R"(a=[1, {"b": "]}\""}])", "n=-1.5e3", "t=true",
                                            R"(s="x\"y")", "o={}"}));
}

TEST(JsonText, CursorRejectsTruncatedText) {
  for (const std::string bad : {R"({"a": [1, 2)", R"({"a": "x)", R"({"a": })", R"({"a" 1})"}) {
    de::detail::JsonCursor in{bad};
    EXPECT_THROW(in.object([&](std::string_view) { (void)in.value(); }),
                 de::detail::JsonCursor::Malformed)
        << bad;
  }
}

// The finalize input as the engine writes it, and as a user (or another version) could.
TEST(JsonText, ParentTaskOutputMatchesNlohmann) {
  const std::vector<std::string> texts{
      R"({"children":[],"output":"p"})",
      R"({"children":[{"executionId":"te_1","output":{"x":1,"y":2},"status":"completed","taskId":"c"},)"
      R"({"executionId":"te_2","error":{"errorType":"generic","isRetryable":false,"isInternal":false,"message":"boom"},"status":"failed","taskId":"c"}],"output":"p"})",
      // Other key order, whitespace, unknown members, escapes and UTF-8 in strings.
      R"( { "output" : "p\u00e9" , "extra": [1,{"k":"]"}], "children" : [ { "taskId" : "c\"q" ,)"
      R"( "status" : "timed_out", "executionId" : "te_3", "more": null } ] } )",
      // Duplicate members: the last one wins, as in nlohmann.
      R"({"children":[{"executionId":"a","status":"completed","taskId":"c","output":1}],"children":[],"output":"p","output":"q"})",
  };
  for (const auto& text : texts) {
    const auto fast = deserialize_value<de::ParentTaskOutput<std::string>>(text);
    const auto slow = nlohmann::json::parse(text).get<de::ParentTaskOutput<std::string>>();
    EXPECT_EQ(nlohmann::json(fast), nlohmann::json(slow)) << text;
  }
}

TEST(JsonText, ParentTaskOutputErrorsMatchNlohmann) {
  using Output = de::ParentTaskOutput<Point>;
  const std::vector<std::string> bad{
      R"({"children":[]})",           // no output
      R"({"output":{"x":1,"y":2}})",  // no children
      R"({"children":[{"executionId":"a","status":"completed"}],"output":{"x":1,"y":2}})",
      R"({"children":[{"executionId":"a","status":"bogus","taskId":"c"}],"output":{"x":1,"y":2}})",
      R"({"children":[],"output":"not a point"})",
      R"({"children":[],"output":{"x":1,"y":2}} trailing)",
      R"({"children":[],"output":{"x":1,"y":2})",
  };
  for (const auto& text : bad) {
    const auto error = deserialize_error<Output>(text);
    EXPECT_FALSE(error.empty()) << text;
    EXPECT_EQ(error, nlohmann_error<Output>(text)) << text;
  }
  const auto ok = deserialize_value<Output>(R"({"children":[],"output":{"y":2,"x":1}})");
  EXPECT_EQ(ok.output, (Point{1, 2}));
}

TEST(JsonText, ParentTaskOutputWithoutOutputType) {
  const auto p = deserialize_value<de::ParentTaskOutput<de::Empty>>(
      R"({"children":[{"executionId":"a","output":null,"status":"completed","taskId":"c"}],"output":null})");
  ASSERT_EQ(p.children.size(), 1U);
  EXPECT_TRUE(p.children[0].is_completed());
  EXPECT_EQ(p.children[0].output, nlohmann::json(nullptr));
}

}  // namespace
