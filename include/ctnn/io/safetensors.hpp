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
// model (or tensor) exactly as it was: the header length is sane, the header is JSON with no
// duplicate keys, every entry has a known dtype, a shape and data_offsets whose size matches,
// the tensors tile the data section exactly (no overlap, no gap, no trailing bytes), every
// tensor the model expects is present with its shape, and (strict) no other tensor is.
// F32 is read as is; F64 is rounded to float32, F16 and BF16 are widened exactly (PyTorch's
// load_state_dict converts dtypes the same way). Other dtypes are rejected. Every error is an
// io::format_error (bad or mismatching content) or io::file_error (the operating system said
// no), both io::safetensors_error, whose message names the file, the tensor and what was
// expected and found.
//
// Saving is atomic: the bytes go to a temporary file in the target's directory, which is
// flushed, fsync'ed and renamed over the target, so an error or a crash mid-save leaves the
// previous file intact (and no temporary file behind after an error).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <concepts>
#include <cerrno>
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

#include "ctnn/core/tensor.hpp"
#include "ctnn/nn/module.hpp"

namespace ctnn::io {

/// Any save/load problem. what() names the file (or "<memory>") and the problem.
struct safetensors_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// The content is malformed, or does not match what it is loaded into.
struct format_error : safetensors_error {
  using safetensors_error::safetensors_error;
};
/// The operating system refused: open, read, write, fsync or rename failed.
struct file_error : safetensors_error {
  using safetensors_error::safetensors_error;
};

/// Headers longer than this are rejected (the reference implementation's limit).
inline constexpr std::uint64_t safetensors_max_header_size = 100'000'000;

/// One tensor read from a file: its shape, its values as float32, and the dtype it had there.
struct LoadedTensor {
  std::vector<std::size_t> shape;
  std::vector<float> values;  // row-major, converted to float32
  std::string dtype;          // as in the file: "F32", "F64", "F16" or "BF16"
  std::size_t numel() const { return values.size(); }
  /// "[256, 20]"
  std::string shape_str() const;
};

/// A parsed safetensors file: every tensor by name, and the header's __metadata__.
struct SafetensorsFile {
  std::map<std::string, LoadedTensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// What to write: a name, a shape and shape-product floats (not owned).
struct TensorEntry {
  std::string name;
  std::vector<std::size_t> shape;
  const float* data;
};

namespace detail {

inline std::string shape_str(std::span<const std::size_t> s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

/// 'name', with control characters escaped so a hostile file can't garble the message.
inline std::string quote_name(std::string_view name) {
  std::string r = "'";
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char hex[] = "0123456789abcdef";
      r += "\\x";
      r += hex[u >> 4];
      r += hex[u & 15];
    } else {
      r += c;
    }
  }
  return r + "'";
}

[[noreturn]] inline void st_fail(std::string_view source, const std::string& what) {
  throw format_error("ctnn safetensors " + quote_name(source) + ": " + what);
}

enum class Dtype { F32, F64, F16, BF16 };

inline std::size_t dtype_size(Dtype d) {
  switch (d) {
    case Dtype::F32: return 4;
    case Dtype::F64: return 8;
    default: return 2;
  }
}

/// The dtype named `s`, or a format_error saying whether it is unsupported or unknown.
inline Dtype parse_dtype(const std::string& s, std::string_view source, const std::string& tensor) {
  if (s == "F32") return Dtype::F32;
  if (s == "F64") return Dtype::F64;
  if (s == "F16") return Dtype::F16;
  if (s == "BF16") return Dtype::BF16;
  static const std::set<std::string> known{"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64",
                                           "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};
  if (known.count(s))
    st_fail(source, "tensor " + quote_name(tensor) + ": unsupported dtype " + quote_name(s) +
                     " (expected F32; F64, F16 and BF16 are converted to F32)");
  st_fail(source, "tensor " + quote_name(tensor) + ": unknown dtype " + quote_name(s) + " (expected F32, F64, F16 or BF16)");
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

/// The header's JSON, rejecting duplicate keys (nlohmann would keep the last) and nesting
/// deeper than the format needs (object -> entry -> shape array).
inline nlohmann::json parse_header_json(std::string_view text, std::string_view source) {
  using json = nlohmann::json;
  std::vector<std::set<std::string>> keys;  // one per open object
  std::vector<bool> is_object;              // per open object or array
  std::string top_key;
  auto cb = [&](int, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (is_object.size() >= 3)
          st_fail(source, "the JSON header nests deeper than the format allows (at " + quote_name(top_key) + ")");
        is_object.push_back(ev == json::parse_event_t::object_start);
        if (is_object.back()) keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!is_object.empty()) {
          if (is_object.back()) keys.pop_back();
          is_object.pop_back();
        }
        break;
      case json::parse_event_t::key: {
        const auto& k = parsed.get_ref<const std::string&>();
        if (is_object.size() == 1) top_key = k;
        if (!keys.back().insert(k).second) {
          if (is_object.size() == 1)
            st_fail(source, "tensor " + quote_name(k) + " appears twice in the header (duplicate names)");
          st_fail(source, "tensor " + quote_name(top_key) + ": duplicate key " + quote_name(k) + " in its header entry");
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), cb);
  } catch (const json::exception& e) {
    st_fail(source, std::string("the header is not valid JSON: ") + e.what());
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
  using json = nlohmann::json;
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
  // JSON text holds no raw NUL; nlohmann would stop at one and accept whatever follows it.
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    st_fail(source, "the header has a NUL byte at offset " + std::to_string(nul) + " (not valid JSON)");
  const json header = detail::parse_header_json(text, source);
  if (!header.is_object()) st_fail(source, std::string("the header is a JSON ") + header.type_name() + ", expected an object");

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
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) st_fail(source, std::string("__metadata__ is a JSON ") + v.type_name() + ", expected an object of strings");
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string())
          st_fail(source, "__metadata__ entry " + quote_name(k) + " is a JSON " + s.type_name() + ", expected a string");
        out.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string t = "tensor " + quote_name(name) + ": ";
    if (!v.is_object())
      st_fail(source, t + "its header entry is a JSON " + v.type_name() + ", expected an object with dtype, shape, data_offsets");
    for (const auto& [k, unused] : v.items())
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        st_fail(source, t + "unexpected key " + quote_name(k) + " (expected dtype, shape, data_offsets)");
    for (const char* k : {"dtype", "shape", "data_offsets"})
      if (!v.contains(k)) st_fail(source, t + "the header entry has no " + k);
    const auto& jd = v["dtype"];
    const auto& js = v["shape"];
    const auto& jo = v["data_offsets"];
    if (!jd.is_string()) st_fail(source, t + "dtype is a JSON " + std::string(jd.type_name()) + ", expected a string such as \"F32\"");
    Entry e{name, detail::parse_dtype(jd.get<std::string>(), source, name), jd.get<std::string>(), {}, 0, 0};
    if (!js.is_array()) st_fail(source, t + "shape is a JSON " + std::string(js.type_name()) + ", expected an array of integers");
    std::uint64_t numel = 1;
    for (const auto& d : js) {
      if (!d.is_number_unsigned())
        st_fail(source, t + "shape " + js.dump() + " has an entry that is not a non-negative integer");
      const auto dim = d.get<std::uint64_t>();
      if (dim > std::numeric_limits<std::size_t>::max()) st_fail(source, t + "dimension " + std::to_string(dim) + " is too large");
      numel = detail::checked_mul(numel, dim, source, name);
      e.shape.push_back(static_cast<std::size_t>(dim));
    }
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
      st_fail(source, t + "data_offsets " + jo.dump() + ", expected [begin, end] (two non-negative integers)");
    e.begin = jo[0].get<std::uint64_t>();
    e.end = jo[1].get<std::uint64_t>();
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
  std::sort(order.begin(), order.end(),
            [](const Entry* a, const Entry* b) { return a->begin != b->begin ? a->begin < b->begin : a->end < b->end; });
  std::uint64_t at = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : order) {
    const std::string offs = "data_offsets [" + std::to_string(e->begin) + ", " + std::to_string(e->end) + "]";
    if (e->begin < at)
      st_fail(source, "tensor " + quote_name(e->name) + ": " + offs + " overlap tensor " + quote_name(prev->name) + " [" +
                       std::to_string(prev->begin) + ", " + std::to_string(prev->end) + "]");
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
    LoadedTensor lt{std::move(e.shape), {}, e.dtype_name};
    const std::byte* p = data.data() + e.begin;
    const std::size_t count = static_cast<std::size_t>((e.end - e.begin) / detail::dtype_size(e.dtype));
    lt.values.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
      float f;
      switch (e.dtype) {
        case detail::Dtype::F32: f = std::bit_cast<float>(detail::load_le<std::uint32_t>(p + 4 * i)); break;
        case detail::Dtype::F64: f = static_cast<float>(std::bit_cast<double>(detail::load_le<std::uint64_t>(p + 8 * i))); break;
        case detail::Dtype::F16: f = detail::half_to_float(detail::load_le<std::uint16_t>(p + 2 * i)); break;
        default: f = std::bit_cast<float>(static_cast<std::uint32_t>(detail::load_le<std::uint16_t>(p + 2 * i)) << 16);
      }
      lt.values[i] = f;
    }
    out.tensors.emplace(e.name, std::move(lt));
  }
  return out;
}

