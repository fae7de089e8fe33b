// IDX files (plain and gzip), Fashion-MNIST loading, DataLoader batching and shuffling.
#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctnn/ctnn.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "helpers.hpp"

namespace fs = std::filesystem;
using ctnn::Shape;
using ctnn::io::dataset_error;

namespace {

/// A fresh directory under temp_directory_path(), removed with everything in it at scope exit.
using ctnn_test::TempDir;

using Bytes = std::vector<std::uint8_t>;

/// An IDX file's bytes: magic 00 00 <type> <rank>, big-endian dims, then `data`.
Bytes idx_bytes(const std::vector<std::uint32_t>& dims, const Bytes& data, std::uint8_t type = 0x08) {
  Bytes b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(d >> shift));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

void write_raw(const fs::path& p, const Bytes& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

void write_gz(const fs::path& p, const Bytes& bytes) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!bytes.empty())
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

Bytes read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Runs f, requires a dataset_error, and returns its message.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const dataset_error& e) {
    return e.what();
  }
  FAIL("expected ctnn::io::dataset_error");
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const Bytes sample_3x2x2{0, 1, 2, 3, 10, 20, 30, 40, 255, 254, 128, 7};

/// A synthetic Fashion-MNIST split: n images whose pixel k of image i is (i * 31 + k) % 256.
void write_fashion(const TempDir& dir, const std::string& prefix, const Bytes& labels, std::uint32_t n_images,
                   bool gz = true) {
  Bytes pixels(std::size_t{n_images} * 28 * 28);
  for (std::size_t i = 0; i < pixels.size(); ++i)
    pixels[i] = static_cast<std::uint8_t>(((i / 784) * 31 + i % 784) % 256);
  const auto img = idx_bytes({n_images, 28, 28}, pixels),
             lab = idx_bytes({static_cast<std::uint32_t>(labels.size())}, labels);
  const std::string ext = gz ? ".gz" : "";
  (gz ? write_gz : write_raw)(dir / (prefix + "-images-idx3-ubyte" + ext), img);
  (gz ? write_gz : write_raw)(dir / (prefix + "-labels-idx1-ubyte" + ext), lab);
}

/// A dataset of n samples of Shape<2> whose sample i is {i, -i} with label i.
ctnn::io::Dataset<Shape<2>> counting_dataset(std::size_t n) {
  ctnn::io::Dataset<Shape<2>> ds{ctnn::Batch<Shape<2>>(n), std::vector<std::int64_t>(n)};
  for (std::size_t i = 0; i < n; ++i) {
    ds.images(i, 0) = static_cast<float>(i);
    ds.images(i, 1) = -static_cast<float>(i);
    ds.labels[i] = static_cast<std::int64_t>(i);
  }
  return ds;
}

/// The labels of one epoch, in order, checking that images travel with their labels.
template <class S>
std::vector<std::int64_t> epoch_order(ctnn::io::DataLoader<S>& loader) {
  std::vector<std::int64_t> order;
  for (auto [X, y] : loader) {
    REQUIRE(X.batch_size() == y.size());
    for (std::size_t k = 0; k < y.size(); ++k) {
      CHECK(X(k, 0) == static_cast<float>(y[k]));
      order.push_back(y[k]);
    }
  }
  return order;
}

}  // namespace

TEST_CASE("read_idx round-trips a 3x2x2 uint8 array, plain and gzip") {
  TempDir dir;
  const Bytes bytes = idx_bytes({3, 2, 2}, sample_3x2x2);
  write_raw(dir / "a.idx", bytes);
  write_gz(dir / "a.idx.gz", bytes);
  for (const char* name : {"a.idx", "a.idx.gz"}) {
    CAPTURE(name);
    const auto a = ctnn::io::read_idx(dir / name);
    CHECK(a.dims == std::vector<std::size_t>{3, 2, 2});
    CHECK(a.data == sample_3x2x2);
  }
  // A gzip stream is recognised by its magic bytes, not by the file's name.
  fs::copy_file(dir / "a.idx.gz", dir / "compressed.idx");
  CHECK(ctnn::io::read_idx(dir / "compressed.idx").data == sample_3x2x2);
  // Big-endian dimensions above 255, and an empty array.
  write_raw(dir / "wide.idx", idx_bytes({1, 300}, Bytes(300, 9)));
  CHECK(ctnn::io::read_idx(dir / "wide.idx").dims == std::vector<std::size_t>{1, 300});
  write_raw(dir / "empty.idx", idx_bytes({0, 28}, {}));
  const auto empty = ctnn::io::read_idx(dir / "empty.idx");
  CHECK(empty.dims == std::vector<std::size_t>{0, 28});
  CHECK(empty.data.empty());
}

