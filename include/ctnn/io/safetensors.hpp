// Save and load in the safetensors format, interchangeable with PyTorch (docs/save_load.md).
//
//   ctnn::save(net, "mlp.safetensors");           // the state_dict, under PyTorch's names
//   ctnn::load(net, "mlp.safetensors");           // checked against the model's compile-time schema
//   ctnn::load(net, "big.safetensors", false);    // strict = false: ignore tensors the model lacks
//   ctnn::save(x, "x.safetensors");               // one tensor, stored under the name "tensor"
//   ctnn::load(x, "x.safetensors");
//   ctnn::save_tensors({{"x", x}, {"y", y}}, "xy.safetensors");    // name -> tensor
//   auto d = ctnn::load_tensors("xy.safetensors");  // std::map<std::string, io::LoadedTensor>
//
// The file: an 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {"format": "pt"},
//    "0.weight": {"dtype": "F32", "shape": [256, 20], "data_offsets": [0, 20480]}, ...}
// (padded with spaces so the data starts at a multiple of 8), then the data section: each
// tensor's row-major little-endian bytes at [begin, end) of it. What `torch`'s
// safetensors.torch.save_file writes loads here, and what ctnn writes loads there.
//
// Loading checks everything before it touches the destination, so a failed load leaves the
// model (or tensor) exactly as it was: the header length is sane, the header is strict UTF-8
// JSON (ctnn/io/json.hpp) with no duplicate keys, nesting no deeper than the format does, every
// entry has a known dtype, a shape and data_offsets whose size matches, the tensors tile the
// data section exactly (no overlap, no gap, no trailing bytes), every tensor the model expects
// is present with its shape, and (strict) no other tensor is.
// F32 is read as is; F64 is rounded to float32, F16 and BF16 are widened exactly (PyTorch's
// load_state_dict converts dtypes the same way). I64 is read exactly, for the int64 entries of a
// state_dict (BatchNorm's num_batches_tracked): an int64 entry loads only from I64 and a float
// entry only from a float dtype. Other dtypes are rejected. Every error is an
// io::format_error (bad or mismatching content) or io::file_error (the operating system said
// no), both io::safetensors_error, whose message names the file, the tensor and what was
// expected and found.
//
// Saving is atomic: the bytes go to a temporary file in the target's directory, which is
// flushed, fsync'ed and renamed over the target, so an error or a crash mid-save leaves the
// previous file intact (and no temporary file behind after an error). The errors and the file
// reading and atomic writing are in ctnn/io/files.hpp.
#pragma once

#include <algorithm>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ctnn/core/parameter.hpp"
#include "ctnn/core/tensor.hpp"
#include "ctnn/io/files.hpp"
#include "ctnn/io/json.hpp"