/// The bytes of a safetensors file holding `tensors` (F32, in this order) and `metadata`.
inline std::vector<std::byte> serialize_safetensors(std::span<const TensorEntry> tensors,
                                                    const std::map<std::string, std::string>& metadata = {{"format", "pt"}}) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__" || header.contains(t.name))
      detail::st_fail("<save>", "tensor " + detail::quote_name(t.name) +
                                 (t.name == "__metadata__" ? ": the name is reserved" : ": the name is used twice"));
    std::uint64_t numel = 1;
    for (auto d : t.shape) numel = detail::checked_mul(numel, d, "<save>", t.name);
    const std::uint64_t nbytes = detail::checked_mul(numel, 4, "<save>", t.name);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata string that is not UTF-8
    detail::st_fail("<save>", std::string("cannot write the header: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts at a multiple of 8
  std::vector<std::byte> out(8 + text.size() + static_cast<std::size_t>(offset));
  detail::store_le<std::uint64_t>(out.data(), text.size());
  std::memcpy(out.data() + 8, text.data(), text.size());
  std::byte* p = out.data() + 8 + text.size();
  for (const auto& t : tensors) {
    std::size_t numel = 1;
    for (auto d : t.shape) numel *= d;
    if constexpr (std::endian::native == std::endian::little) {
      if (numel) std::memcpy(p, t.data, numel * 4);
      p += numel * 4;
    } else {
      for (std::size_t i = 0; i < numel; ++i, p += 4) detail::store_le(p, std::bit_cast<std::uint32_t>(t.data[i]));
    }
  }
  return out;
}

namespace detail {

[[noreturn]] inline void st_fail_os(const std::string& what, const std::filesystem::path& path, int err) {
  throw file_error("ctnn safetensors " + quote_name(path.string()) + ": " + what + ": " + std::strerror(err));
}

}  // namespace detail

/// The whole file's bytes.
inline std::vector<std::byte> read_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) detail::st_fail_os("cannot open for reading", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    detail::st_fail_os("cannot stat", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw file_error("ctnn safetensors " + detail::quote_name(path.string()) + ": not a regular file");
  }
  std::vector<std::byte> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t r = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      const int err = r < 0 ? errno : EIO;
      ::close(fd);
      detail::st_fail_os("read failed after " + std::to_string(done) + " bytes", path, err);
    }
    done += static_cast<std::size_t>(r);
  }
  ::close(fd);
  return bytes;
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, written,
/// fsync'ed, closed and renamed over `path` (then the directory is fsync'ed). On any error the
/// temporary file is removed, `path` is untouched, and file_error is thrown.
inline void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  namespace fs = std::filesystem;
  if (!path.has_filename()) throw file_error("ctnn safetensors " + detail::quote_name(path.string()) + ": not a file name");
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  static std::atomic<unsigned> counter{0};
  fs::path tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    tmp = dir / ("." + path.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                 std::to_string(counter.fetch_add(1)));
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || attempt > 100)) detail::st_fail_os("cannot create a temporary file " + detail::quote_name(tmp.string()), path, errno);
  }
  auto abandon = [&](const std::string& what, int err) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    detail::st_fail_os(what, path, err);
  };
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) abandon("write failed after " + std::to_string(done) + " of " + std::to_string(bytes.size()) + " bytes", w < 0 ? errno : EIO);
    done += static_cast<std::size_t>(w);
  }
  if (::fsync(fd) != 0) abandon("fsync failed", errno);
  const int c = ::close(fd);
  fd = -1;
  if (c != 0) abandon("close failed", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) abandon("cannot rename the temporary file over it", errno);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {  // make the rename itself durable; best effort (some file systems refuse)
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

/// Reads and validates a safetensors file (format_error names the file).
inline SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  const auto bytes = read_file(path);
  return parse_safetensors(bytes, path.string());
}