TEST_CASE("read_idx: every truncation of a plain or gzip IDX file is a dataset_error naming the file") {
  TempDir dir;
  const Bytes bytes = idx_bytes({3, 2, 2}, sample_3x2x2);
  write_gz(dir / "full.gz", bytes);
  const Bytes gz = read_all(dir / "full.gz");
  REQUIRE(gz.size() > 18);
  for (const auto* source : {&bytes, &gz}) {
    const bool is_gz = source == &gz;
    for (std::size_t len = 0; len < source->size(); ++len) {
      const auto path = dir / ((is_gz ? "cut_gz_" : "cut_raw_") + std::to_string(len) + ".idx");
      write_raw(path, Bytes(source->begin(), source->begin() + static_cast<std::ptrdiff_t>(len)));
      CAPTURE(len);
      const std::string msg = error_of([&] { ctnn::io::read_idx(path); });
      CHECK_MESSAGE(contains(msg, path.string()), msg);
      CHECK_MESSAGE(contains(msg, "truncated"), msg);
    }
  }
  // The plain messages say which part is missing.
  write_raw(dir / "h.idx", Bytes(bytes.begin(), bytes.begin() + 2));
  CHECK(contains(error_of([&] { ctnn::io::read_idx(dir / "h.idx"); }), "truncated header"));
  write_raw(dir / "d.idx", Bytes(bytes.begin(), bytes.begin() + 9));
  CHECK(contains(error_of([&] { ctnn::io::read_idx(dir / "d.idx"); }), "truncated header"));
  write_raw(dir / "e.idx", Bytes(bytes.begin(), bytes.end() - 1));
  const std::string short_data = error_of([&] { ctnn::io::read_idx(dir / "e.idx"); });
  CHECK_MESSAGE(contains(short_data, "truncated data"), short_data);
  CHECK_MESSAGE(contains(short_data, "need 12 bytes"), short_data);
  CHECK_MESSAGE(contains(short_data, "has 11"), short_data);
  // The same inside a valid gzip stream.
  write_gz(dir / "e.gz", Bytes(bytes.begin(), bytes.end() - 1));
  const std::string short_gz = error_of([&] { ctnn::io::read_idx(dir / "e.gz"); });
  CHECK_MESSAGE(contains(short_gz, "truncated data"), short_gz);
  CHECK_MESSAGE(contains(short_gz, "gzip"), short_gz);
}

