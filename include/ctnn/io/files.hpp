// The errors of save and load, and the POSIX file operations under them (ctnn/io/safetensors.hpp):
//   safetensors_error, with format_error (bad or mismatching content) and file_error (the
//   operating system said no); read_file (a regular file's bytes); write_file_atomic (a
//   temporary file beside the target, written, fsync'ed and renamed over it: an error or a crash
//   leaves the previous file intact). Messages name the file with quote_name, which escapes
//   control characters and bytes that are not UTF-8.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ctnn/io/json.hpp"

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

namespace detail {

/// 'name', with control characters and bytes that are not UTF-8 escaped as \xNN, so a hostile
/// file (or name) can't garble the message.
inline std::string quote_name(std::string_view name) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string r = "'";
  for (std::size_t i = 0; i < name.size();) {
    const auto u = static_cast<unsigned char>(name[i]);
    const std::size_t n = json::utf8_sequence_length(name, i);
    if (n == 0 || u < 0x20 || u == 0x7f) {
      r += "\\x";
      r += hex[u >> 4];
      r += hex[u & 15];
      ++i;
    } else {
      r.append(name.substr(i, n));
      i += n;
    }
  }
  return r + "'";
}

[[noreturn]] inline void st_fail_os(const std::string& what, const std::filesystem::path& path, int err) {
  throw file_error("ctnn safetensors " + quote_name(path.string()) + ": " + what + ": " + std::strerror(err));
}

}  // namespace detail

/// The whole file's bytes.
inline std::vector<std::byte> read_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) detail::st_fail_os("cannot open for reading", path, errno);
  struct stat st{};
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
  if (!path.has_filename())
    throw file_error("ctnn safetensors " + detail::quote_name(path.string()) + ": not a file name");
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  static std::atomic<unsigned> counter{0};
  fs::path tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    std::string name = ".";  // appended piece by piece: g++ 12 -O3 warns -Wrestrict on "." + ... (GCC bug 105329)
    name += path.filename().string();
    name += ".tmp-";
    name += std::to_string(::getpid());
    name += '-';
    name += std::to_string(counter.fetch_add(1));
    tmp = dir / name;
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || attempt > 100))
      detail::st_fail_os("cannot create a temporary file " + detail::quote_name(tmp.string()), path, errno);
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
    if (w <= 0)
      abandon("write failed after " + std::to_string(done) + " of " + std::to_string(bytes.size()) + " bytes",
              w < 0 ? errno : EIO);
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

}  // namespace ctnn::io
