// Every hand-written JSON writer must write exactly nlohmann::json::dump()'s text for the same
// value: the string-token writer (json_text.hpp: append_json_string, JsonCodec<std::string>) and
// the writer of a parent's result (engine/transitions.hpp: parent_result_json). Properties over
// many generated values: unicode, control characters, invalid UTF-8 where the writer takes it,
// and nested values. The seed is printed, so a failure can be replayed.

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "durable_execution/detail/json_text.hpp"
#include "durable_execution/task_execution.hpp"
#include "engine/transitions.hpp"

namespace de = durable_execution;
namespace dd = durable_execution::detail;
using nlohmann::json;

namespace {

class Gen {
 public:
  explicit Gen(std::uint64_t seed) : rng_(seed) {}

  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }

  /** Text of up to `max` pieces: plain ASCII, escapes, controls, UTF-8 and, if asked, bytes that
   * are not UTF-8. */
  std::string text(std::size_t max, bool invalid_utf8) {
    static constexpr std::array<const char*, 12> kUtf8{
        "\xC3\xA9",     "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xE4\xB8\xAD",
        "\xEF\xBF\xBD", "\xC2\x80",     "\xDF\xBF",         "\xE0\xA0\x80",
        "\xED\x9F\xBF", "\xEE\x80\x80", "\xF4\x8F\xBF\xBF", "\xE2\x80\xA8"};
    static constexpr std::array<const char*, 8> kInvalid{
        "\x80", "\xC3", "\xFF", "\xC0\xAF", "\xED\xA0\x80", "\xF5\x80", "\xE2\x82", "\xF0\x9F\x98"};
    std::string out;
    const auto n = pick(max + 1);
    for (std::size_t i = 0; i < n; ++i) {
      switch (pick(invalid_utf8 ? 7 : 6)) {
        case 0:
        case 1:
          out += static_cast<char>(0x20 + pick(0x5F));  // printable ASCII and 0x7F
          break;
        case 2:
          out += "\"\\/"[pick(3)];
          break;
        case 3:
          out += static_cast<char>(pick(0x20));  // controls, \b \f \n \r \t included
          break;
        case 4:
        case 5:
          out += kUtf8[pick(kUtf8.size())];
          break;
        default:
          out += kInvalid[pick(kInvalid.size())];
      }
    }
    return out;
  }

  json value(std::size_t depth) {
    switch (depth == 0 ? pick(6) : pick(8)) {
      case 0:
        return nullptr;
      case 1:
        return pick(2) == 0;
      case 2:
        return static_cast<std::int64_t>(rng_()) >> pick(64);
      case 3:
        return std::uniform_real_distribution<double>(-1e6, 1e6)(rng_);
      case 4:
        return rng_() >> pick(64);
      case 5:
        return text(12, false);
      case 6: {
        json a = json::array();
        for (std::size_t i = pick(5); i > 0; --i) a.push_back(value(depth - 1));
        return a;
      }
      default: {
        json o = json::object();
        for (std::size_t i = pick(5); i > 0; --i) o[text(6, false)] = value(depth - 1);
        return o;
      }
    }
  }

 private:
  std::mt19937_64 rng_;
};

std::uint64_t seed() {
  const auto s = std::random_device{}();
  std::cout << "seed " << s << '\n';
  return s;
}

constexpr int kRounds = 3000;

TEST(JsonWriters, StringTokensAreNlohmannsText) {
  Gen gen{seed()};
  for (int i = 0; i < kRounds; ++i) {
    const auto s = gen.text(24, i % 3 == 0);
    std::string expected;
    bool throws = false;
    try {
      expected = json(s).dump();
    } catch (const json::type_error&) {
      throws = true;  // invalid UTF-8: the writers refuse it as nlohmann does
    }
    std::string out = "x";
    if (throws) {
      EXPECT_THROW(dd::append_json_string(out, s), json::type_error) << s;
      EXPECT_THROW((void)dd::JsonCodec<std::string>::serialize(s), json::type_error) << s;
      continue;
    }
    dd::append_json_string(out, s);
    ASSERT_EQ(out, "x" + expected) << s;
    ASSERT_EQ(dd::JsonCodec<std::string>::serialize(s), expected) << s;
    // And the readers' fast path gives the string back.
    ASSERT_EQ(dd::JsonCodec<std::string>::deserialize(expected), s);
    ASSERT_EQ(dd::parse_json_value(expected), json(s));
  }
}

TEST(JsonWriters, ParentResultIsNlohmannsText) {
  Gen gen{seed()};
  static constexpr std::array kStatuses{
      de::TaskExecutionStatus::completed, de::TaskExecutionStatus::failed,
      de::TaskExecutionStatus::timed_out, de::TaskExecutionStatus::cancelled,
      de::TaskExecutionStatus::finalize_failed};
  for (int i = 0; i < kRounds / 3; ++i) {
    // The views point into these.
    const auto run_output = gen.value(3);
    const std::string run_output_text = run_output.dump();
    struct Child {
      std::string task_id, execution_id, output;
      json output_value;
    };
    std::vector<Child> children(gen.pick(6));
    dd::ParentResultView view{run_output_text, {}};
    json expected_children = json::array();
    for (auto& c : children) {
      c.task_id = gen.text(10, false);
      c.execution_id = gen.text(10, false);
      const auto status = kStatuses[gen.pick(kStatuses.size())];
      json entry{{"taskId", c.task_id},
                 {"executionId", c.execution_id},
                 {"status", de::to_string(status)}};
      dd::ChildResultView v{c.task_id, c.execution_id, status, std::nullopt, std::nullopt};
      if (status == de::TaskExecutionStatus::completed) {
        c.output_value = gen.value(4);
        c.output = c.output_value.dump();
        v.output = c.output;
        entry["output"] = c.output_value;
      } else {
        // A message may hold any bytes (a binary wake-up message): replaced, as nlohmann does.
        v.error = de::StoredError{static_cast<de::ErrorType>(gen.pick(4)), gen.pick(2) == 0,
                                  gen.pick(2) == 0, gen.text(16, true)};
        entry["error"] = *v.error;
      }
      view.children.push_back(v);
      expected_children.push_back(std::move(entry));
    }
    const json expected{{"output", run_output}, {"children", expected_children}};
    ASSERT_EQ(dd::parent_result_json(view),
              expected.dump(-1, ' ', false, json::error_handler_t::replace));
  }
}

}  // namespace
