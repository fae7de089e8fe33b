// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed, and Fashion-MNIST itself.
//
//   auto a = ctnn::io::read_idx("t10k-labels-idx1-ubyte.gz");   // a.dims == {10000}, a.data: bytes
//   auto test = ctnn::io::load_fashion_mnist(ctnn::io::fashion_mnist_dir(), /*train=*/false);
//   test.images;   // Batch<Shape<1, 28, 28>>, pixels in [0, 1] (torchvision's ToTensor)
//   test.labels;   // std::vector<std::int64_t>, class indices 0..9
//
// An IDX file is a 4-byte magic (0, 0, element type, number of dimensions), one big-endian
// uint32 per dimension, then the elements in row-major order. Only unsigned bytes (type 0x08)
// are supported, which is what MNIST and Fashion-MNIST use. A file that starts with the gzip
// magic (1f 8b) is read through zlib. Every problem throws io::dataset_error with the file's
// path and what is wrong in the message.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ctnn/core/shape.hpp"
#include "ctnn/core/tensor.hpp"

namespace ctnn::io {

/// A dataset file is missing, unreadable or malformed. what() names the file and the problem.
struct dataset_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The contents of an IDX file: its dimensions and its elements (unsigned bytes), row-major.
struct IdxArray {
  std::vector<std::size_t> dims;
  std::vector<std::uint8_t> data;
};

/// Samples of shape S with one class label each (what torchvision's datasets hold).
template <class S>
struct Dataset {
  Batch<S> images;
  std::vector<std::int64_t> labels;
  std::size_t size() const { return labels.size(); }
};

namespace detail {

[[noreturn]] inline void fail(const std::filesystem::path& file, const std::string& what) {
  throw dataset_error("ctnn::io: " + file.string() + ": " + what);
}

inline std::string dims_str(const std::vector<std::size_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

/// Reads bytes from a plain file or, through zlib, from a gzip file; reports errors with the path.
class ByteSource {
 public:
  explicit ByteSource(const std::filesystem::path& path) : path_(path) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) fail(path, "no such file");
    if (std::filesystem::is_directory(status)) fail(path, "is a directory, not an IDX file");
    std::FILE* f = std::fopen(path.string().c_str(), "rb");
    if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
    unsigned char magic[2] = {0, 0};
    const std::size_t got = std::fread(magic, 1, 2, f);
    gzip_ = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (!gzip_) {
      std::rewind(f);
      file_ = f;
      return;
    }
    std::fclose(f);
#ifdef _WIN32
    gz_ = gzopen_w(path.c_str(), "rb");
#else
    gz_ = gzopen(path.c_str(), "rb");
#endif
    if (!gz_) fail(path, "cannot open as gzip");
  }
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;
  ~ByteSource() {
    if (file_) std::fclose(file_);
    if (gz_) gzclose_r(gz_);
  }

  bool gzip() const { return gzip_; }
  /// "" or " (after gzip decompression)", for messages about sizes.
  const char* where() const { return gzip_ ? " (after gzip decompression)" : ""; }

  /// Reads up to n bytes; fewer only at the end of the data. A read error or a corrupt or truncated
  /// gzip stream throws.
  std::size_t read(void* out, std::size_t n) {
    auto* p = static_cast<unsigned char*>(out);
    std::size_t total = 0;
    while (total < n) {
      std::size_t got = 0;
      if (gzip_) {
        const auto want = static_cast<unsigned>(std::min<std::size_t>(n - total, std::size_t{1} << 20));
        const int r = gzread(gz_, p + total, want);
        check_gzip();  // a truncated stream is not reported by gzread's return value, only here
        if (r < 0) fail(path_, "corrupt gzip stream");
        got = static_cast<std::size_t>(r);
      } else {
        got = std::fread(p + total, 1, n - total, file_);
        if (std::ferror(file_)) fail(path_, std::string("read error: ") + std::strerror(errno));
      }
      if (got == 0) break;
      total += got;
    }
    return total;
  }