TEST_CASE("read_idx rejects a bad magic, an unsupported type, trailing bytes, corrupt gzip, a missing file") {
  TempDir dir;
  const Bytes good = idx_bytes({3, 2, 2}, sample_3x2x2);
  auto message = [&](const std::string& name, const Bytes& bytes, bool gz = false) {
    (gz ? write_gz : write_raw)(dir / name, bytes);
    const std::string msg = error_of([&] { ctnn::io::read_idx(dir / name); });
    CHECK_MESSAGE(contains(msg, (dir / name).string()), msg);
    return msg;
  };

  SUBCASE("bad magic") {
    Bytes b = good;
    b[0] = 'P';
    b[1] = 'K';
    const auto msg = message("magic.idx", b);
    CHECK_MESSAGE(contains(msg, "bad magic 50 4b 08 03"), msg);
    CHECK_MESSAGE(contains(message("magic.gz", b, true), "bad magic"), "gzip");
  }
  SUBCASE("unsupported element type") {
    const auto msg = message("float.idx", idx_bytes({3}, Bytes(12, 0), 0x0D));
    CHECK_MESSAGE(contains(msg, "unsupported element type 0x0d (float32)"), msg);
    CHECK_MESSAGE(contains(message("odd.idx", idx_bytes({3}, Bytes(3, 0), 0x42)), "unsupported element type 0x42"),
                  "odd type");
  }
  SUBCASE("trailing bytes") {
    Bytes b = good;
    b.insert(b.end(), {1, 2, 3});
    const auto msg = message("trailing.idx", b);
    CHECK_MESSAGE(contains(msg, "3 trailing bytes"), msg);
    CHECK_MESSAGE(contains(message("trailing.gz", b, true), "3 trailing bytes"), "gzip");
  }
  SUBCASE("corrupt gzip body") {
    write_gz(dir / "ok.gz", good);
    Bytes gz = read_all(dir / "ok.gz");
    // Flip bits in the deflate body (after the 10-byte gzip header, before the 8-byte trailer).
    for (std::size_t i = 10; i + 8 < gz.size(); ++i) gz[i] ^= 0x5a;
    const auto msg = message("corrupt.gz", gz);
    CHECK_MESSAGE(contains(msg, "gzip"), msg);
    // A wrong CRC in the trailer is also caught.
    Bytes crc = read_all(dir / "ok.gz");
    crc[crc.size() - 6] ^= 0xff;
    const auto crc_msg = message("crc.gz", crc);
    CHECK_MESSAGE(contains(crc_msg, "corrupt gzip stream"), crc_msg);
    CHECK_MESSAGE(contains(crc_msg, "incorrect data check"), crc_msg);
  }
  SUBCASE("missing file and directory") {
    const auto missing = dir / "nope.idx";
    const std::string msg = error_of([&] { ctnn::io::read_idx(missing); });
    CHECK_MESSAGE(contains(msg, missing.string()), msg);
    CHECK_MESSAGE(contains(msg, "no such file"), msg);
    const std::string is_dir = error_of([&] { ctnn::io::read_idx(dir.path); });
    CHECK_MESSAGE(contains(is_dir, "is a directory"), is_dir);
  }
  SUBCASE("dataset_error is a runtime_error") {
    CHECK_THROWS_AS(ctnn::io::read_idx(dir / "nope.idx"), std::runtime_error);
  }
}

TEST_CASE("load_fashion_mnist reads a synthetic split: scaling like ToTensor, labels, file names") {
  TempDir dir;
  const Bytes labels{3, 0, 9, 1, 7};
  write_fashion(dir, "train", labels, 5, /*gz=*/true);
  write_fashion(dir, "t10k", {4, 2}, 2, /*gz=*/false);  // names without .gz are accepted too

  const auto train = ctnn::io::load_fashion_mnist(dir.path, true);
  static_assert(std::is_same_v<decltype(train.images), ctnn::Batch<Shape<1, 28, 28>>>);
  REQUIRE(train.size() == 5);
  CHECK(train.images.batch_size() == 5);
  CHECK(train.labels == std::vector<std::int64_t>{3, 0, 9, 1, 7});
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t k = 0; k < 784; ++k) {
      const auto byte = static_cast<float>((i * 31 + k) % 256);
      REQUIRE(train.images(i, 0, k / 28, k % 28) == byte / 255.0f);
    }
  const auto [lo, hi] = std::minmax_element(train.images.begin(), train.images.end());
  CHECK(*lo == 0.0f);
  CHECK(*hi == 1.0f);

  const auto test = ctnn::io::load_fashion_mnist(dir.path, false);
  CHECK(test.size() == 2);
  CHECK(test.labels == std::vector<std::int64_t>{4, 2});
  CHECK(test.images(1, 0, 0, 0) == 31.0f / 255.0f);
}

