#include "pg_text.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace durable_execution::postgres {

void ArrayLiteral::separator() {
  if (count_++ > 0) text_ += ',';
}

void ArrayLiteral::add(std::string_view value) {
  separator();
  text_.reserve(text_.size() + value.size() + 2);
  text_ += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') text_ += '\\';
    text_ += c;
  }
  text_ += '"';
}

void ArrayLiteral::add(std::int64_t value) {
  separator();
  text_ += std::to_string(value);
}

void ArrayLiteral::add_null() {
  separator();
  text_ += "NULL";
}

std::string ArrayLiteral::take() {
  std::string out;
  out.swap(text_);
  out.push_back('}');
  text_.assign(1, '{');
  count_ = 0;
  return out;
}

bool is_valid_identifier(std::string_view name) {
  if (name.empty() || name.size() > kMaxIdentifierBytes) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  return alpha(name.front()) &&
         std::all_of(name.begin(), name.end(), [&](char c) { return alpha(c) || digit(c); });
}

namespace {

bool is_url(std::string_view conninfo) {
  return conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0;
}

struct Option {
  std::string key;
  std::string value;            // unquoted / undecoded as written (URL: still %-encoded)
  std::size_t value_begin = 0;  // the value's range in the connection string
  std::size_t value_end = 0;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// `key = value` pairs; values may be single-quoted with backslash escapes (libpq's rules).
std::vector<Option> keyword_options(std::string_view s) {
  std::vector<Option> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size()) break;
    Option o;
    while (i < s.size() && s[i] != '=' && !is_space(s[i])) o.key += s[i++];
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size() || s[i] != '=') break;  // malformed: libpq reports it; nothing to hide
    ++i;
    while (i < s.size() && is_space(s[i])) ++i;
    o.value_begin = i;
    if (i < s.size() && s[i] == '\'') {
      ++i;
      while (i < s.size() && s[i] != '\'') {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        o.value += s[i++];
      }
      if (i < s.size()) ++i;  // closing quote
    } else {
      while (i < s.size() && !is_space(s[i])) o.value += s[i++];
    }
    o.value_end = i;
    out.push_back(std::move(o));
  }
  return out;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The password ranges of a URL: the userinfo's `:password` and any `password=` parameter.
std::vector<Option> url_options(std::string_view s) {
  std::vector<Option> out;
  const auto scheme_end = s.find("://") + 3;
  const auto authority_end = std::min(s.find('/', scheme_end), s.find('?', scheme_end));
  const auto authority =
      s.substr(scheme_end, authority_end == std::string_view::npos ? std::string_view::npos
                                                                   : authority_end - scheme_end);
  const auto at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const auto colon = authority.substr(0, at).find(':');
    if (colon != std::string_view::npos) {
      Option o;
      o.key = "password";
      o.value_begin = scheme_end + colon + 1;
      o.value_end = scheme_end + at;
      o.value = std::string{s.substr(o.value_begin, o.value_end - o.value_begin)};
      out.push_back(std::move(o));
    }
  }
  const auto query = s.find('?', scheme_end);
  if (query != std::string_view::npos) {
    std::size_t i = query + 1;
    while (i <= s.size()) {
      auto end = s.find('&', i);
      if (end == std::string_view::npos) end = s.size();
      const auto pair = s.substr(i, end - i);
      const auto eq = pair.find('=');
      Option o;
      o.key = std::string{pair.substr(0, eq)};
      if (eq != std::string_view::npos) {
        o.value_begin = i + eq + 1;
        o.value_end = end;
        o.value = std::string{s.substr(o.value_begin, o.value_end - o.value_begin)};
      }
      out.push_back(std::move(o));
      i = end + 1;
    }
  }
  return out;
}

std::vector<Option> options_of(std::string_view conninfo) {
  return is_url(conninfo) ? url_options(conninfo) : keyword_options(conninfo);
}

}  // namespace

std::string fnv1a_hex(std::string_view text) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (char ch : text) hash = (hash ^ static_cast<unsigned char>(ch)) * 1099511628211ULL;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (int shift = 60; shift >= 0; shift -= 4) hex += kHex[(hash >> shift) & 0xFU];
  return hex;
}

std::optional<std::string> connection_password(std::string_view conninfo) {
  std::optional<std::string> out;
  for (const auto& o : options_of(conninfo)) {
    if (o.key == "password") out = is_url(conninfo) ? percent_decode(o.value) : o.value;
  }
  return out;
}

std::string redact_connection_string(std::string_view conninfo) {
  auto options = options_of(conninfo);
  std::string out{conninfo};
  // From the back, so earlier ranges stay valid.
  std::sort(options.begin(), options.end(),
            [](const Option& a, const Option& b) { return a.value_begin > b.value_begin; });
  for (const auto& o : options) {
    if (o.key != "password" || o.value_end < o.value_begin) continue;
    out.replace(o.value_begin, o.value_end - o.value_begin, "***");
  }
  return redact_secret(std::move(out), connection_password(conninfo));
}

std::string redact_secret(std::string text, const std::optional<std::string>& secret) {
  if (!secret || secret->size() < 3) return text;
  for (auto pos = text.find(*secret); pos != std::string::npos; pos = text.find(*secret, pos + 3)) {
    text.replace(pos, secret->size(), "***");
  }
  return text;
}

bool has_connection_option(std::string_view conninfo, std::string_view key) {
  const auto options = options_of(conninfo);
  return std::any_of(options.begin(), options.end(), [&](const Option& o) { return o.key == key; });
}

std::string with_connection_option(std::string_view conninfo, std::string_view key,
                                   std::string_view value) {
  std::string out{conninfo};
  if (is_url(conninfo)) {
    const auto scheme_end = conninfo.find("://") + 3;
    out += conninfo.find('?', scheme_end) == std::string_view::npos ? '?' : '&';
    out += key;
    out += '=';
    out += value;
  } else {
    if (!out.empty()) out += ' ';
    out += key;
    out += '=';
    out += value;
  }
  return out;
}

}  // namespace durable_execution::postgres