namespace ctnn::io {

/// Headers longer than this are rejected (the reference implementation's limit).
inline constexpr std::uint64_t safetensors_max_header_size = 100'000'000;

/// One tensor read from a file: its shape, its values as float32, and the dtype it had there.
struct LoadedTensor {
  std::vector<std::size_t> shape;
  std::vector<float> values;  // row-major, converted to float32
  std::string dtype;          // as in the file: "F32", "F64", "F16", "BF16" or "I64"
  std::vector<std::int64_t> int64_values;  // an I64 tensor's exact values (else empty)
  std::size_t numel() const { return values.size(); }
  /// "[256, 20]"
  std::string shape_str() const;
};

/// A parsed safetensors file: every tensor by name, and the header's __metadata__.
struct SafetensorsFile {
  std::map<std::string, LoadedTensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// What to write: a name, a shape and shape-product floats (not owned), or int64 values instead
/// (int64_data set: written as I64).
struct TensorEntry {
  std::string name;
  std::vector<std::size_t> shape;
  const float* data;
  const std::int64_t* int64_data = nullptr;
};

namespace detail {

inline std::string shape_str(std::span<const std::size_t> s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

[[noreturn]] inline void st_fail(std::string_view source, const std::string& what) {
  throw format_error("ctnn safetensors " + quote_name(source) + ": " + what);
}

/// Appends `s` to the header as a JSON string; `what` names it in the error when it is not
/// UTF-8 (JSON text must be, and PyTorch's reader would refuse the file).
inline void append_json_string(std::string& header, std::string_view s, const std::string& what) {
  if (const std::size_t bad = json::invalid_utf8_at(s); bad != std::string_view::npos)
    st_fail("<save>", what + " is not valid UTF-8 (at byte " + std::to_string(bad) + ")");
  json::append_quoted(header, s);
}

enum class Dtype { F32, F64, F16, BF16, I64 };

inline std::size_t dtype_size(Dtype d) {
  switch (d) {
    case Dtype::F32: return 4;
    case Dtype::F64:
    case Dtype::I64: return 8;
    default: return 2;
  }
}

/// The dtype named `s`, or a format_error saying whether it is unsupported or unknown.
inline Dtype parse_dtype(const std::string& s, std::string_view source, const std::string& tensor) {
  if (s == "F32") return Dtype::F32;
  if (s == "F64") return Dtype::F64;
  if (s == "F16") return Dtype::F16;
  if (s == "BF16") return Dtype::BF16;
  if (s == "I64") return Dtype::I64;
  // clang-format off
  static const std::set<std::string> known{"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "U64",
                                           "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};
  // clang-format on
  if (known.count(s))
    st_fail(source, "tensor " + quote_name(tensor) + ": unsupported dtype " + quote_name(s) +
                        " (expected F32; F64, F16 and BF16 are converted to F32; I64 for int64 buffers)");
  st_fail(source, "tensor " + quote_name(tensor) + ": unknown dtype " + quote_name(s) +
                      " (expected F32, F64, F16, BF16 or I64)");
}

template <class U>
U load_le(const std::byte* p) {
  U v = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) v |= static_cast<U>(std::to_integer<U>(p[i]) << (8 * i));
  return v;
}
template <class U>
void store_le(std::byte* p, U v) {
  for (std::size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}

/// IEEE binary16 -> binary32, exact (subnormals, infinities and NaN payloads kept).
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalize
    int e = 113;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --e;
    }
    bits = sign | (static_cast<std::uint32_t>(e) << 23) | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

/// The header's JSON. Beyond JSON itself (json.hpp: strict, UTF-8, no duplicate keys), it may
/// nest no deeper than the format does: the object -> a tensor's entry -> its shape array.
inline json::Value parse_header_json(std::string_view text, std::string_view source) {
  try {
    return json::parse(text, 3);
  } catch (const json::parse_error& e) {
    const auto& path = e.path;
    const std::string at = "offset " + std::to_string(e.offset) + " of the header";
    switch (e.kind) {
      case json::parse_error::Kind::duplicate_key:
        if (path.size() == 1)
          st_fail(source, "tensor " + quote_name(path[0]) + " appears twice in the header (duplicate names; again at " +
                              at + ")");
        if (path[0] == "__metadata__")
          st_fail(source, "__metadata__ has the key " + quote_name(path.back()) + " twice (again at " + at + ")");
        st_fail(source, "tensor " + quote_name(path[0]) + ": duplicate key " + quote_name(path.back()) +
                            " in its header entry (again at " + at + ")");
      case json::parse_error::Kind::too_deep:
        st_fail(source, "the JSON header nests deeper than the format allows (object -> entry -> shape array) at " +
                            at + (path.empty() ? std::string() : ", in " + quote_name(path[0])));
      case json::parse_error::Kind::syntax: break;
    }
    st_fail(source, std::string("the header is not valid JSON: ") + e.what() + " of the header");
  }
}

inline std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, std::string_view source, const std::string& name) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a)
    st_fail(source, "tensor " + quote_name(name) + ": its size overflows 64 bits");
  return a * b;
}

}  // namespace detail

inline std::string LoadedTensor::shape_str() const { return detail::shape_str(shape); }