TEST_CASE("load_fashion_mnist rejects mismatched counts, wrong shapes, labels above 9, missing files") {
  TempDir dir;
  const auto images = dir / "train-images-idx3-ubyte.gz", labels = dir / "train-labels-idx1-ubyte.gz";
  auto load = [&] { return error_of([&] { ctnn::io::load_fashion_mnist(dir.path, true); }); };

  SUBCASE("missing files name the file and the override") {
    const std::string msg = load();
    CHECK_MESSAGE(contains(msg, images.string()), msg);
    CHECK_MESSAGE(contains(msg, "CTNN_FASHION_MNIST"), msg);
  }
  SUBCASE("different counts") {
    write_fashion(dir, "train", {1, 2, 3, 4}, 5);
    const std::string msg = load();
    CHECK_MESSAGE(contains(msg, labels.string()), msg);
    CHECK_MESSAGE(contains(msg, "4 labels"), msg);
    CHECK_MESSAGE(contains(msg, "5 images"), msg);
  }
  SUBCASE("label above 9") {
    write_fashion(dir, "train", {1, 2, 12, 4, 5}, 5);
    const std::string msg = load();
    CHECK_MESSAGE(contains(msg, labels.string()), msg);
    CHECK_MESSAGE(contains(msg, "label 12 at index 2"), msg);
  }
  SUBCASE("images with the wrong number of dimensions") {
    write_gz(images, idx_bytes({2, 784}, Bytes(2 * 784, 0)));
    write_gz(labels, idx_bytes({2}, {0, 1}));
    const std::string msg = load();
    CHECK_MESSAGE(contains(msg, images.string()), msg);
    CHECK_MESSAGE(contains(msg, "expected 3 dimensions"), msg);
  }
  SUBCASE("images that are not 28x28") {
    write_gz(images, idx_bytes({1, 32, 32}, Bytes(1024, 0)));
    write_gz(labels, idx_bytes({1}, {0}));
    const std::string msg = load();
    CHECK_MESSAGE(contains(msg, "expected 28x28 images, got 32x32"), msg);
  }
  SUBCASE("labels with the wrong number of dimensions") {
    write_gz(images, idx_bytes({1, 28, 28}, Bytes(784, 0)));
    write_gz(labels, idx_bytes({1, 1}, {0}));
    const std::string msg = load();
    CHECK_MESSAGE(contains(msg, labels.string()), msg);
    CHECK_MESSAGE(contains(msg, "expected 1 dimension"), msg);
  }
}

TEST_CASE("fashion_mnist_dir defaults to Debian's path and honours CTNN_FASHION_MNIST") {
  CHECK(ctnn::io::default_fashion_mnist_dir == fs::path("/usr/share/datasets/fashion-mnist"));
#ifndef _WIN32
  const char* old = std::getenv("CTNN_FASHION_MNIST");
  const std::string saved = old ? old : "";
  ::setenv("CTNN_FASHION_MNIST", "/somewhere/else", 1);
  CHECK(ctnn::io::fashion_mnist_dir() == fs::path("/somewhere/else"));
  ::setenv("CTNN_FASHION_MNIST", "", 1);
  CHECK(ctnn::io::fashion_mnist_dir() == ctnn::io::default_fashion_mnist_dir);
  if (old) ::setenv("CTNN_FASHION_MNIST", saved.c_str(), 1);
  else ::unsetenv("CTNN_FASHION_MNIST");
#endif
}

TEST_CASE("Fashion-MNIST t10k from the installed dataset: 10000 images, 1000 per class, pixels in [0, 1]") {
  const fs::path dir = ctnn::io::fashion_mnist_dir();
  std::error_code ec;
  if (!fs::exists(dir / "t10k-images-idx3-ubyte.gz", ec) && !fs::exists(dir / "t10k-images-idx3-ubyte", ec)) {
    MESSAGE("Fashion-MNIST not found in "
            << dir.string() << " (apt install dataset-fashion-mnist, or set CTNN_FASHION_MNIST); skipped");
    return;
  }
  const auto test = ctnn::io::load_fashion_mnist(dir, false);
  REQUIRE(test.size() == 10000);
  REQUIRE(test.images.batch_size() == 10000);
  std::vector<int> per_class(10, 0);
  for (auto l : test.labels) {
    REQUIRE((l >= 0 && l <= 9));
    ++per_class[static_cast<std::size_t>(l)];
  }
  CHECK(per_class == std::vector<int>(10, 1000));
  const auto [lo, hi] = std::minmax_element(test.images.begin(), test.images.end());
  CHECK(*lo == 0.0f);
  CHECK(*hi == 1.0f);
  // An iteration of the test set in batches of 256, as D2L does.
  ctnn::io::DataLoader loader(test, 256, /*shuffle=*/false);
  CHECK(loader.size() == 40);
}

