#pragma once

// Guards on JSON that keep nlohmann's recursive algorithms (copy, dump, from_json, comparison)
// bounded: a nesting-depth scan of JSON text (cheap: no parse, and free for texts shorter than
// the limit), and a check of a JSON value before it is dumped (depth, and numbers that JSON
// cannot represent) that never recurses past the limit, however deep the value. Not API.

#include <cmath>
#include <cstddef>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

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
      // To the closing quote: short strings byte by byte, then the next quote not escaped by an
      // odd run of backslashes (memchr runs at memory speed; long strings are most of a large
      // document).
      bool closed = false;
      for (int i = 0; i < 16 && p < end; ++i) {
        const char d = *p++;
        if (d == '\\') {
          if (p < end) ++p;
        } else if (d == '"') {
          closed = true;
          break;
        }
      }
      while (!closed) {
        const void* found = std::memchr(p, '"', static_cast<std::size_t>(end - p));
        if (found == nullptr) return false;  // unterminated: the parser rejects it
        const char* quote = static_cast<const char*>(found);
        std::size_t backslashes = 0;
        for (const char* b = quote; b > p && b[-1] == '\\'; --b) ++backslashes;
        p = quote + 1;
        closed = backslashes % 2 == 0;
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
 * @brief Checks that a JSON value can be dumped and read back: it nests at most `limit` deep and
 * has no NaN or infinite number (nlohmann would write those as `null`, which then does not read
 * back as a number). Throws std::domain_error otherwise. The walk recurses, but never more than
 * `limit` + 1 levels, however deep the value is (a few dozen bytes of stack per level), and it
 * reads the containers directly (no nlohmann iterators): a fraction of the cost of the dump that
 * follows it.
 */
inline void check_json_value(const nlohmann::json& value, std::size_t limit) {
  struct Walk {
    std::size_t limit;
    void operator()(const nlohmann::json& v, std::size_t levels_left) const {
      switch (v.type()) {
        case nlohmann::json::value_t::array:
          if (levels_left == 0) throw std::domain_error(nesting_error_message(limit));
          for (const auto& element : v.get_ref<const nlohmann::json::array_t&>()) {
            (*this)(element, levels_left - 1);
          }
          break;
        case nlohmann::json::value_t::object:
          if (levels_left == 0) throw std::domain_error(nesting_error_message(limit));
          for (const auto& member : v.get_ref<const nlohmann::json::object_t&>()) {
            (*this)(member.second, levels_left - 1);
          }
          break;
        case nlohmann::json::value_t::number_float:
          if (!std::isfinite(v.get_ref<const double&>())) {
            throw std::domain_error("a number is NaN or infinite, which JSON cannot represent");
          }
          break;
        default:
          break;
      }
    }
  };
  Walk{limit}(value, limit);
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