/// Parses and validates a whole safetensors file held in memory. `source` names it in errors.
/// Throws format_error; never reads outside `bytes`.
inline SafetensorsFile parse_safetensors(std::span<const std::byte> bytes, std::string_view source = "<memory>") {
  using detail::st_fail, detail::quote_name;
  if (bytes.size() < 8)
    st_fail(source, "the file is " + std::to_string(bytes.size()) +
                        " bytes, too short for the 8-byte header length (truncated?)");
  const std::uint64_t n = detail::load_le<std::uint64_t>(bytes.data());
  const std::uint64_t rest = bytes.size() - 8;
  if (n > safetensors_max_header_size)
    st_fail(source, "header length " + std::to_string(n) + " exceeds the limit of " +
                        std::to_string(safetensors_max_header_size) + " bytes (not a safetensors file?)");
  if (n > rest)
    st_fail(source, "header length " + std::to_string(n) + " but only " + std::to_string(rest) +
                        " bytes follow the length field (truncated?)");
  if (n < 2) st_fail(source, "header length " + std::to_string(n) + " is too short for a JSON object");
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), static_cast<std::size_t>(n));
  const json::Value header = detail::parse_header_json(text, source);
  const json::Object* top = header.as_object();
  if (!top) st_fail(source, std::string("the header is a JSON ") + header.type_name() + ", expected an object");

  const std::span<const std::byte> data = bytes.subspan(8 + static_cast<std::size_t>(n));
  struct Entry {
    std::string name;
    detail::Dtype dtype;
    std::string dtype_name;
    std::vector<std::size_t> shape;
    std::uint64_t begin, end;
  };
  std::vector<Entry> entries;
  SafetensorsFile out;
  for (const auto& [name, v] : *top) {
    if (name == "__metadata__") {
      const json::Object* m = v.as_object();
      if (!m)
        st_fail(source, std::string("__metadata__ is a JSON ") + v.type_name() + ", expected an object of strings");
      for (const auto& [k, s] : *m) {
        const std::string* str = s.as_string();
        if (!str)
          st_fail(source,
                  "__metadata__ entry " + quote_name(k) + " is a JSON " + s.type_name() + ", expected a string");
        out.metadata[k] = *str;
      }
      continue;
    }
    const std::string t = "tensor " + quote_name(name) + ": ";
    const json::Object* fields = v.as_object();
    if (!fields)
      st_fail(source, t + "its header entry is a JSON " + v.type_name() +
                          ", expected an object with dtype, shape, data_offsets");
    for (const auto& [k, unused] : *fields)
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        st_fail(source, t + "unexpected key " + quote_name(k) + " (expected dtype, shape, data_offsets)");
    for (const char* k : {"dtype", "shape", "data_offsets"})
      if (!v.find(k)) st_fail(source, t + "the header entry has no " + k);
    const json::Value& jd = *v.find("dtype");
    const json::Value& js = *v.find("shape");
    const json::Value& jo = *v.find("data_offsets");
    const std::string* dtype = jd.as_string();
    if (!dtype) st_fail(source, t + "dtype is a JSON " + jd.type_name() + ", expected a string such as \"F32\"");
    Entry e{name, detail::parse_dtype(*dtype, source, name), *dtype, {}, 0, 0};
    const json::Array* dims = js.as_array();
    if (!dims) st_fail(source, t + "shape is a JSON " + js.type_name() + ", expected an array of integers");
    std::uint64_t numel = 1;
    for (const auto& d : *dims) {
      const auto dim = d.as_uint();
      if (!dim) st_fail(source, t + "shape " + js.dump() + " has an entry that is not a non-negative integer");
      if (*dim > std::numeric_limits<std::size_t>::max())
        st_fail(source, t + "dimension " + std::to_string(*dim) + " is too large");
      numel = detail::checked_mul(numel, *dim, source, name);
      e.shape.push_back(static_cast<std::size_t>(*dim));
    }
    const json::Array* offsets = jo.as_array();
    if (!offsets || offsets->size() != 2 || !(*offsets)[0].as_uint() || !(*offsets)[1].as_uint())
      st_fail(source, t + "data_offsets " + jo.dump() + ", expected [begin, end] (two non-negative integers)");
    e.begin = *(*offsets)[0].as_uint();
    e.end = *(*offsets)[1].as_uint();
    const std::string offs = "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    if (e.begin > e.end) st_fail(source, t + offs + ": begin is after end");
    if (e.end > data.size())
      st_fail(source, t + offs + " are out of range: the data section is " + std::to_string(data.size()) +
                          " bytes (truncated?)");
    const std::uint64_t nbytes = detail::checked_mul(numel, detail::dtype_size(e.dtype), source, name);
    if (e.end - e.begin != nbytes)
      st_fail(source, t + offs + " hold " + std::to_string(e.end - e.begin) + " bytes, but dtype " + e.dtype_name +
                          " and shape " + detail::shape_str(e.shape) + " need " + std::to_string(nbytes));
    entries.push_back(std::move(e));
  }

  // The tensors must tile the data section: sorted by offset, each starts where the last ended.
  std::vector<const Entry*> order;
  for (const auto& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t at = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : order) {
    const std::string offs = "data_offsets [" + std::to_string(e->begin) + ", " + std::to_string(e->end) + "]";
    if (e->begin < at)
      st_fail(source, "tensor " + quote_name(e->name) + ": " + offs + " overlap tensor " + quote_name(prev->name) +
                          " [" + std::to_string(prev->begin) + ", " + std::to_string(prev->end) + "]");
    if (e->begin > at)
      st_fail(source, "tensor " + quote_name(e->name) + ": " + offs + " leave bytes [" + std::to_string(at) + ", " +
                          std::to_string(e->begin) + ") of the data section unused (" +
                          (prev ? "after tensor " + quote_name(prev->name) : std::string("before it")) +
                          "); tensors must be contiguous");
    at = e->end;
    prev = e;
  }
  if (at != data.size())
    st_fail(source, std::to_string(data.size() - at) + " trailing bytes after the last tensor (the data section is " +
                        std::to_string(data.size()) + " bytes, the tensors cover " + std::to_string(at) + ")");

  for (auto& e : entries) {
    LoadedTensor lt{std::move(e.shape), {}, e.dtype_name, {}};
    const std::byte* p = data.data() + e.begin;
    const std::size_t count = static_cast<std::size_t>((e.end - e.begin) / detail::dtype_size(e.dtype));
    lt.values.resize(count);
    if (e.dtype == detail::Dtype::I64) lt.int64_values.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
      float f;
      switch (e.dtype) {
        case detail::Dtype::I64:
          lt.int64_values[i] = static_cast<std::int64_t>(detail::load_le<std::uint64_t>(p + 8 * i));
          f = static_cast<float>(lt.int64_values[i]);
          break;
        case detail::Dtype::F32: f = std::bit_cast<float>(detail::load_le<std::uint32_t>(p + 4 * i)); break;
        case detail::Dtype::F64:
          f = static_cast<float>(std::bit_cast<double>(detail::load_le<std::uint64_t>(p + 8 * i)));
          break;
        case detail::Dtype::F16: f = detail::half_to_float(detail::load_le<std::uint16_t>(p + 2 * i)); break;
        default: f = std::bit_cast<float>(static_cast<std::uint32_t>(detail::load_le<std::uint16_t>(p + 2 * i)) << 16);
      }
      lt.values[i] = f;
    }
    out.tensors.emplace(e.name, std::move(lt));
  }
  return out;
}

