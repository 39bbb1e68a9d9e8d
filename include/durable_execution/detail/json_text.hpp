#pragma once

// Fast paths for JSON the engine reads and writes on every run: plain strings, and the scanning
// of documents whose shape the engine knows (a finalize step's input). Anything outside a fast
// path goes to nlohmann, so results and error messages stay nlohmann's. Not API.

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "durable_execution/detail/json_limits.hpp"

namespace durable_execution::detail {

/** @brief Whether `text` needs no escaping inside a JSON string: printable ASCII, no `"` or `\`. */
[[nodiscard]] inline bool is_plain_json_text(std::string_view text) noexcept {
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c > 0x7E || c == '"' || c == '\\') return false;
  }
  return true;
}

/** @brief The content of `raw` if it is a string token that needs no unescaping. */
[[nodiscard]] inline std::optional<std::string_view> plain_json_string(std::string_view raw) {
  if (raw.size() < 2 || raw.front() != '"' || raw.back() != '"') return std::nullopt;
  const auto inner = raw.substr(1, raw.size() - 2);
  if (!is_plain_json_text(inner)) return std::nullopt;
  return inner;
}

/**
 * @brief Appends `text` as a JSON string token, exactly as nlohmann::json(text).dump() writes it
 * (and throws as it does on invalid UTF-8). The one writer of string tokens: plain text is
 * quoted as is, anything else is left to nlohmann.
 */
inline void append_json_string(std::string& out, std::string_view text) {
  if (is_plain_json_text(text)) {
    out.reserve(out.size() + text.size() + 2);
    out += '"';
    out += text;
    out += '"';
  } else {
    out += nlohmann::json(std::string{text}).dump();
  }
}

/**
 * @brief A forward-only reader over JSON text. It splits a document into raw value slices
 * without building a DOM; the slices are parsed (and so validated) by whoever reads them. It
 * throws Malformed wherever the text is not what it expects; callers then fall back to
 * nlohmann, which accepts or rejects the text with its own messages.
 */
class JsonCursor {
 public:
  struct Malformed {};

  explicit JsonCursor(std::string_view text) noexcept : text_(text) {}

  /** Consumes `c` (after whitespace) if it comes next. */
  bool consume(char c) noexcept {
    skip_whitespace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void expect(char c) {
    if (!consume(c)) throw Malformed{};
  }

  [[nodiscard]] bool at_end() noexcept {
    skip_whitespace();
    return pos_ == text_.size();
  }

  /** A string token, quotes included. */
  std::string_view string_token() {
    skip_whitespace();
    const auto start = pos_;
    if (pos_ >= text_.size() || text_[pos_] != '"') throw Malformed{};
    for (++pos_; pos_ < text_.size(); ++pos_) {
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '\\') {
        ++pos_;
      } else if (c == '"') {
        ++pos_;
        return text_.substr(start, pos_ - start);
      } else if (c < 0x20) {
        throw Malformed{};
      }
    }
    throw Malformed{};
  }

  /** A decoded string: copied when plain, decoded by nlohmann when it has escapes or UTF-8. */
  std::string string() {
    const auto token = string_token();
    if (const auto plain = plain_json_string(token)) return std::string{*plain};
    return nlohmann::json::parse(token.begin(), token.end()).get<std::string>();
  }

  /** The raw text of the next value, of any type. */
  std::string_view value() {
    skip_whitespace();
    if (pos_ >= text_.size()) throw Malformed{};
    const char first = text_[pos_];
    if (first == '"') return string_token();
    const auto start = pos_;
    if (first == '{' || first == '[') {
      std::size_t depth = 0;
      while (pos_ < text_.size()) {
        const char c = text_[pos_];
        if (c == '"') {
          string_token();
          continue;
        }
        ++pos_;
        if (c == '{' || c == '[') {
          ++depth;
        } else if ((c == '}' || c == ']') && --depth == 0) {
          return text_.substr(start, pos_ - start);
        }
      }
      throw Malformed{};
    }
    while (pos_ < text_.size() && !is_delimiter(text_[pos_])) ++pos_;
    if (pos_ == start) throw Malformed{};
    return text_.substr(start, pos_ - start);
  }

  /**
   * Reads an object's members: `on_member(key, cursor)` must consume the member's value. Keys
   * are compared raw (a key with escapes is unknown to the fast path, hence Malformed there).
   */
  template <class F>
  void object(F&& on_member) {
    expect('{');
    if (consume('}')) return;
    do {
      const auto key = string_token();
      expect(':');
      on_member(key.substr(1, key.size() - 2));
    } while (consume(','));
    expect('}');
  }

  /** Reads an array's elements: `on_element()` must consume one value. */
  template <class F>
  void array(F&& on_element) {
    expect('[');
    if (consume(']')) return;
    do {
      on_element();
    } while (consume(','));
    expect(']');
  }

 private:
  static bool is_delimiter(char c) noexcept {
    return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
  }

  void skip_whitespace() noexcept {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

/** @brief The JSON value of `raw` (one value's text): a plain string without the parser. */
[[nodiscard]] inline nlohmann::json parse_json_value(std::string_view raw) {
  if (const auto plain = plain_json_string(raw)) return nlohmann::json(std::string{*plain});
  return nlohmann::json::parse(raw.begin(), raw.end());
}

/**
 * @brief How a value becomes JSON text and back: nlohmann's to_json/from_json, with fast paths
 * specialized for types the engine handles on every run (std::string here; the finalize input
 * in parent_task.hpp). Results equal nlohmann's.
 */
template <class T>
struct JsonCodec {
  /** Refuses values nested deeper than max_serialized_nesting_depth, and NaN or infinity. */
  static std::string serialize(const T& value) {
    if constexpr (std::is_same_v<T, nlohmann::json>) {
      check_json_value(value, max_serialized_nesting_depth);  // before any recursive copy
      return value.dump();
    } else {
      const nlohmann::json j(value);
      check_json_value(j, max_serialized_nesting_depth);
      return j.dump();
    }
  }
  /** Callers check the nesting of `text` first (deserialize_value does). */
  static T deserialize(std::string_view text) {
    if constexpr (std::is_same_v<T, nlohmann::json>) {
      return nlohmann::json::parse(text.begin(), text.end());  // no copy of the parsed value
    } else {
      return nlohmann::json::parse(text.begin(), text.end()).template get<T>();
    }
  }
};

template <>
struct JsonCodec<std::string> {
  static std::string serialize(const std::string& value) {
    std::string out;
    append_json_string(out, value);
    return out;
  }
  static std::string deserialize(std::string_view text) {
    if (const auto plain = plain_json_string(text)) return std::string{*plain};
    return nlohmann::json::parse(text.begin(), text.end()).get<std::string>();
  }
};

}  // namespace durable_execution::detail
