// Every kernel form, forced, on a grid of shapes, against ONE plain scalar reference per kernel.
//
// The layers let cost models pick a form (conv: gemm / depthwise / flat / shifted forward; gemm /
// flat / shifted / outer weight gradient; col2im / flat input gradient. Linear: dot / packed.
// AvgPool2d: the general separable path / the non-overlapping kernel-2 path), so a form is
// exercised in the other tests only on the shapes where the model happens to choose it, and the
// choices differ between 16 and 8 lanes (-Disa=avx2). Here every form that supports a shape runs
// on it: strides, dilations, groups, every padding mode, odd sizes, channel counts around 8 and
// 16 lanes, batch 1 and odd batches. The references are textbook loops in double, written from
// PyTorch's definitions (not from the kernels' index arithmetic).
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <ctnn/kernels/conv2d.hpp>
#include <ctnn/kernels/gemm.hpp>
#include <ctnn/kernels/pool2d.hpp>

namespace {

namespace k = ctnn::kernels;
using ctnn::PaddingMode;

std::vector<float> random_vector(std::size_t n, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

/// 64-byte aligned float scratch (the kernels' contract), filled with NaN so a form that reads
/// scratch it never wrote shows up in the results.
struct Scratch {
  std::unique_ptr<float[]> raw;
  float* p;
  explicit Scratch(std::size_t n) : raw(new float[n + 16]) {
    const auto a = reinterpret_cast<std::uintptr_t>(raw.get());
    p = raw.get() + ((64 - a % 64) % 64) / sizeof(float);
    std::fill(p, p + n, std::nanf(""));
  }
};

void check_near(const std::vector<float>& got, const std::vector<double>& want, const std::string& what,
                double tol = 2e-4) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= tol * (1.0 + std::fabs(want[i]))) && bad++ == 0) first = i;
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << got.size() << " differ; first at " << first << ": "
                               << (got.empty() ? 0.0 : got[first]) << " vs " << (want.empty() ? 0.0 : want[first]));
}

// ---- Conv2d ------------------------------------------------------------------------------------

/// Source index of padded coordinate i (counted from -pad) along an axis of n, or -1 for a zero:
/// F.pad's four modes.
std::ptrdiff_t padded_source(std::ptrdiff_t i, std::ptrdiff_t n, PaddingMode mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PaddingMode::zeros: return -1;
    case PaddingMode::reflect: return i < 0 ? -i : 2 * (n - 1) - i;
    case PaddingMode::replicate: return i < 0 ? 0 : n - 1;
    case PaddingMode::circular: return ((i % n) + n) % n;
  }
  return -1;
}

struct ConvRef {
  std::vector<double> y, dw, db, dx;
};

/// The textbook convolution and its gradients for dL/dy = g, in double. Relu: y = max(z, 0) and
/// dL/dz = g where z > 0 (the kernels' fused epilogue).
template <k::Conv2dGeometry G>
ConvRef conv_reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                       const std::vector<float>& g, std::size_t n, bool relu) {
  constexpr std::size_t OH = G.OH(), OW = G.OW(), Cg = G.C / G.groups, Og = G.O / G.groups;
  ConvRef r{std::vector<double>(n * G.O * OH * OW), std::vector<double>(w.size()), std::vector<double>(G.O),
            std::vector<double>(x.size())};
  auto tap = [&](std::size_t s, std::size_t c, std::size_t oh, std::size_t ow, std::size_t kh, std::size_t kw) {
    const auto ih =
        padded_source(static_cast<std::ptrdiff_t>(oh * G.SH + kh * G.DH) - static_cast<std::ptrdiff_t>(G.PT), G.H,
                      G.mode);
    const auto iw =
        padded_source(static_cast<std::ptrdiff_t>(ow * G.SW + kw * G.DW) - static_cast<std::ptrdiff_t>(G.PL), G.W,
                      G.mode);
    return ih < 0 || iw < 0 ? std::ptrdiff_t{-1} : static_cast<std::ptrdiff_t>(((s * G.C + c) * G.H + ih) * G.W + iw);
  };
  for (std::size_t s = 0; s < n; ++s)
    for (std::size_t o = 0; o < G.O; ++o)
      for (std::size_t oh = 0; oh < OH; ++oh)
        for (std::size_t ow = 0; ow < OW; ++ow) {
          const std::size_t grp = o / Og;
          double z = b.empty() ? 0.0 : b[o];
          for (std::size_t c = 0; c < Cg; ++c)
            for (std::size_t kh = 0; kh < G.KH; ++kh)
              for (std::size_t kw = 0; kw < G.KW; ++kw)
                if (const auto i = tap(s, grp * Cg + c, oh, ow, kh, kw); i >= 0)
                  z += double(w[((o * Cg + c) * G.KH + kh) * G.KW + kw]) * x[static_cast<std::size_t>(i)];
          const std::size_t yi = ((s * G.O + o) * OH + oh) * OW + ow;
          r.y[yi] = relu ? std::max(z, 0.0) : z;
          const double dz = relu && z <= 0.0 ? 0.0 : g[yi];
          r.db[o] += dz;
          for (std::size_t c = 0; c < Cg; ++c)
            for (std::size_t kh = 0; kh < G.KH; ++kh)
              for (std::size_t kw = 0; kw < G.KW; ++kw)
                if (const auto i = tap(s, grp * Cg + c, oh, ow, kh, kw); i >= 0) {
                  const std::size_t wi = ((o * Cg + c) * G.KH + kh) * G.KW + kw;
                  r.dw[wi] += dz * x[static_cast<std::size_t>(i)];
                  r.dx[static_cast<std::size_t>(i)] += dz * w[wi];
                }
        }
  return r;
}

