// Shape, Tensor, Batch, views, TensorRef, printing, random numbers, threads, zeroing arrays.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <ctnn/ctnn.hpp>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "helpers.hpp"

using ctnn::Batch, ctnn::Shape, ctnn::Tensor;

TEST_CASE("Shape reports rank, size, dims, strides and prints like torch.Size") {
  using S = Shape<2, 3, 4>;
  static_assert(S::rank == 3 && S::size == 24);
  static_assert(S::dims == std::array<std::size_t, 3>{2, 3, 4});
  static_assert(S::strides == std::array<std::size_t, 3>{12, 4, 1});
  static_assert(S::dim(-1) == 4 && S::dim(0) == 2);
  static_assert(S{} == Shape<2, 3, 4>{} && !(S{} == Shape<2, 12>{}));
  static_assert(Shape<>::size == 1 && Shape<>::rank == 0);
  static_assert(std::is_same_v<ctnn::replace_last_t<S, 7>, Shape<2, 3, 7>>);
  std::ostringstream os;
  os << S{};
  CHECK(os.str() == "[2, 3, 4]");
}

TEST_CASE("Tensor is zeroed, 64-byte aligned, row-major, and copies deeply") {
  Tensor<Shape<2, 3>> t;
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  CHECK(std::all_of(t.begin(), t.end(), [](float v) { return v == 0.0f; }));
  std::iota(t.begin(), t.end(), 0.0f);
  CHECK(t(1, 2) == 5.0f);
  CHECK(t[1][0] == 3.0f);  // t[1] is a view of row 1
  t[1][0] = 30.0f;
  CHECK(t(1, 0) == 30.0f);
  Tensor<Shape<2, 3>> u = t;
  u(0, 0) = -1.0f;
  CHECK(t(0, 0) == 0.0f);
  CHECK(t.numel() == 6);
  Tensor<Shape<2, 2>> v{1, 2, 3, 4};
  CHECK(v(1, 0) == 3.0f);
  CHECK_THROWS_WITH_AS((Tensor<Shape<2, 2>>{1, 2, 3}), "ctnn::Tensor[2, 2]: got 3 values, expected 4",
                       ctnn::shape_error);
}

TEST_CASE("Batch holds N samples contiguously (NCHW) with views of each sample") {
  Batch<Shape<2, 3>> X(4);
  CHECK(X.batch_size() == 4);
  CHECK(X.numel() == 24);
  CHECK(X.sizes() == std::vector<std::size_t>{4, 2, 3});
  CHECK(reinterpret_cast<std::uintptr_t>(X.data()) % 64 == 0);
  std::iota(X.begin(), X.end(), 0.0f);
  CHECK(X(2, 1, 0) == 2 * 6 + 3);
  auto s = X[3];
  CHECK(s(0, 1) == 19.0f);
  s(0, 1) = -1.0f;
  CHECK(X(3, 0, 1) == -1.0f);
  ctnn::ConstBatchView<Shape<2, 3>> cv = X;
  CHECK(cv(3, 0, 1) == -1.0f);
  std::vector<float> values(12, 1.0f);
  CHECK_THROWS_WITH_AS((Batch<Shape<2, 3>>(3, values)), "ctnn::Batch[2, 3](3): got 12 values, expected 18",
                       ctnn::shape_error);
  Batch<Shape<2, 3>> Y(2, values);
  CHECK(Y(1, 1, 2) == 1.0f);
  Y.resize(5);
  CHECK(Y.batch_size() == 5);
}

TEST_CASE("TensorRef carries a run-time shape over the same memory") {
  Tensor<Shape<3, 2>> t;
  ctnn::TensorRef r(t);
  CHECK(r.shape() == std::vector<std::size_t>{3, 2});
  CHECK(r.numel() == 6);
  CHECK(r.shape_str() == "[3, 2]");
  r[5] = 9.0f;
  CHECK(t(2, 1) == 9.0f);
}

TEST_CASE("tensors print like torch") {
  auto str = [](const auto& t) {
    std::ostringstream os;
    os << t;
    return os.str();
  };
  CHECK(str(Tensor<Shape<3>>{1, 2, 3}) == "tensor([1., 2., 3.])");
  CHECK(str(Tensor<Shape<2, 2>>{0.5f, 0.25f, 1, -2}) == "tensor([[ 0.5000,  0.2500],\n        [ 1.0000, -2.0000]])");
  CHECK(str(Tensor<Shape<2, 1, 2>>{1, 2, 3, 4}) == "tensor([[[1., 2.]],\n\n        [[3., 4.]]])");
}