 private:
  void check_gzip() {
    int err = Z_OK;
    const char* msg = gzerror(gz_, &err);
    if (err == Z_OK) return;
    std::string detail = msg && *msg ? msg : "zlib error " + std::to_string(err);
    if (const std::string prefix = path_.string() + ": "; detail.starts_with(prefix)) detail.erase(0, prefix.size());
    if (err == Z_ERRNO) fail(path_, std::string("read error: ") + std::strerror(errno));
    if (err == Z_BUF_ERROR) fail(path_, "truncated gzip stream (zlib: " + detail + ")");
    fail(path_, "not a valid gzip file or corrupt gzip stream (zlib: " + detail + ")");
  }

  std::filesystem::path path_;
  bool gzip_ = false;
  std::FILE* file_ = nullptr;
  gzFile gz_ = nullptr;
};

inline const char* idx_type_name(unsigned type) {
  switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown";
  }
}

}  // namespace detail

/// Reads an IDX file of unsigned bytes, plain or gzip-compressed (told apart by the gzip magic).
/// Throws dataset_error naming the file for: a missing or unreadable file, a corrupt or truncated
/// gzip stream, a truncated header, a bad magic, an element type other than 0x08, fewer bytes than
/// the dimensions say, and bytes after the last element.
inline IdxArray read_idx(const std::filesystem::path& path) {
  using detail::fail;
  detail::ByteSource in(path);

  std::array<unsigned char, 4> magic{};
  const std::size_t got_magic = in.read(magic.data(), magic.size());
  if (got_magic < magic.size())
    fail(path, "truncated header: the file has " + std::to_string(got_magic) + " bytes" + in.where() +
                   ", fewer than the 4-byte IDX magic");
  if (magic[0] != 0 || magic[1] != 0) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%02x %02x %02x %02x", magic[0], magic[1], magic[2], magic[3]);
    fail(path, std::string("bad magic ") + hex + ": not an IDX file (expected 00 00 <type> <rank>)");
  }
  if (magic[2] != 0x08) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", magic[2]);
    fail(path, std::string("unsupported element type ") + hex + " (" + detail::idx_type_name(magic[2]) +
                   "); only 0x08 (unsigned byte) is supported");
  }

  IdxArray result;
  const std::size_t rank = magic[3];
  std::vector<unsigned char> header(4 * rank);
  const std::size_t got_dims = in.read(header.data(), header.size());
  if (got_dims < header.size())
    fail(path, "truncated header: " + std::to_string(rank) + " dimensions need " + std::to_string(4 + 4 * rank) +
                   " header bytes, the file has " + std::to_string(4 + got_dims) + in.where());
  std::size_t count = 1;
  result.dims.resize(rank);
  for (std::size_t d = 0; d < rank; ++d) {
    const unsigned char* b = header.data() + 4 * d;
    result.dims[d] = (std::size_t{b[0]} << 24) | (std::size_t{b[1]} << 16) | (std::size_t{b[2]} << 8) | b[3];
    if (result.dims[d] != 0 && count > std::numeric_limits<std::size_t>::max() / result.dims[d])
      fail(path, "dimensions " + detail::dims_str(result.dims) + " overflow size_t");
    count *= result.dims[d];
  }

  // Grow in chunks so that a corrupt header claiming gigabytes fails on the short read, not the allocation.
  constexpr std::size_t chunk = std::size_t{16} << 20;
  std::size_t have = 0;
  while (have < count) {
    const std::size_t want = std::min(chunk, count - have);
    result.data.resize(have + want);
    const std::size_t got = in.read(result.data.data() + have, want);
    have += got;
    if (got < want)
      fail(path, "truncated data: dimensions " + detail::dims_str(result.dims) + " need " + std::to_string(count) +
                     " bytes after the header, the file has " + std::to_string(have) + in.where());
  }
  std::size_t trailing = 0;
  for (std::array<unsigned char, 4096> scratch{};;) {
    const std::size_t got = in.read(scratch.data(), scratch.size());
    if (got == 0) break;
    trailing += got;
  }
  if (trailing)
    fail(path, std::to_string(trailing) + " trailing bytes after the " + std::to_string(count) +
                   " elements of dimensions " + detail::dims_str(result.dims) + in.where());
  return result;
}