template <k::Conv2dGeometry G, bool Bias, class Op, k::Conv2dForms F>
void check_conv_form(std::size_t n, const std::string& name) {
  constexpr std::size_t OH = G.OH(), OW = G.OW();
  const std::size_t xin = n * G.C * G.H * G.W, yout = n * G.O * OH * OW;
  const auto x = random_vector(xin, 1);
  const auto w = random_vector(G.O * (G.C / G.groups) * G.KH * G.KW, 2, -0.5f, 0.5f);
  const auto b = Bias ? random_vector(G.O, 3) : std::vector<float>{};
  const auto g = random_vector(yout, 4);
  constexpr bool relu = std::is_same_v<Op, k::relu_op>;
  const ConvRef want = conv_reference<G>(x, w, b, g, n, relu);
  const std::string what = name + " n=" + std::to_string(n);

  std::vector<float> y(yout);
  Scratch fs(k::conv2d_scratch_floats<G, F>);
  k::conv2d_forward<G, Bias, Op, F>(x.data(), w.data(), Bias ? b.data() : nullptr, y.data(), n, fs.p);
  check_near(y, want.y, what + " y");

  // the backward from the reference's y (what the layer keeps), with and without dx (a first layer)
  std::vector<float> yref(want.y.begin(), want.y.end());
  for (bool with_dx : {true, false}) {
    std::vector<float> dy = g, dw(w.size(), 0.25f), db(G.O, 0.5f), dx(xin, std::nanf(""));
    Scratch bs(k::conv2d_backward_scratch_floats<G, F>);
    k::conv2d_backward<G, Bias, Op, F>(x.data(), w.data(), yref.data(), dy.data(), dw.data(),
                                       Bias ? db.data() : nullptr, with_dx ? dx.data() : nullptr, n, bs.p);
    std::vector<double> dw_want(want.dw), db_want(want.db);
    for (auto& v : dw_want) v += 0.25;  // the kernels accumulate, as .grad does
    for (auto& v : db_want) v += 0.5;
    check_near(dw, dw_want, what + " dW" + (with_dx ? "" : " (no dx)"));
    if constexpr (Bias) check_near(db, db_want, what + " db");
    if (with_dx) check_near(dx, want.dx, what + " dx");
  }

  // Where the form prepares its weights (kernels/conv2d/shared.hpp), as Model's threads run it:
  // prepared in 3 parts, the batch in 2 slices that each hold their weight gradient (dW itself is
  // not touched), folded into dW in 3 parts. The scratch and buffers start as NaN.
  if constexpr (k::conv2d_prepared_floats<G, F> > 0) {
    constexpr std::size_t parts = 3, in_floats = G.C * G.H * G.W, out_floats = G.O * OH * OW;
    Scratch prepared(k::conv2d_prepared_floats<G, F>), bs(k::conv2d_backward_scratch_floats<G, F>);
    for (std::size_t t = 0; t < parts; ++t)
      k::conv2d_prepare<G, F>(w.data(), prepared.p, k::Conv2dPass::forward, t, parts);
    std::vector<float> y2(yout);
    k::conv2d_forward<G, Bias, Op, F>(x.data(), w.data(), Bias ? b.data() : nullptr, y2.data(), n, fs.p, prepared.p);
    check_near(y2, want.y, what + " y (prepared in parts)");
    for (std::size_t t = 0; t < parts; ++t)
      k::conv2d_prepare<G, F>(w.data(), prepared.p, k::Conv2dPass::backward, t, parts);
    std::vector<float> dy = g, dw(w.size(), 0.25f), db(G.O, 0.5f), dx(xin, std::nanf(""));
    Scratch held0(k::conv2d_held_floats<G, F>), held1(k::conv2d_held_floats<G, F>);
    float* held[2] = {held0.p, held1.p};
    const std::size_t first = (n + 1) / 2, slices = n > first ? 2 : 1;
    for (std::size_t sl = 0; sl < slices; ++sl) {
      const std::size_t b0 = sl == 0 ? 0 : first, m = sl == 0 ? first : n - first;
      k::conv2d_backward<G, Bias, Op, F>(x.data() + b0 * in_floats, w.data(), yref.data() + b0 * out_floats,
                                         dy.data() + b0 * out_floats, nullptr, Bias ? db.data() : nullptr,
                                         dx.data() + b0 * in_floats, m, bs.p, prepared.p, held[sl]);
    }
    for (std::size_t t = 0; t < parts; ++t) k::conv2d_fold_held<G, F>(held, slices, dw.data(), t, parts);
    std::vector<double> dw_want(want.dw), db_want(want.db);
    for (auto& v : dw_want) v += 0.25;
    for (auto& v : db_want) v += 0.5;
    check_near(dw, dw_want, what + " dW (held, folded in parts)");
    if constexpr (Bias) check_near(db, db_want, what + " db (held)");
    check_near(dx, want.dx, what + " dx (prepared in parts)");
  }
}

