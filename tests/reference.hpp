// Loader for the reference-vector files written by tools/gen_reference.py.
//
// Format (text, one tensor after another):
//
//   ctnn-reference 1
//   # comment lines start with '#' (allowed anywhere, as are blank lines)
//   tensor <name> <rank> <d0> <d1> ... <d(rank-1)>
//   <prod(d) values, row-major, whitespace separated, any number per line>
//   tensor <name> ...
//
// Only the standard library is used; tests never need PyTorch.
#ifndef CTNN_TEST_REFERENCE_HPP
#define CTNN_TEST_REFERENCE_HPP

#include <charconv>
#include <cstddef>
#include <fstream>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace ctnn_test {

struct RefTensor {
  std::vector<std::size_t> shape;
  std::vector<float> values;

  // Product of the dimensions (1 for rank 0).
  std::size_t numel() const {
    std::size_t n = 1;
    for (std::size_t d : shape) n *= d;
    return n;
  }
};

namespace detail {

inline std::vector<std::string_view> split_ws(std::string_view line) {
  std::vector<std::string_view> tokens;
  std::size_t i = 0;
  auto is_ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
  while (i < line.size()) {
    while (i < line.size() && is_ws(line[i])) ++i;
    std::size_t start = i;
    while (i < line.size() && !is_ws(line[i])) ++i;
    if (i > start) tokens.push_back(line.substr(start, i - start));
  }
  return tokens;
}

[[noreturn]] inline void fail(const std::string& path, std::size_t line_no, const std::string& what) {
  throw std::runtime_error("reference file " + path + ":" + std::to_string(line_no) + ": " + what);
}

inline bool parse_size(std::string_view tok, std::size_t& out) {
  const char* first = tok.data();
  const char* last = tok.data() + tok.size();
  auto [ptr, ec] = std::from_chars(first, last, out);
  return ec == std::errc{} && ptr == last;
}

inline bool parse_float(std::string_view tok, float& out) {
  // from_chars rejects a leading '+', which is fine: '%.9g' never writes one.
  const char* first = tok.data();
  const char* last = tok.data() + tok.size();
  auto [ptr, ec] = std::from_chars(first, last, out);
  return ec == std::errc{} && ptr == last;
}

}  // namespace detail

// Loads a file in the format above; throws std::runtime_error naming the file
// and the line on any malformed content (bad magic, bad counts, too few/many
// values, non-numeric tokens, duplicate names).
inline std::map<std::string, RefTensor> load_reference(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("reference file " + path + ": cannot open");

  std::map<std::string, RefTensor> result;
  std::string line;
  std::size_t line_no = 0;
  bool seen_magic = false;

  RefTensor* current = nullptr;  // tensor still receiving values
  std::string current_name;
  std::size_t current_expected = 0;
  std::size_t current_header_line = 0;

  auto finish_current = [&](std::size_t at_line) {
    if (current != nullptr && current->values.size() != current_expected) {
      detail::fail(path, at_line,
                   "tensor '" + current_name + "' (declared on line " + std::to_string(current_header_line) + ") has " +
                       std::to_string(current->values.size()) + " values, expected " +
                       std::to_string(current_expected));
    }
    current = nullptr;
  };

  while (std::getline(in, line)) {
    ++line_no;
    const auto tokens = detail::split_ws(line);
    if (!seen_magic) {
      if (tokens.size() != 2 || tokens[0] != "ctnn-reference" || tokens[1] != "1") {
        detail::fail(path, line_no, "bad magic, expected 'ctnn-reference 1'");
      }
      seen_magic = true;
      continue;
    }
    if (tokens.empty() || tokens[0].front() == '#') continue;

    if (tokens[0] == "tensor") {
      finish_current(line_no);
      if (tokens.size() < 3) detail::fail(path, line_no, "tensor header needs a name and a rank");
      std::string name(tokens[1]);
      std::size_t rank = 0;
      if (!detail::parse_size(tokens[2], rank)) {
        detail::fail(path, line_no, "bad rank '" + std::string(tokens[2]) + "'");
      }
      if (tokens.size() - 3 != rank) {
        detail::fail(path, line_no,
                     "tensor '" + name + "' has rank " + std::to_string(rank) + " but " +
                         std::to_string(tokens.size() - 3) + " dimensions");
      }
      RefTensor t;
      std::size_t numel = 1;
      for (std::size_t i = 0; i < rank; ++i) {
        std::size_t d = 0;
        if (!detail::parse_size(tokens[3 + i], d)) {
          detail::fail(path, line_no, "bad dimension '" + std::string(tokens[3 + i]) + "'");
        }
        if (d != 0 && numel > std::numeric_limits<std::size_t>::max() / d) {
          detail::fail(path, line_no, "tensor '" + name + "' is too large");
        }
        numel *= d;
        t.shape.push_back(d);
      }
      auto [it, inserted] = result.emplace(name, std::move(t));
      if (!inserted) detail::fail(path, line_no, "duplicate tensor '" + name + "'");
      current = &it->second;
      current_name = name;
      current_expected = numel;
      current_header_line = line_no;
      current->values.reserve(numel);
      continue;
    }

    if (current == nullptr) {
      detail::fail(path, line_no, "values outside of a tensor (expected 'tensor' header)");
    }
    for (std::string_view tok : tokens) {
      if (current->values.size() == current_expected) {
        detail::fail(path, line_no,
                     "too many values for tensor '" + current_name + "' (expected " + std::to_string(current_expected) +
                         ")");
      }
      float v = 0.0f;
      if (!detail::parse_float(tok, v)) {
        detail::fail(path, line_no, "non-numeric value '" + std::string(tok) + "'");
      }
      current->values.push_back(v);
    }
  }
  if (in.bad()) throw std::runtime_error("reference file " + path + ": read error");
  if (!seen_magic) detail::fail(path, 1, "empty file, expected 'ctnn-reference 1'");
  finish_current(line_no);
  return result;
}

// Path of a reference file: CTNN_REFERENCE_DIR (defined by meson) if defined,
// else "tests/reference" relative to the working directory.
inline std::string reference_path(const std::string& file) {
#ifdef CTNN_REFERENCE_DIR
  std::string dir = CTNN_REFERENCE_DIR;
#else
  std::string dir = "tests/reference";
#endif
  if (!dir.empty() && dir.back() != '/') dir += '/';
  return dir + file;
}

}  // namespace ctnn_test

#endif  // CTNN_TEST_REFERENCE_HPP