TEST_CASE("DataLoader: batch count and sizes with and without drop_last") {
  const auto ds = counting_dataset(10);
  for (bool shuffle : {false, true}) {
    CAPTURE(shuffle);
    ctnn::io::DataLoader keep(ds, 4, shuffle);
    CHECK(keep.size() == 3);
    CHECK(keep.dataset_size() == 10);
    std::vector<std::size_t> sizes;
    for (auto [X, y] : keep) {
      sizes.push_back(X.batch_size());
      CHECK(y.size() == X.batch_size());
    }
    CHECK(sizes == std::vector<std::size_t>{4, 4, 2});

    ctnn::io::DataLoader drop(ds, 4, shuffle, 0, /*drop_last=*/true);
    CHECK(drop.size() == 2);
    sizes.clear();
    for (const auto& batch : drop) sizes.push_back(batch.size());
    CHECK(sizes == std::vector<std::size_t>{4, 4});

    ctnn::io::DataLoader exact(ds, 5, shuffle, 0, true);
    CHECK(exact.size() == 2);
    ctnn::io::DataLoader big(ds, 64, shuffle);
    CHECK(big.size() == 1);
    CHECK(std::distance(big.begin(), big.end()) == 1);
    CHECK((*big.begin()).images().batch_size() == 10);
    ctnn::io::DataLoader big_drop(ds, 64, shuffle, 0, true);
    CHECK(big_drop.size() == 0);
    CHECK(big_drop.begin() == big_drop.end());
  }
  const auto empty = counting_dataset(0);
  ctnn::io::DataLoader none(empty, 3, true);
  CHECK(none.size() == 0);
  CHECK(none.begin() == none.end());
  CHECK_THROWS_AS(ctnn::io::DataLoader(ds, 0), std::invalid_argument);
  static_assert(std::input_iterator<ctnn::io::DataLoader<Shape<2>>::iterator>);
  static_assert(!std::is_constructible_v<ctnn::io::DataLoader<Shape<2>>, ctnn::io::Dataset<Shape<2>>, std::size_t>,
                "a loader cannot bind to a temporary dataset");
}

TEST_CASE("DataLoader: order per epoch — in order without shuffle, a permutation with it, seeded") {
  const auto ds = counting_dataset(37);
  std::vector<std::int64_t> identity(37);
  std::iota(identity.begin(), identity.end(), 0);

  ctnn::io::DataLoader plain(ds, 8, /*shuffle=*/false);
  CHECK(epoch_order(plain) == identity);
  CHECK(epoch_order(plain) == identity);

  ctnn::io::DataLoader a(ds, 8, true, /*seed=*/42), b(ds, 8, true, 42), c(ds, 8, true, 43);
  const auto a0 = epoch_order(a), a1 = epoch_order(a), a2 = epoch_order(a);
  CHECK(a.epoch() == 3);
  for (const auto* order : {&a0, &a1, &a2}) {  // every sample exactly once per epoch
    auto sorted = *order;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == identity);
    CHECK(*order != identity);
  }
  CHECK(a0 != a1);  // a new order each epoch
  CHECK(a1 != a2);
  CHECK(epoch_order(b) == a0);  // same seed, same orders
  CHECK(epoch_order(b) == a1);
  CHECK(epoch_order(c) != a0);  // another seed, another order

  // Fixed values: the permutation depends only on ctnn::Generator (mt19937), not on the compiler or
  // standard library (std::uniform_int_distribution and std::shuffle are not used).
  ctnn::io::DataLoader fixed(ds, 37, true, 0);
  const auto e0 = epoch_order(fixed), e1 = epoch_order(fixed);
  CHECK(std::vector<std::int64_t>(e0.begin(), e0.begin() + 6) == std::vector<std::int64_t>{24, 36, 1, 35, 20, 29});
  CHECK(std::vector<std::int64_t>(e1.begin(), e1.begin() + 6) == std::vector<std::int64_t>{19, 12, 33, 16, 1, 15});
}