using FwdForm = k::ConvForward;
using DwForm = k::ConvWeightGrad;
using DxForm = k::ConvInputGrad;

/// The dense form runs any groups-1 zeros-mode shape; its T (C H W x O OH OW floats) is kept small here.
template <k::Conv2dGeometry G>
constexpr bool dense_ok = G.groups == 1 && G.mode == PaddingMode::zeros &&
                          G.C * G.H * G.W * G.O * G.OH() * G.OW() <= k::detail::dense_max_floats;

/// Every form that supports G, each forward form paired with a backward form in turn.
template <k::Conv2dGeometry G, bool Bias, class Op>
void check_conv_forms(const char* shape) {
  constexpr bool stride1 = G.SH == 1 && G.SW == 1;
  constexpr bool outer_ok = stride1 && (G.O / G.groups) % k::simd_width == 0;
  const std::string s = shape;
  for (std::size_t n : {std::size_t{1}, std::size_t{3}}) {
    check_conv_form<G, Bias, Op, k::Conv2dForms{}>(n, s + " automatic");
    check_conv_form<G, Bias, Op, k::Conv2dForms{FwdForm::gemm, DwForm::gemm, DxForm::col2im}>(n, s + " gemm/gemm");
    if constexpr (G.groups == 1)
      check_conv_form<G, Bias, Op, k::Conv2dForms{FwdForm::rows, DwForm::rows, DxForm::rows}>(n, s + " rows/rows");
    if constexpr (dense_ok<G>)
      check_conv_form<G, Bias, Op, k::Conv2dForms{FwdForm::dense, DwForm::dense, DxForm::dense}>(n, s + " dense");
    if constexpr (k::detail::regions_ok<G>())
      check_conv_form<G, Bias, Op, k::Conv2dForms{FwdForm::regions, DwForm::regions, DxForm::regions}>(n,
                                                                                                       s + " regions");
    if constexpr (G.groups == G.C)
      check_conv_form<G, Bias, Op, k::Conv2dForms{FwdForm::depthwise, DwForm::gemm, DxForm::col2im}>(n,
                                                                                                     s + " depthwise");
    if constexpr (stride1) {
      check_conv_form<G, Bias, Op, k::Conv2dForms{FwdForm::flat, DwForm::flat, DxForm::flat}>(n, s + " flat/flat/flat");
      check_conv_form<G, Bias, Op, k::Conv2dForms{FwdForm::shifted, DwForm::shifted, DxForm::col2im}>(
          n, s + " shifted/shifted/col2im");
      check_conv_form<G, Bias, Op, k::Conv2dForms{FwdForm::flat, DwForm::flat, DxForm::col2im}>(
          n, s + " flat/flat/col2im");
      check_conv_form<G, Bias, Op, k::Conv2dForms{FwdForm::shifted, DwForm::shifted, DxForm::flat}>(
          n, s + " shifted/shifted/flat");
    }
    if constexpr (outer_ok) {
      check_conv_form<G, Bias, Op, k::Conv2dForms{FwdForm::gemm, DwForm::outer, DxForm::flat}>(n, s + " outer/flat");
      check_conv_form<G, Bias, Op, k::Conv2dForms{FwdForm::gemm, DwForm::outer, DxForm::col2im}>(n,
                                                                                                 s + " outer/col2im");
    }
  }
}