/// The bytes of a safetensors file holding `tensors` (F32, or I64 for int64 entries, in this
/// order) and `metadata`.
inline std::vector<std::byte> serialize_safetensors(std::span<const TensorEntry> tensors,
                                                    const std::map<std::string, std::string>& metadata = {
                                                        {"format", "pt"}}) {
  // Compact JSON, metadata first, then the tensors in the given order (as safetensors.torch).
  using detail::append_json_string;
  std::string text = "{";
  if (!metadata.empty()) {
    text += R"("__metadata__":{)";
    for (const auto& [k, v] : metadata) {
      if (text.back() != '{') text += ',';
      append_json_string(text, k, "__metadata__ key " + detail::quote_name(k));
      text += ':';
      append_json_string(text, v, "__metadata__ value of " + detail::quote_name(k));
    }
    text += '}';
  }
  std::set<std::string_view> names;
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__" || !names.insert(t.name).second)
      detail::st_fail("<save>", "tensor " + detail::quote_name(t.name) +
                                    (t.name == "__metadata__" ? ": the name is reserved" : ": the name is used twice"));
    std::uint64_t numel = 1;
    for (auto d : t.shape) numel = detail::checked_mul(numel, d, "<save>", t.name);
    const std::uint64_t nbytes = detail::checked_mul(numel, t.int64_data ? 8 : 4, "<save>", t.name);
    if (text.size() > 1) text += ',';
    append_json_string(text, t.name, "tensor " + detail::quote_name(t.name) + ": the name");
    text += t.int64_data ? R"(:{"dtype":"I64","shape":[)" : R"(:{"dtype":"F32","shape":[)";
    for (std::size_t i = 0; i < t.shape.size(); ++i) {
      if (i) text += ',';  // (not `(i ? "," : "") + ...`: g++ 12 -O3 warns -Wrestrict on it, GCC bug 105329)
      text += std::to_string(t.shape[i]);
    }
    text += R"(],"data_offsets":[)" + std::to_string(offset) + "," + std::to_string(offset + nbytes) + "]}";
    offset += nbytes;
  }
  text += '}';
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts at a multiple of 8
  std::vector<std::byte> out(8 + text.size() + static_cast<std::size_t>(offset));
  detail::store_le<std::uint64_t>(out.data(), text.size());
  std::memcpy(out.data() + 8, text.data(), text.size());
  std::byte* p = out.data() + 8 + text.size();
  for (const auto& t : tensors) {
    std::size_t numel = 1;
    for (auto d : t.shape) numel *= d;
    if (t.int64_data) {
      for (std::size_t i = 0; i < numel; ++i, p += 8) detail::store_le(p, static_cast<std::uint64_t>(t.int64_data[i]));
    } else if constexpr (std::endian::native == std::endian::little) {
      if (numel) std::memcpy(p, t.data, numel * 4);
      p += numel * 4;
    } else {
      for (std::size_t i = 0; i < numel; ++i, p += 4) detail::store_le(p, std::bit_cast<std::uint32_t>(t.data[i]));
    }
  }
  return out;
}

