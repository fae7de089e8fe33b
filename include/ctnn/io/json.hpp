// A small, strict JSON reader and string writer: what the safetensors header needs
// (docs/save_load.md), and nothing that would cost compile time (nlohmann-json's header alone
// took 3.5 s).
//
//   json::Value v = json::parse(text, /*max_depth=*/3);   // throws json::parse_error
//   if (const json::Object* o = v.as_object()) ...        // members in document order
//   v.find("shape")->as_array(); d.as_uint();             // nullptr / nullopt when the type differs
//   json::append_quoted(out, "name");                     // "name", escaped, for writing
//
// Strict means RFC 8259 and no extension: no comments, trailing commas, single quotes, NaN,
// byte order mark, leading zeros or bare control characters; whitespace is space, tab, LF and
// CR only. On top of the RFC it rejects what would make a header ambiguous or hostile: a key
// twice in one object (the RFC leaves that to the reader; most keep the last one silently),
// nesting deeper than max_depth (which also bounds the recursion), text that is not UTF-8, and
// \u escapes that encode a lone surrogate. Strings come out as UTF-8, with \uXXXX escapes and
// surrogate pairs decoded. Numbers are kept exactly: a non-negative integer that fits in 64 bits
// as that integer, any other number (negative, fraction, exponent, too large) as its text; no
// number is ever rounded through a double.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace ctnn::io::json {

/// Where and why the text is not acceptable. what(): "<problem> at offset <byte offset>".
struct parse_error : std::runtime_error {
  enum class Kind {
    syntax,         // not JSON (including invalid UTF-8 and lone surrogates)
    duplicate_key,  // valid JSON, but a key appears twice in one object
    too_deep,       // valid so far, but nests deeper than max_depth
  };
  Kind kind;
  std::size_t offset;  // bytes from the start of the text
  /// The keys of the objects around the error, outermost first; for duplicate_key it ends with
  /// the repeated key. Callers use it to say which entry is wrong.
  std::vector<std::string> path;

  parse_error(Kind k, const std::string& problem, std::size_t at, std::vector<std::string> p)
      : std::runtime_error(problem + " at offset " + std::to_string(at)), kind(k), offset(at), path(std::move(p)) {}
};

struct Value;
struct Member;
using Array = std::vector<Value>;
using Object = std::vector<Member>;  // document order; keys are unique (parse rejects duplicates)

/// A number that is not a non-negative integer below 2^64, as written: it is never rounded.
struct OtherNumber {
  std::string text;
};

struct Value {
  std::variant<std::nullptr_t, bool, std::uint64_t, OtherNumber, std::string, Array, Object> v;

  const std::string* as_string() const { return std::get_if<std::string>(&v); }
  const Array* as_array() const { return std::get_if<Array>(&v); }
  const Object* as_object() const { return std::get_if<Object>(&v); }
  /// The value when it is a non-negative integer below 2^64 (written without fraction or exponent).
  std::optional<std::uint64_t> as_uint() const {
    if (const auto* u = std::get_if<std::uint64_t>(&v)) return *u;
    return std::nullopt;
  }
  /// The member named `key` of an object; nullptr when there is none or this is not an object.
  inline const Value* find(std::string_view key) const;
  /// "null", "boolean", "number", "string", "array" or "object".
  const char* type_name() const {
    static constexpr const char* names[] = {"null", "boolean", "number", "number", "string", "array", "object"};
    return names[v.index()];
  }
  /// Compact JSON text (no whitespace); parse(dump()) gives this value back.
  inline std::string dump() const;
  inline void dump_to(std::string& out) const;
};

struct Member {
  std::string key;
  Value value;
};

inline const Value* Value::find(std::string_view key) const {
  if (const Object* o = as_object())
    for (const auto& m : *o)
      if (m.key == key) return &m.value;
  return nullptr;
}

/// The length of the well-formed UTF-8 sequence starting at s[i] (1 to 4), or 0 when the bytes
/// there are not one: overlong forms, surrogates (U+D800..DFFF) and code points above U+10FFFF
/// are not well-formed (the Unicode standard's table 3-7).
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  const auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) {
    return byte(k) >= lo && byte(k) <= hi;
  };
  const unsigned c = byte(0);
  if (i >= s.size()) return 0;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    const bool second = c == 0xe0 ? cont(1, 0xa0) : c == 0xed ? cont(1, 0x80, 0x9f) : cont(1);
    return second && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const bool second = c == 0xf0 ? cont(1, 0x90) : c == 0xf4 ? cont(1, 0x80, 0x8f) : cont(1);
    return second && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;  // a continuation byte where a sequence should start, or C0, C1, F5..FF
}