//                        C   H   W   O  KH KW SH SW DH DW PT PB PL PR groups mode
constexpr k::Conv2dGeometry padded_3x3{3, 9, 11, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry grouped_dilated{4, 8, 13, 8, 3, 5, 1, 1, 2, 1, 2, 1, 2, 2, 2, PaddingMode::reflect};
constexpr k::Conv2dGeometry odd_2x2{5, 7, 7, 17, 2, 2, 1, 1, 1, 1, 1, 0, 0, 1, 1, PaddingMode::replicate};
constexpr k::Conv2dGeometry circular_groups3{6, 10, 9, 15, 3, 3, 1, 1, 1, 2, 1, 1, 2, 2, 3, PaddingMode::circular};
constexpr k::Conv2dGeometry pointwise{8, 6, 6, 9, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry depthwise_x2{8, 9, 10, 16, 3, 3, 1, 1, 1, 2, 1, 1, 2, 2, 8, PaddingMode::zeros};
constexpr k::Conv2dGeometry depthwise_strided{4, 11, 12, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 4, PaddingMode::reflect};
constexpr k::Conv2dGeometry strided_dilated{3, 12, 13, 7, 5, 3, 2, 3, 1, 2, 2, 2, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry strided_1x1{16, 7, 9, 8, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry wide_32{16, 5, 6, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry lenet_conv2{6, 14, 14, 16, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry lenet_conv1{1, 28, 28, 6, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 1, PaddingMode::zeros};
static_assert(k::detail::flat_rows(lenet_conv1.O) == 6);  // its flat and shifted tiles: all 6 channels at once
// ResNet-18's last stage at 28 x 28: a 1 x 1 map keeps the centre tap only; a stride-2 3x3 on 2 x 2
// keeps 4 of 9 taps; a 2 x 2 map keeps all 9 (each tap reads the input for some output)
constexpr k::Conv2dGeometry map_1x1{24, 1, 1, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry map_2x2_stride2{12, 2, 2, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry map_2x2{20, 2, 2, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry map_1x1_reflect{5, 2, 3, 7, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 1, PaddingMode::replicate};
// ResNet-18's stem in small: stride 2, 49 taps, 11 outputs a row (im2row's 8 x 8 blocks on AVX2,
// their strided loads, their tail taps and outputs); a dilated 3x3 with 19 outputs a row
constexpr k::Conv2dGeometry stem_7x7{2, 18, 21, 8, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry dilated_wide{3, 5, 21, 8, 3, 3, 1, 1, 2, 1, 2, 2, 0, 0, 1, PaddingMode::zeros};
// a 1x11 kernel: more taps along a row than col2im keeps separate sums for (8), so two share one
constexpr k::Conv2dGeometry taps_1x11{2, 4, 20, 3, 1, 11, 1, 1, 1, 1, 0, 0, 5, 5, 1, PaddingMode::zeros};
// The regions form on every shape above (its columns rounded up to whole panels) and on wider
// ones: 48 and 64 channels, whole panels with one instruction set or another (AVX-512: 64, AVX2: 24,
// SSE: 12 floats); a 3x3/pad-1 conv (9 regions); strides (2, 3), dilation (1, 2), asymmetric padding; a 1x1 kernel
// with padding, whose border outputs read only padding (regions of no taps: Op(b)); a 1 x 1 map;
// an unpadded 1x1/2 conv (one region); a map whose samples are transposed a few at a time.
constexpr k::Conv2dGeometry regions_3x3{48, 5, 6, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry regions_strided{64, 9, 8, 24, 5, 3, 2, 3, 1, 2, 2, 1, 1, 2, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry regions_pad_only{64, 3, 4, 8, 1, 1, 1, 1, 1, 1, 1, 1, 2, 0, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry regions_1x1{64, 1, 1, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry regions_unpadded{64, 7, 7, 20, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry regions_batches{64, 64, 64, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
static_assert(k::detail::conv_regions<regions_3x3>::count == 9 && k::detail::conv_regions<regions_1x1>::count == 1);
static_assert(k::detail::conv_regions<regions_3x3>::taps_per_sample == (2 + 3 + 3 + 3 + 2) * (2 + 3 + 3 + 3 + 3 + 2));
static_assert(k::detail::conv_regions<regions_pad_only>::regions[0].A == 0);
static_assert(k::detail::conv_regions<regions_batches>::batch == 4);
static_assert(k::detail::conv_rows<stem_7x7>::A == 49 && stem_7x7.OW() == 11 && dilated_wide.OW() == 19);
static_assert(k::detail::conv_rows<map_1x1>::A == 1 && k::detail::conv_rows<map_1x1>::taps[0] == 4);
static_assert(k::detail::conv_rows<map_2x2_stride2>::A == 4 && k::detail::conv_rows<map_2x2>::A == 9);
static_assert(k::detail::conv_rows<map_1x1_reflect>::A == 9);  // replicate: padding reads the input
// The dense form where a map of more than one pixel has no more pixels than live taps (2 x 2 maps
// here: 9 and 4 live taps), not on a 1 x 1 map, nor with replicate padding.
static_assert(k::detail::conv2d_plan<map_2x2>::form == k::ConvForward::dense &&
              k::detail::conv2d_backward_plan<map_2x2>::use_dense);
static_assert(k::detail::conv2d_plan<map_2x2_stride2>::form == k::ConvForward::dense);
static_assert(k::detail::conv2d_plan<map_1x1>::form ==
              (k::detail::conv_regions<map_1x1>::Cp == 24 ? k::ConvForward::regions : k::ConvForward::rows));
static_assert(k::detail::conv2d_plan<map_1x1_reflect>::form != k::ConvForward::dense);
static_assert(k::detail::conv2d_plan<stem_7x7>::form != k::ConvForward::dense);
// The cost model on ResNet-18's layers. With 32 registers (AVX-512): the flat forward where 90% of its
// lanes are outputs (24 x 24; the rows form with AVX2: a 3x3/pad-1 conv there saves 5% in regions);
// the regions form where it saves a tenth of the multiply-adds (12 x 12 and below) and on maps of at
// most 7 x 7 (the 1 x 1 maps too), both passes, where no columns are padded; im2col for the stem at 96 x 96 (K = 49, P = 2304),
// not at 28 x 28 (P = 196), and its weight gradient at both (one channel: no regions).
constexpr k::Conv2dGeometry resnet_24x24{64, 24, 24, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry resnet_12x12{128, 12, 12, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry resnet_7x7{64, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry resnet_6x6{256, 6, 6, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry resnet_3x3{512, 3, 3, 512, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry resnet_1x1{512, 1, 1, 512, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry stem_96{1, 96, 96, 64, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, PaddingMode::zeros};
constexpr k::Conv2dGeometry stem_28{1, 28, 28, 64, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, PaddingMode::zeros};
constexpr bool avx512 = k::simd_width >= 16;
static_assert(k::detail::conv2d_plan<resnet_24x24>::form == (avx512 ? k::ConvForward::flat : k::ConvForward::rows));
static_assert(k::detail::conv2d_backward_plan<resnet_24x24>::dw_form != k::ConvWeightGrad::regions);
template <k::Conv2dGeometry G>
constexpr bool takes_regions =
    k::detail::conv2d_plan<G>::form == k::ConvForward::regions && k::detail::conv2d_backward_plan<G>::use_regions;
static_assert(takes_regions<resnet_6x6> && takes_regions<resnet_3x3>);
// without AVX-512, panels of 3 vectors round 64 and 128 channels up to 72 and 132 or 144 columns a tap
static_assert(takes_regions<resnet_12x12> == avx512 && takes_regions<resnet_7x7> == avx512 &&
              takes_regions<resnet_1x1> == avx512);
static_assert(k::detail::conv2d_plan<stem_96>::form == (avx512 ? k::ConvForward::gemm : k::ConvForward::rows));
static_assert(k::detail::conv2d_plan<stem_28>::form == k::ConvForward::rows);
static_assert(k::detail::conv2d_backward_plan<stem_28>::dw_form ==
              (avx512 ? k::ConvWeightGrad::gemm : k::ConvWeightGrad::rows));

// ---- Linear's GEMM: the dot and packed paths -----------------------------------------------------

template <std::size_t K, std::size_t O, bool Relu, k::GemmPath Path>
void check_linear_path(std::size_t M, const char* path) {
  using Op = std::conditional_t<Relu, k::relu_op, k::identity_op>;
  const auto x = random_vector(M * K, 5), w = random_vector(O * K, 6, -0.3f, 0.3f), b = random_vector(O, 7);
  const auto g = random_vector(M * O, 8);
  std::vector<double> y(M * O), dx(M * K), dw(O * K, 0.25), db(O, 0.5);
  for (std::size_t m = 0; m < M; ++m)
    for (std::size_t o = 0; o < O; ++o) {
      double z = b[o];
      for (std::size_t i = 0; i < K; ++i) z += double(x[m * K + i]) * w[o * K + i];
      y[m * O + o] = Relu ? std::max(z, 0.0) : z;
      const double dz = g[m * O + o];  // the backward kernels take dz (the layer applies Op')
      db[o] += dz;
      for (std::size_t i = 0; i < K; ++i) {
        dx[m * K + i] += dz * w[o * K + i];
        dw[o * K + i] += dz * x[m * K + i];
      }
    }
  const std::string what =
      std::string(path) + " K=" + std::to_string(K) + " O=" + std::to_string(O) + " M=" + std::to_string(M);
  std::vector<float> got(M * O);
  Scratch scratch(k::linear_scratch_floats<K, O>);
  k::linear_forward<K, O, Op, Path>(x.data(), w.data(), b.data(), got.data(), M, scratch.p);
  check_near(got, y, what + " y");
  std::vector<float> gx(M * K), gw(O * K, 0.25f), gb(O, 0.5f);
  k::linear_backward_input<K, O>(g.data(), w.data(), gx.data(), M);
  k::linear_backward_params<K, O>(g.data(), x.data(), gw.data(), gb.data(), M);
  check_near(gx, dx, what + " dx");
  check_near(gw, dw, what + " dW");
  check_near(gb, db, what + " db");
}

template <std::size_t K, std::size_t O, bool Relu>
void check_linear_paths() {
  for (std::size_t M : {1, 2, 3, 5, 8, 9, 17, 64}) {
    check_linear_path<K, O, Relu, k::GemmPath::automatic>(M, "automatic");
    check_linear_path<K, O, Relu, k::GemmPath::dot>(M, "dot");
    if constexpr (!k::detail::dot_always<K, O>) check_linear_path<K, O, Relu, k::GemmPath::packed>(M, "packed");
  }
}

// ---- Pooling: AvgPool2d's tiling shortcut and general path, MaxPool2d ------------------------------

/// A pooling shape as PyTorch's options give it; OH, OW with ceil_mode's rule (the last window
/// starts inside the input or the left padding).
constexpr k::Pool2dGeometry pool_shape(std::size_t C, std::size_t H, std::size_t W, std::size_t KH, std::size_t KW,
                                       std::size_t SH, std::size_t SW, std::size_t PH, std::size_t PW, std::size_t DH,
                                       std::size_t DW, bool ceil_mode) {
  auto out = [&](std::size_t I, std::size_t K, std::size_t S, std::size_t P, std::size_t D) {
    const std::size_t span = I + 2 * P - D * (K - 1) - 1;
    std::size_t o = (ceil_mode ? (span + S - 1) / S : span / S) + 1;
    if (ceil_mode && (o - 1) * S >= I + P) --o;
    return o;
  };
  return {C, H, W, KH, KW, SH, SW, DH, DW, PH, PW, out(H, KH, SH, PH, DH), out(W, KW, SW, PW, DW)};
}

template <k::Pool2dGeometry G, bool CountIncludePad, std::size_t DivisorOverride, k::PoolPath Path>
void check_avgpool_path(std::size_t n, const std::string& what) {
  const auto x = random_vector(n * G.C * G.H * G.W, 9), g = random_vector(n * G.C * G.OH * G.OW, 10);
  std::vector<double> y(g.size()), dx(x.size());
  for (std::size_t s = 0; s < n * G.C; ++s)
    for (std::size_t oh = 0; oh < G.OH; ++oh)
      for (std::size_t ow = 0; ow < G.OW; ++ow) {  // PyTorch's avg_pool2d
        std::ptrdiff_t h0 = std::ptrdiff_t(oh * G.SH) - std::ptrdiff_t(G.PH),
                       w0 = std::ptrdiff_t(ow * G.SW) - std::ptrdiff_t(G.PW);
        std::ptrdiff_t h1 = std::min<std::ptrdiff_t>(h0 + G.KH, G.H + G.PH),
                       w1 = std::min<std::ptrdiff_t>(w0 + G.KW, G.W + G.PW);
        const double pool_size = double((h1 - h0) * (w1 - w0));
        h0 = std::max<std::ptrdiff_t>(h0, 0), w0 = std::max<std::ptrdiff_t>(w0, 0);
        h1 = std::min<std::ptrdiff_t>(h1, G.H), w1 = std::min<std::ptrdiff_t>(w1, G.W);
        const double div = DivisorOverride != 0 ? double(DivisorOverride)
                           : CountIncludePad    ? pool_size
                                                : double((h1 - h0) * (w1 - w0));
        double sum = 0.0;
        const std::size_t yi = (s * G.OH + oh) * G.OW + ow;
        for (auto ih = h0; ih < h1; ++ih)
          for (auto iw = w0; iw < w1; ++iw) {
            sum += x[(s * G.H + std::size_t(ih)) * G.W + std::size_t(iw)];
            dx[(s * G.H + std::size_t(ih)) * G.W + std::size_t(iw)] += g[yi] / div;
          }
        y[yi] = sum / div;
      }
  std::vector<float> got(g.size()), gx(x.size(), std::nanf(""));
  Scratch scratch(k::pool2d_scratch_floats<G>);
  k::avgpool2d_forward<G, CountIncludePad, DivisorOverride, Path>(x.data(), got.data(), n, scratch.p);
  check_near(got, y, what + " y");
  k::avgpool2d_backward<G, CountIncludePad, DivisorOverride, Path>(g.data(), gx.data(), n, scratch.p);
  check_near(gx, dx, what + " dx");
}

template <k::Pool2dGeometry G>
void check_maxpool(std::size_t n, const std::string& what) {
  const auto x = random_vector(n * G.C * G.H * G.W, 11), g = random_vector(n * G.C * G.OH * G.OW, 12);
  std::vector<double> y(g.size()), dx(x.size());
  for (std::size_t s = 0; s < n * G.C; ++s)
    for (std::size_t oh = 0; oh < G.OH; ++oh)
      for (std::size_t ow = 0; ow < G.OW; ++ow) {  // max over the window's cells inside the input
        double m = -INFINITY;
        std::ptrdiff_t arg = -1;
        for (std::size_t kh = 0; kh < G.KH; ++kh)
          for (std::size_t kw = 0; kw < G.KW; ++kw) {
            const auto ih = std::ptrdiff_t(oh * G.SH + kh * G.DH) - std::ptrdiff_t(G.PH);
            const auto iw = std::ptrdiff_t(ow * G.SW + kw * G.DW) - std::ptrdiff_t(G.PW);
            if (ih < 0 || iw < 0 || ih >= std::ptrdiff_t(G.H) || iw >= std::ptrdiff_t(G.W)) continue;
            const auto i = std::ptrdiff_t((s * G.H + std::size_t(ih)) * G.W + std::size_t(iw));
            if (x[std::size_t(i)] > m) m = x[std::size_t(i)], arg = i;
          }
        const std::size_t yi = (s * G.OH + oh) * G.OW + ow;
        y[yi] = m;
        dx[std::size_t(arg)] += g[yi];
      }
  std::vector<float> got(g.size()), gx(x.size(), std::nanf(""));
  Scratch scratch(k::pool2d_scratch_floats<G>);
  k::maxpool2d_forward<G>(x.data(), got.data(), n, scratch.p);
  check_near(got, y, what + " y");
  k::maxpool2d_backward<G>(x.data(), g.data(), gx.data(), n);
  check_near(gx, dx, what + " dx");
}

template <k::Pool2dGeometry G, bool CountIncludePad = true, std::size_t DivisorOverride = 0>
void check_pool_paths(const char* shape) {
  for (std::size_t n : {std::size_t{1}, std::size_t{3}}) {
    const std::string s = std::string(shape) + " n=" + std::to_string(n);
    check_maxpool<G>(n, "max " + s);
    if constexpr (G.DH == 1 && G.DW == 1) {
      check_avgpool_path<G, CountIncludePad, DivisorOverride, k::PoolPath::automatic>(n, "avg automatic " + s);
      check_avgpool_path<G, CountIncludePad, DivisorOverride, k::PoolPath::general>(n, "avg general " + s);
    }
  }
}

}  // namespace

TEST_CASE("every Conv2d form matches the scalar reference on every shape it supports") {
  check_conv_forms<padded_3x3, true, k::identity_op>("3->16 3x3 pad 1");
  check_conv_forms<grouped_dilated, false, k::relu_op>("4->8 3x5 dilation (2,1) groups 2 reflect");
  check_conv_forms<odd_2x2, true, k::relu_op>("5->17 2x2 asymmetric replicate");
  check_conv_forms<circular_groups3, true, k::identity_op>("6->15 3x3 dilation (1,2) groups 3 circular");
  check_conv_forms<pointwise, true, k::identity_op>("8->9 1x1");
  check_conv_forms<depthwise_x2, true, k::relu_op>("depthwise 8->16 3x3 dilation (1,2)");
  check_conv_forms<depthwise_strided, false, k::identity_op>("depthwise 4->4 3x3 stride 2 reflect");
  check_conv_forms<strided_dilated, true, k::identity_op>("3->7 5x3 stride (2,3) dilation (1,2)");
  check_conv_forms<strided_1x1, true, k::relu_op>("16->8 1x1 stride 2");
  check_conv_forms<wide_32, true, k::identity_op>("16->32 3x3");
  check_conv_forms<lenet_conv2, true, k::identity_op>("LeNet conv2 6->16 5x5");
  check_conv_forms<lenet_conv1, true, k::relu_op>("LeNet conv1 1->6 5x5 pad 2");
  check_conv_forms<map_1x1, false, k::identity_op>("24->20 3x3 pad 1 on 1x1");
  check_conv_forms<map_2x2_stride2, true, k::relu_op>("12->24 3x3 stride 2 pad 1 on 2x2");
  check_conv_forms<map_2x2, false, k::relu_op>("20->8 3x3 pad 1 on 2x2");
  check_conv_forms<map_1x1_reflect, true, k::identity_op>("5->7 3x3 replicate pad (1,1,0,0) on 2x3");
  check_conv_forms<stem_7x7, true, k::identity_op>("2->8 7x7 stride 2 pad 3");
  check_conv_forms<dilated_wide, false, k::relu_op>("3->8 3x3 dilation (2,1) pad (2,2,0,0), 19 wide");
  check_conv_forms<taps_1x11, true, k::identity_op>("2->3 1x11 pad (0,0,5,5)");
  check_conv_forms<regions_3x3, true, k::relu_op>("48->16 3x3 pad 1");
  check_conv_forms<regions_strided, true, k::identity_op>("64->24 5x3 stride (2,3) dilation (1,2) pad (2,1,1,2)");
  check_conv_forms<regions_pad_only, true, k::relu_op>("64->8 1x1 pad (1,1,2,0)");
  check_conv_forms<regions_1x1, false, k::identity_op>("64->40 3x3 pad 1 on 1x1");
  check_conv_forms<regions_unpadded, true, k::relu_op>("64->20 1x1 stride 2");
  // the regions form's batches of 4 samples transposed at once: two whole ones and a partial one
  check_conv_form<regions_batches, true, k::relu_op,
                  k::Conv2dForms{FwdForm::regions, DwForm::regions, DxForm::regions}>(
      9, "64->4 3x3 pad 1 on 64x64 regions");
  // the dense weight gradient's chunks of 32 samples: a whole one and a partial one
  check_conv_form<map_2x2, true, k::relu_op, k::Conv2dForms{FwdForm::dense, DwForm::dense, DxForm::dense}>(
      45, "20->8 3x3 pad 1 on 2x2 dense");
  check_conv_form<padded_3x3, false, k::identity_op, k::Conv2dForms{FwdForm::dense, DwForm::dense, DxForm::dense}>(
      33, "3->16 3x3 pad 1 dense");
}

TEST_CASE("Linear's dot and packed paths match the scalar reference at every row count") {
  check_linear_paths<3, 7, false>();
  check_linear_paths<20, 256, true>();  // the MLP's first layer: packs from a few rows on
  check_linear_paths<33, 17, false>();  // K and O tails of both widths
  check_linear_paths<256, 10, true>();  // dot always (few outputs)
  check_linear_paths<120, 84, true>();  // LeNet's middle layer
  check_linear_paths<16, 40, false>();
}

TEST_CASE("AvgPool2d's tiling and general paths and MaxPool2d match the scalar reference") {
  //                              C  H   W  KH KW SH SW PH PW DH DW ceil
  check_pool_paths<pool_shape(3, 28, 28, 2, 2, 2, 2, 0, 0, 1, 1, false)>("2x2/2 on 28x28 (tiles)");
  check_pool_paths<pool_shape(2, 12, 40, 3, 2, 3, 2, 0, 0, 1, 1, false)>("3x2/(3,2) on 12x40 (tiles, 2 vectors a row)");
  check_pool_paths<pool_shape(2, 9, 11, 3, 3, 2, 2, 1, 1, 1, 1, true)>("3x3/2 pad 1 ceil on 9x11");
  check_pool_paths<pool_shape(2, 9, 11, 3, 3, 2, 2, 1, 1, 1, 1, true), false>(
      "3x3/2 pad 1 ceil, count_include_pad off");
  check_pool_paths<pool_shape(2, 8, 8, 2, 2, 2, 2, 0, 0, 1, 1, false), true, 3>("2x2/2 divisor_override 3");
  check_pool_paths<pool_shape(3, 7, 19, 3, 2, 1, 1, 1, 1, 1, 1, false)>("3x2 stride 1 pad 1 on 7x19");
  check_pool_paths<pool_shape(2, 13, 17, 3, 3, 3, 3, 1, 1, 2, 2, false)>("max 3x3/3 dilation 2 pad 1");
  check_pool_paths<pool_shape(1, 5, 37, 2, 2, 2, 2, 0, 0, 1, 1, true)>("2x2/2 ceil on 5x37 (overhang)");
  // rows too wide for max pooling's vector backward (its row buffers on the stack): the scalar rule
  check_pool_paths<pool_shape(1, 3, 6000, 3, 3, 2, 2, 1, 1, 1, 1, false)>("3x3/2 pad 1 on 3x6000 (scalar backward)");
}