TEST_CASE("DataLoader allocates nothing after the first epoch") {
  const auto ds = counting_dataset(50);
  for (bool shuffle : {false, true}) {
    CAPTURE(shuffle);
    ctnn::io::DataLoader loader(ds, 16, shuffle, 7);
    double sum = 0;
    std::size_t seen = 0;
    auto epoch = [&] {
      for (auto [X, y] : loader) {
        for (std::size_t k = 0; k < y.size(); ++k) sum += static_cast<double>(X(k, 0)) + static_cast<double>(y[k]);
        seen += y.size();
      }
    };
    CHECK(ctnn_test::steady_state_allocations(epoch, 3) == 0);
    CHECK(seen == 200);
    CHECK(sum == 4 * 2 * (49 * 50 / 2));  // four epochs of sample i's image value i and label i
  }
}

TEST_CASE("DataLoader with a DistributedSampler: equal shards whose k-th batches make the unsharded k-th batch") {
  // torch.utils.data.distributed.DistributedSampler: the same permutation on every rank, padded
  // to a multiple of num_replicas with its first indices, rank r taking indices[r::w].
  for (std::size_t n : {48, 50, 3}) {
    const auto ds = counting_dataset(n);
    for (bool shuffle : {false, true}) {
      for (std::size_t w : {1, 2, 3, 4}) {
        CAPTURE(n);
        CAPTURE(shuffle);
        CAPTURE(w);
        const std::size_t b = 4, B = b * w;
        ctnn::io::DataLoader whole(ds, B, shuffle, 9);
        whole.set_epoch(5);
        std::vector<std::vector<std::int64_t>> global;  // the unsharded batches, each sorted
        for (auto [X, y] : whole) global.emplace_back(y.begin(), y.end());
        const auto order = [&] {
          std::vector<std::int64_t> all;
          for (const auto& g : global) all.insert(all.end(), g.begin(), g.end());
          return all;
        }();
        std::vector<std::vector<std::int64_t>> unions(global.size());
        for (std::size_t r = 0; r < w; ++r) {
          ctnn::io::DataLoader shard(ds, b, shuffle, 9, false, {.num_replicas = w, .rank = r});
          CHECK(shard.num_samples() == (n + w - 1) / w);  // equal on every rank
          shard.set_epoch(5);
          const auto mine = epoch_order(shard);
          REQUIRE(mine.size() == shard.num_samples());
          for (std::size_t p = 0; p < mine.size(); ++p) {
            CHECK(mine[p] == order[(r + p * w) % n]);  // indices[r::w] of the padded permutation
            unions[p / b].push_back(mine[p]);
          }
          CHECK(shard.epoch() == 6);
        }
        REQUIRE(unions.size() == global.size());
        for (std::size_t k = 0; k < global.size(); ++k) {
          auto u = unions[k], g = global[k];
          std::sort(u.begin(), u.end());
          std::sort(g.begin(), g.end());
          if (n % w == 0) CHECK(u == g);  // the same samples as the single process's k-th batch
          else CHECK(std::includes(u.begin(), u.end(), g.begin(), g.end()));  // plus the padding's repeats
        }
      }
    }
  }
  const auto ds = counting_dataset(10);
  CHECK_THROWS_WITH_AS(ctnn::io::DataLoader(ds, 4, true, 0, false, {.num_replicas = 2, .rank = 2}),
                       "ctnn::io::DataLoader: invalid rank 2, rank should be in the interval [0, 1]",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ctnn::io::DataLoader(ds, 4, true, 0, false, {.num_replicas = 0, .rank = 0}),
                       "ctnn::io::DataLoader: num_replicas must be positive", std::invalid_argument);
}