/// Reads and validates a safetensors file (format_error names the file).
inline SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  const auto bytes = read_file(path);
  return parse_safetensors(bytes, path.string());
}

/// One view as an entry for serialize_safetensors (int64 views as I64).
inline TensorEntry entry_of(const std::string& name, const TensorRef& t) {
  if (t.dtype() == Dtype::int64) return {name, t.shape(), nullptr, t.int64_data()};
  return {name, t.shape(), t.data()};
}

/// The entries of a state_dict, for serialize_safetensors.
inline std::vector<TensorEntry> entries_of(const StateDict& sd) {
  std::vector<TensorEntry> e;
  for (const auto& [name, t] : sd) e.push_back(entry_of(name, t));
  return e;
}

/// Copies `file`'s tensors into `target` (a state_dict: views of a model's parameters) after
/// checking all of them: every target name present with its shape; with `strict`, no other
/// tensor in the file. On any mismatch nothing is written and format_error lists every problem.
inline void load_state_dict(const StateDict& target, const SafetensorsFile& file, bool strict = true,
                            std::string_view source = "<memory>") {
  using detail::quote_name;
  std::vector<std::string> problems;
  for (const auto& [name, t] : target) {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end()) {
      problems.push_back("missing tensor " + quote_name(name) + " (expected shape " + t.shape_str() + ")");
    } else if (it->second.shape != t.shape()) {
      problems.push_back("tensor " + quote_name(name) + ": expected shape " + t.shape_str() + ", found " +
                         it->second.shape_str());
    } else if ((t.dtype() == Dtype::int64) != (it->second.dtype == "I64")) {
      problems.push_back("tensor " + quote_name(name) + ": expected dtype " +
                         (t.dtype() == Dtype::int64 ? "I64 (int64)" : "F32 (or F64, F16, BF16)") + ", found " +
                         it->second.dtype);
    }
  }
  if (strict) {
    for (const auto& [name, lt] : file.tensors)
      if (!target.contains(name))
        problems.push_back("unexpected tensor " + quote_name(name) + " (shape " + lt.shape_str() + ", " + lt.dtype +
                           "; load with strict = false to ignore it)");
  }
  if (!problems.empty()) {
    std::string msg = "does not match the model: ";
    for (std::size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
    detail::st_fail(source, msg);
  }
  for (const auto& [name, t] : target) {
    const auto& lt = file.tensors.at(name);
    if (t.dtype() == Dtype::int64) std::copy(lt.int64_values.begin(), lt.int64_values.end(), t.int64_data());
    else std::copy(lt.values.begin(), lt.values.end(), t.data());
  }
}

}  // namespace ctnn::io