/// The offset of the first byte of `s` that is not part of well-formed UTF-8, or npos.
inline std::size_t invalid_utf8_at(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

/// Appends `s` (which must be well-formed UTF-8: check it with invalid_utf8_at) as a JSON
/// string: quoted, with '"', '\\' and control characters escaped; all else is copied as is.
inline void append_quoted(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

inline void Value::dump_to(std::string& out) const {
  struct Writer {
    std::string& out;
    void operator()(std::nullptr_t) const { out += "null"; }
    void operator()(bool b) const { out += b ? "true" : "false"; }
    void operator()(std::uint64_t u) const { out += std::to_string(u); }
    void operator()(const OtherNumber& n) const { out += n.text; }
    void operator()(const std::string& s) const { append_quoted(out, s); }
    void operator()(const Array& a) const {
      out += '[';
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (i) out += ',';
        a[i].dump_to(out);
      }
      out += ']';
    }
    void operator()(const Object& o) const {
      out += '{';
      for (std::size_t i = 0; i < o.size(); ++i) {
        if (i) out += ',';
        append_quoted(out, o[i].key);
        out += ':';
        o[i].value.dump_to(out);
      }
      out += '}';
    }
  };
  std::visit(Writer{out}, v);
}

inline std::string Value::dump() const {
  std::string out;
  dump_to(out);
  return out;
}

namespace detail {

/// Recursive descent over the text; depth is bounded by max_depth, so the recursion is too.
class Parser {
 public:
  Parser(std::string_view text, std::size_t max_depth) : text_(text), max_depth_(max_depth) {}

  Value document() {
    skip_whitespace();
    Value v = value(0);
    skip_whitespace();
    if (pos_ != text_.size()) fail("expected the end of the text after the top-level value, found " + found());
    return v;
  }

 private:
  std::string_view text_;
  std::size_t max_depth_;
  std::size_t pos_ = 0;
  std::vector<const std::string*> path_;  // the keys of the objects we are inside

  [[noreturn]] void fail(const std::string& problem, parse_error::Kind kind = parse_error::Kind::syntax) const {
    fail_at(pos_, problem, kind);
  }
  [[noreturn]] void fail_at(std::size_t at, const std::string& problem,
                            parse_error::Kind kind = parse_error::Kind::syntax) const {
    std::vector<std::string> path;
    for (const std::string* k : path_) path.push_back(*k);
    throw parse_error(kind, problem, at, std::move(path));
  }

  bool at_end() const { return pos_ >= text_.size(); }
  /// The current byte; '\0' at the end, which is never what a caller looks for (a NUL in the
  /// text is an error wherever it is, and found() tells the two apart).
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  /// The byte at the current position, for messages: 'x', "a NUL byte", "byte 0xff", "the end of the text".
  std::string found() const {
    if (at_end()) return "the end of the text";
    const auto c = static_cast<unsigned char>(text_[pos_]);
    if (c == 0) return "a NUL byte";
    if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
    static constexpr char hex[] = "0123456789abcdef";
    return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
  }

  void skip_whitespace() {
    while (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r') ++pos_;
  }

  void expect(char c, const char* context) {
    if (peek() != c) fail(std::string("expected '") + c + "' " + context + ", found " + found());
    ++pos_;
  }

  Value value(std::size_t depth) {
    switch (peek()) {
      case '{': return object(deeper(depth));
      case '[': return array(deeper(depth));
      case '"': return Value{quoted_string()};
      case 't': return literal("true", Value{true});
      case 'f': return literal("false", Value{false});
      case 'n': return literal("null", Value{nullptr});
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return number();
        fail("expected a value (object, array, string, number, true, false or null), found " + found());
    }
  }

  /// The depth of an object or array opened at `depth`, if it is allowed.
  std::size_t deeper(std::size_t depth) const {
    if (depth + 1 > max_depth_)
      fail("an object or array nested deeper than " + std::to_string(max_depth_) + " levels",
           parse_error::Kind::too_deep);
    return depth + 1;
  }

  Value literal(std::string_view word, Value v) {
    if (text_.substr(pos_, word.size()) != word) fail("expected the literal " + std::string(word));
    pos_ += word.size();
    return v;
  }

  Value object(std::size_t depth) {
    ++pos_;  // '{'
    Object members;
    std::set<std::string, std::less<>> keys;
    skip_whitespace();
    if (peek() == '}') {
      ++pos_;
      return Value{std::move(members)};
    }
    for (;;) {
      skip_whitespace();
      if (peek() != '"') fail("expected a string key, found " + found());
      const std::size_t key_at = pos_;
      std::string key = quoted_string();
      if (!keys.insert(key).second) {
        path_.push_back(&key);
        fail_at(key_at, "a key that appears twice in one object", parse_error::Kind::duplicate_key);
      }
      skip_whitespace();
      expect(':', "after an object key");
      skip_whitespace();
      path_.push_back(&key);
      Value v = value(depth);
      path_.pop_back();
      members.push_back(Member{std::move(key), std::move(v)});
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}', "or ',' after an object member");
      return Value{std::move(members)};
    }
  }

  Value array(std::size_t depth) {
    ++pos_;  // '['
    Array items;
    skip_whitespace();
    if (peek() == ']') {
      ++pos_;
      return Value{std::move(items)};
    }
    for (;;) {
      skip_whitespace();
      items.push_back(value(depth));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']', "or ',' after an array element");
      return Value{std::move(items)};
    }
  }

  Value number() {
    const std::size_t start = pos_;
    const auto digits = [&] {
      const std::size_t from = pos_;
      while (peek() >= '0' && peek() <= '9') ++pos_;
      return pos_ - from;
    };
    const bool negative = peek() == '-';
    if (negative) ++pos_;
    if (peek() == '0') {
      ++pos_;  // a leading zero stands alone: "01" is not a number
    } else if (digits() == 0) {
      fail("expected a digit in a number, found " + found());
    }
    bool integer = true;
    if (peek() == '.') {
      ++pos_;
      integer = false;
      if (digits() == 0) fail("expected a digit after the decimal point, found " + found());
    }
    if ((peek() == 'e' || peek() == 'E')) {
      ++pos_;
      integer = false;
      if ((peek() == '+' || peek() == '-')) ++pos_;
      if (digits() == 0) fail("expected a digit in the exponent, found " + found());
    }
    const std::string_view text = text_.substr(start, pos_ - start);
    if (!negative && integer) {
      constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
      std::uint64_t u = 0;
      bool fits = true;
      for (std::size_t i = 0; i < text.size() && fits; ++i) {
        const auto d = static_cast<std::uint64_t>(text[i] - '0');
        fits = u <= (max - d) / 10;
        u = u * 10 + d;
      }
      if (fits) return Value{u};
    }
    return Value{OtherNumber{std::string(text)}};
  }

  unsigned hex4() {
    unsigned cp = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      const char c = peek();
      unsigned d;
      if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
      else d = 16;
      if (d == 16) fail("expected 4 hex digits after \\u, found " + found());
      cp = cp * 16 + d;
    }
    return cp;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    const auto put = [&](unsigned b) { out += static_cast<char>(b); };
    if (cp < 0x80) {
      put(cp);
    } else if (cp < 0x800) {
      put(0xc0 | (cp >> 6));
      put(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      put(0xe0 | (cp >> 12));
      put(0x80 | ((cp >> 6) & 0x3f));
      put(0x80 | (cp & 0x3f));
    } else {
      put(0xf0 | (cp >> 18));
      put(0x80 | ((cp >> 12) & 0x3f));
      put(0x80 | ((cp >> 6) & 0x3f));
      put(0x80 | (cp & 0x3f));
    }
  }

  /// A \u escape (pos_ after the backslash), with a surrogate pair when it starts one.
  unsigned unicode_escape() {
    const std::size_t at = pos_ - 1;
    ++pos_;  // 'u'
    const unsigned cp = hex4();
    if (cp >= 0xdc00 && cp <= 0xdfff) fail_at(at, "a \\u escape of a lone low surrogate");
    if (cp < 0xd800 || cp > 0xdbff) return cp;
    // A high surrogate: only meaningful followed by a \u escape of a low one.
    if (text_.substr(pos_, 2) != "\\u") fail_at(at, "a \\u escape of a high surrogate not followed by a low surrogate");
    pos_ += 2;
    const unsigned low = hex4();
    if (low < 0xdc00 || low > 0xdfff) fail_at(at, "a \\u escape of a high surrogate not followed by a low surrogate");
    return 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
  }

  std::string quoted_string() {
    const std::size_t start = pos_;
    ++pos_;  // '"'
    std::string out;
    for (;;) {
      // Copy the run of bytes that need no attention at once.
      const std::size_t run = pos_;
      while (!at_end()) {
        const auto c = static_cast<unsigned char>(text_[pos_]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++pos_;
      }
      out.append(text_.substr(run, pos_ - run));
      if (at_end())
        fail("expected '\"' to end the string that starts at offset " + std::to_string(start) + ", found " + found());
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("expected a string character, found " + found() + " (control characters must be escaped)");
      if (c >= 0x80) {
        const std::size_t n = utf8_sequence_length(text_, pos_);
        if (n == 0) fail("invalid UTF-8: " + found() + " in a string");
        out.append(text_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      ++pos_;  // '\\'
      const char e = peek();
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': append_utf8(out, unicode_escape()); continue;
        default: fail("expected an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX) after '\\', found " + found());
      }
      ++pos_;
    }
  }
};

}  // namespace detail

/// Parses `text`, which must hold one JSON value and nothing but whitespace around it. Objects
/// and arrays may nest max_depth deep (a top-level object is depth 1). Throws parse_error.
inline Value parse(std::string_view text, std::size_t max_depth) { return detail::Parser(text, max_depth).document(); }

}  // namespace ctnn::io::json
