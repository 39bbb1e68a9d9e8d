#pragma once

// Guards on JSON that keep nlohmann's recursive algorithms (copy, dump, from_json, comparison)
// bounded: a nesting-depth scan of JSON text (cheap: no parse, and free for texts shorter than
// the limit), and an iterative check of a JSON value before it is dumped (depth, and numbers
// that JSON cannot represent). Not API.

#include <cmath>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "durable_execution/limits.hpp"

namespace durable_execution::detail {

/**
 * @brief Whether the arrays and objects of JSON text nest deeper than `limit`. Strings are
 * skipped (escapes honoured), so brackets inside them do not count. Malformed text gets some
 * answer; the parser rejects it anyway, and nlohmann's parser itself does not recurse.
 */
[[nodiscard]] inline bool json_nesting_exceeds(std::string_view text, std::size_t limit) noexcept {
  if (text.size() <= limit) return false;  // each level takes at least one byte
  std::size_t depth = 0;
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end) {
    const char c = *p++;
    if (c == '"') {
      while (p < end) {
        const char d = *p++;
        if (d == '\\') {
          if (p < end) ++p;
        } else if (d == '"') {
          break;
        }
      }
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

/** @brief The message of a value nested deeper than `limit`. */
[[nodiscard]] inline std::string nesting_error_message(std::size_t limit) {
  return "nesting depth exceeds the maximum of " + std::to_string(limit) +
         " levels of arrays and objects";
}

/**
 * @brief Throws std::domain_error if JSON text nests deeper than `limit` (callers add their
 * prefix, such as "Error deserializing value: ").
 */
inline void check_json_text_nesting(std::string_view text, std::size_t limit) {
  if (json_nesting_exceeds(text, limit)) throw std::domain_error(nesting_error_message(limit));
}

/**
 * @brief Checks, without recursion, that a JSON value can be dumped and read back: it nests at
 * most `limit` deep and has no NaN or infinite number (nlohmann would write those as `null`,
 * which then does not read back as a number). Throws std::domain_error otherwise.
 */
inline void check_json_value(const nlohmann::json& value, std::size_t limit) {
  auto check_scalar = [](const nlohmann::json& v) {
    if (v.is_number_float() && !std::isfinite(v.get_ref<const double&>())) {
      throw std::domain_error("a number is NaN or infinite, which JSON cannot represent");
    }
  };
  if (!value.is_structured()) {
    check_scalar(value);
    return;
  }
  // Depth-first over (container, next element) frames: memory grows with depth, not size.
  struct Frame {
    nlohmann::json::const_iterator next;
    nlohmann::json::const_iterator end;
  };
  std::vector<Frame> stack;
  stack.push_back({value.cbegin(), value.cend()});
  while (!stack.empty()) {
    auto& top = stack.back();
    if (top.next == top.end) {
      stack.pop_back();
      continue;
    }
    const nlohmann::json& v = *top.next;
    ++top.next;
    if (v.is_structured()) {
      if (stack.size() >= limit) throw std::domain_error(nesting_error_message(limit));
      stack.push_back({v.cbegin(), v.cend()});  // may reallocate: `top` is not used after
    } else {
      check_scalar(v);
    }
  }
}

/**
 * @brief Parses JSON text read back from storage, refusing (std::domain_error) text nested
 * deeper than max_stored_nesting_depth before anything recursive touches it.
 */
[[nodiscard]] inline nlohmann::json parse_stored_json(std::string_view text) {
  check_json_text_nesting(text, max_stored_nesting_depth);
  return nlohmann::json::parse(text.begin(), text.end());
}

}  // namespace durable_execution::detail