namespace ctnn {

/// A model, a layer, or anything else with a state_dict().
template <class M>
concept HasStateDict = requires(const M& m) {
  { m.state_dict() } -> std::same_as<StateDict>;
};

/// Saves m.state_dict() (PyTorch's names, F32, metadata {"format": "pt"}) to `path`, atomically.
template <HasStateDict M>
void save(const M& m, const std::filesystem::path& path) {
  const auto sd = m.state_dict();
  const auto entries = io::entries_of(sd);
  io::write_file_atomic(path, io::serialize_safetensors(entries));
}

/// Loads `path` into m's parameters, checked against its compile-time schema; with strict = false
/// tensors the model does not have are ignored (missing or misshaped ones are always an error).
/// On any error m is unchanged.
template <HasStateDict M>
void load(M& m, const std::filesystem::path& path, bool strict = true) {
  io::load_state_dict(m.state_dict(), io::read_safetensors(path), strict, path.string());
}

/// Saves one tensor, under the name "tensor".
template <class S>
void save(const Tensor<S>& t, const std::filesystem::path& path) {
  const io::TensorEntry e{"tensor", {S::dims.begin(), S::dims.end()}, t.data()};
  io::write_file_atomic(path, io::serialize_safetensors(std::span(&e, 1)));
}

/// Loads one tensor: the one named "tensor", or else the file's only tensor; its shape must be S.
template <class S>
void load(Tensor<S>& t, const std::filesystem::path& path) {
  const auto file = io::read_safetensors(path);
  const io::LoadedTensor* found = nullptr;
  if (auto it = file.tensors.find("tensor"); it != file.tensors.end()) found = &it->second;
  else if (file.tensors.size() == 1) found = &file.tensors.begin()->second;
  if (!found) {
    std::string names;
    for (const auto& [n, unused] : file.tensors) names += (names.empty() ? "" : ", ") + io::detail::quote_name(n);
    io::detail::st_fail(path.string(), "no tensor named 'tensor' and " + std::to_string(file.tensors.size()) +
                                           " tensors to choose from (" + names + "); use load_tensors");
  }
  const std::vector<std::size_t> want(S::dims.begin(), S::dims.end());
  if (found->shape != want)
    io::detail::st_fail(path.string(),
                        "tensor: expected shape " + io::detail::shape_str(want) + ", found " + found->shape_str());
  std::copy(found->values.begin(), found->values.end(), t.data());
}

/// Saves name -> tensor (a state_dict, or any views), in the given order (a map: sorted by name).
inline void save_tensors(const StateDict& tensors, const std::filesystem::path& path,
                         const std::map<std::string, std::string>& metadata = {{"format", "pt"}}) {
  io::write_file_atomic(path, io::serialize_safetensors(io::entries_of(tensors), metadata));
}
inline void save_tensors(const std::map<std::string, TensorRef>& tensors, const std::filesystem::path& path,
                         const std::map<std::string, std::string>& metadata = {{"format", "pt"}}) {
  std::vector<io::TensorEntry> e;
  for (const auto& [name, t] : tensors) e.push_back(io::entry_of(name, t));
  io::write_file_atomic(path, io::serialize_safetensors(e, metadata));
}
/// load_tensors' result saves back unchanged (as F32; I64 tensors as I64).
inline void save_tensors(const std::map<std::string, io::LoadedTensor>& tensors, const std::filesystem::path& path,
                         const std::map<std::string, std::string>& metadata = {{"format", "pt"}}) {
  std::vector<io::TensorEntry> e;
  for (const auto& [name, t] : tensors) {
    std::size_t n = 1;
    for (auto d : t.shape) n *= d;
    if (n != t.values.size())
      io::detail::st_fail(path.string(), "tensor " + io::detail::quote_name(name) + ": shape " + t.shape_str() +
                                             " needs " + std::to_string(n) + " values, it has " +
                                             std::to_string(t.values.size()));
    e.push_back({name, t.shape, t.values.data(), t.dtype == "I64" ? t.int64_values.data() : nullptr});
  }
  io::write_file_atomic(path, io::serialize_safetensors(e, metadata));
}

/// Every tensor of a safetensors file, by name, as float32 (F64/F16/BF16 converted).
inline std::map<std::string, io::LoadedTensor> load_tensors(const std::filesystem::path& path) {
  return io::read_safetensors(path).tensors;
}

}  // namespace ctnn