/// The entries of a state_dict, for serialize_safetensors.
inline std::vector<TensorEntry> entries_of(const StateDict& sd) {
  std::vector<TensorEntry> e;
  for (const auto& [name, t] : sd) e.push_back({name, t.shape(), t.data()});
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
    const auto& v = file.tensors.at(name).values;
    std::copy(v.begin(), v.end(), t.data());
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
    io::detail::st_fail(path.string(), "tensor: expected shape " + io::detail::shape_str(want) + ", found " +
                                        found->shape_str());
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
  for (const auto& [name, t] : tensors) e.push_back({name, t.shape(), t.data()});
  io::write_file_atomic(path, io::serialize_safetensors(e, metadata));
}
/// load_tensors' result saves back unchanged (as F32).
inline void save_tensors(const std::map<std::string, io::LoadedTensor>& tensors, const std::filesystem::path& path,
                         const std::map<std::string, std::string>& metadata = {{"format", "pt"}}) {
  std::vector<io::TensorEntry> e;
  for (const auto& [name, t] : tensors) {
    std::size_t n = 1;
    for (auto d : t.shape) n *= d;
    if (n != t.values.size())
      io::detail::st_fail(path.string(), "tensor " + io::detail::quote_name(name) + ": shape " + t.shape_str() + " needs " +
                                          std::to_string(n) + " values, it has " + std::to_string(t.values.size()));
    e.push_back({name, t.shape, t.values.data()});
  }
  io::write_file_atomic(path, io::serialize_safetensors(e, metadata));
}

/// Every tensor of a safetensors file, by name, as float32 (F64/F16/BF16 converted).
inline std::map<std::string, io::LoadedTensor> load_tensors(const std::filesystem::path& path) {
  return io::read_safetensors(path).tensors;
}

}  // namespace ctnn