/// Debian's dataset-fashion-mnist package installs the four .gz files here.
inline const std::filesystem::path default_fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";

/// Where Fashion-MNIST is looked for: the environment variable CTNN_FASHION_MNIST when it is set and
/// not empty, otherwise default_fashion_mnist_dir (`apt install dataset-fashion-mnist`).
inline std::filesystem::path fashion_mnist_dir() {
  if (const char* env = std::getenv("CTNN_FASHION_MNIST"); env && *env) return env;
  return default_fashion_mnist_dir;
}

namespace detail {

/// dir/<stem>.gz if it exists, else dir/<stem>; if neither, an error naming both.
inline std::filesystem::path find_dataset_file(const std::filesystem::path& dir, const std::string& stem) {
  std::error_code ec;
  const auto gz = dir / (stem + ".gz");
  if (std::filesystem::exists(gz, ec)) return gz;
  const auto plain = dir / stem;
  if (std::filesystem::exists(plain, ec)) return plain;
  fail(gz, "no such file (nor " + plain.filename().string() +
               "); install Debian's dataset-fashion-mnist or point CTNN_FASHION_MNIST at a directory holding "
               "the Fashion-MNIST files");
}

}  // namespace detail

/// torchvision.datasets.FashionMNIST(dir, train) with transforms.ToTensor(): the training set (60000
/// images) or the test set (10000), images [N, 1, 28, 28] with pixels x / 255 in [0, 1], labels 0..9.
/// Reads {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz from `dir` (or the same names without .gz).
/// Throws dataset_error naming the file when one is missing or malformed, when the images are not
/// [N, 28, 28] or the labels not [N], when the two files disagree on N, or when a label exceeds 9.
inline Dataset<Shape<1, 28, 28>> load_fashion_mnist(const std::filesystem::path& dir = fashion_mnist_dir(),
                                                    bool train = true) {
  using detail::fail;
  const std::string prefix = train ? "train" : "t10k";
  const auto images_path = detail::find_dataset_file(dir, prefix + "-images-idx3-ubyte");
  const auto labels_path = detail::find_dataset_file(dir, prefix + "-labels-idx1-ubyte");

  const IdxArray images = read_idx(images_path);
  if (images.dims.size() != 3)
    fail(images_path, "expected 3 dimensions [N, 28, 28] for images, got " + std::to_string(images.dims.size()) + ": " +
                          detail::dims_str(images.dims));
  if (images.dims[1] != 28 || images.dims[2] != 28)
    fail(images_path,
         "expected 28x28 images, got " + std::to_string(images.dims[1]) + "x" + std::to_string(images.dims[2]));
  const IdxArray labels = read_idx(labels_path);
  if (labels.dims.size() != 1)
    fail(labels_path, "expected 1 dimension [N] for labels, got " + std::to_string(labels.dims.size()) + ": " +
                          detail::dims_str(labels.dims));
  const std::size_t n = images.dims[0];
  if (labels.dims[0] != n)
    fail(labels_path, "has " + std::to_string(labels.dims[0]) + " labels but " + images_path.string() + " has " +
                          std::to_string(n) + " images");

  Dataset<Shape<1, 28, 28>> ds{Batch<Shape<1, 28, 28>>(n), std::vector<std::int64_t>(n)};
  for (std::size_t i = 0; i < n; ++i) {
    if (labels.data[i] > 9)
      fail(labels_path, "label " + std::to_string(labels.data[i]) + " at index " + std::to_string(i) +
                            " is out of range: Fashion-MNIST has classes 0..9");
    ds.labels[i] = labels.data[i];
  }
  float* px = ds.images.data();
  for (std::size_t i = 0; i < images.data.size(); ++i) px[i] = static_cast<float>(images.data[i]) / 255.0f;
  return ds;
}

}  // namespace ctnn::io