TEST_CASE("a seeded Generator reproduces its stream; rand_ and randn_ have torch's distributions") {
  ctnn::Generator a(123), b(123), c(124);
  Batch<Shape<1000>> X(100), Y(100), Z(100);
  ctnn::rand_(X, a);
  ctnn::rand_(Y, b);
  ctnn::rand_(Z, c);
  CHECK(X.to_vector() == Y.to_vector());
  CHECK(X.to_vector() != Z.to_vector());
  double sum = 0, sq = 0;
  for (float v : X) {
    REQUIRE(v >= 0.0f);
    REQUIRE(v < 1.0f);
    sum += v;
    sq += double(v) * v;
  }
  const double n = double(X.numel()), mean = sum / n, var = sq / n - mean * mean;
  CHECK(mean == doctest::Approx(0.5).epsilon(0.01));
  CHECK(var == doctest::Approx(1.0 / 12).epsilon(0.02));

  ctnn::randn_(X, a);
  sum = sq = 0;
  for (float v : X) sum += v, sq += double(v) * v;
  CHECK(std::fabs(sum / n) < 0.01);
  CHECK(std::sqrt(sq / n) == doctest::Approx(1.0).epsilon(0.01));

  ctnn::manual_seed(5);
  auto r1 = ctnn::rand<Shape<8>>();
  ctnn::manual_seed(5);
  auto r2 = ctnn::rand<Shape<8>>();
  CHECK(r1.to_vector() == r2.to_vector());
  CHECK(ctnn::ones<Shape<2>>(3).to_vector() == std::vector<float>(6, 1.0f));
  CHECK(ctnn::zeros<Shape<2, 2>>().to_vector() == std::vector<float>(4, 0.0f));
}

TEST_CASE("zero_floats zeroes exactly [0, n), streamed past the caches from 1 MiB, at any alignment") {
  // zero_grad's fill: below 2^18 floats a plain fill, from there non-temporal stores after a head
  // that reaches 32-byte alignment, and a tail
  const std::size_t sizes[] = {
      0, 1, 7, 8, 100, (std::size_t{1} << 18) - 1, std::size_t{1} << 18, (std::size_t{1} << 18) + 13};
  for (const std::size_t n : sizes)
    for (const std::size_t offset : {0, 1, 3, 8}) {  // floats past a 64-byte boundary
      CAPTURE(n);
      CAPTURE(offset);
      ctnn::detail::aligned_floats buffer = ctnn::detail::allocate_floats(n + offset + 16);
      float* all = buffer.get();
      std::fill_n(all, n + offset + 16, 7.0f);
      ctnn::kernels::detail::zero_floats(all + offset, n);
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < n + offset + 16; ++i)
        wrong += all[i] != (i >= offset && i < offset + n ? 0.0f : 7.0f);
      CHECK(wrong == 0);
    }
}

TEST_CASE("set_num_threads / get_num_threads behave like torch's") {
  const int before = ctnn::get_num_threads();
  CHECK(before >= 1);
  ctnn::set_num_threads(1);
  CHECK(ctnn::get_num_threads() == 1);
  CHECK_THROWS_AS(ctnn::set_num_threads(0), std::invalid_argument);
  ctnn::set_num_threads(before);
}

TEST_CASE("parallel_for runs every task once, task 0 on the caller, and rethrows a task's exception") {
  for (std::size_t T : {1u, 2u, 3u, 5u}) {
    std::vector<std::atomic<int>> runs(T);
    std::thread::id first;
    ctnn::detail::parallel_for(T, [&](std::size_t t) {
      runs[t].fetch_add(1);
      if (t == 0) first = std::this_thread::get_id();
    });
    for (auto& r : runs) CHECK(r.load() == 1);
    CHECK(first == std::this_thread::get_id());
  }
  // An exception from a worker's task (or the caller's) reaches the caller after all tasks end.
  std::atomic<int> finished{0};
  CHECK_THROWS_WITH_AS(ctnn::detail::parallel_for(2,
                                                  [&](std::size_t t) {
                                                    if (t == 1) throw std::runtime_error("task 1 failed");
                                                    finished.fetch_add(1);
                                                  }),
                       "task 1 failed", std::runtime_error);
  CHECK(finished.load() == 1);
  // A parallel_for inside a task runs its tasks one after another on that thread.
  std::atomic<int> inner{0};
  ctnn::detail::parallel_for(2, [&](std::size_t) {
    ctnn::detail::parallel_for(3, [&](std::size_t) { inner.fetch_add(1); });
  });
  CHECK(inner.load() == 6);
}
