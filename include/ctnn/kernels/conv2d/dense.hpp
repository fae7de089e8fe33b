// Conv2d, the dense form (groups 1, zeros padding, tiny maps): the convolution as the Linear it is
// on a flattened sample. Each output pixel p of channel o is a dot product of the whole sample
// x[c, q] (q = ih*W + iw) with T[(o, p), (c, q)] = w[o, c, tap(p, q)], the tap through which p
// reads q (zero where it reads none). With NCHW rows [N, C*Q] in and [N, O*P] out:
//   forward:  y[N, OP]   = Op(b[o] + x[N, CQ] T^T)                 T^T built as pack_panels' panels
//   backward: dz = Op'(y) * dy; db[o] += sum over n, p of dz
//             dx[N, CQ]  = dz[N, OP] T                             T built as rows_to_panels' panels
//             dT[OP, CQ] = dz^T x, a chunk of samples at a time;   dW[o, c, tap(p, q)] += dT[(o, p), (c, q)]
// It multiplies only the (p, q) pairs a tap joins: on ResNet-18's 2 x 2 maps at 28 x 28, a 3x3/pad-1
// conv is 16 C*O multiply-adds a sample where the rows form's patches take 36 (20 of them with the
// zero padding), and neither the input nor the output is copied, padded or transposed. The cost
// model (plan.hpp, dense_pays) takes it where a map of more than one pixel has no more pixels than
// the rows form has live taps (H*W <= A) and T stays small (dense_max_floats): T grows as the
// square of the map. T's panels may come prepared (dense_prepared, kernels/conv2d/shared.hpp), and
// dT may be left held for conv2d_fold_held instead of folded into dW.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "ctnn/kernels/conv2d/rows.hpp"

namespace ctnn::kernels::detail {

/// The largest T the cost model gives the dense form (floats): 4 MiB, the 256-channel convs on
/// ResNet-18's 2 x 2 maps at 28 x 28.
inline constexpr std::size_t dense_max_floats = std::size_t{1} << 20;

/// The dense form's shape: which tap joins each output pixel p to each input pixel q, and scratch.
template <Conv2dGeometry G>
struct conv_dense {
  static constexpr std::size_t C = G.C, O = G.O, Q = G.H * G.W, P = G.OH() * G.OW(), KK = G.KH * G.KW;
  static constexpr std::size_t CQ = C * Q, OP = O * P;
  /// tap[p][q]: kh*KW + kw where output p reads input q, -1 where it does not (zeros mode: two taps
  /// of one output never read the same cell).
  static constexpr auto tap = [] {
    std::array<std::array<int, Q>, P> t{};
    for (auto& row : t) row.fill(-1);
    for (std::size_t oh = 0; oh < G.OH(); ++oh)
      for (std::size_t ow = 0; ow < G.OW(); ++ow)
        for (std::size_t kh = 0; kh < G.KH; ++kh)
          for (std::size_t kw = 0; kw < G.KW; ++kw) {
            const std::size_t ih = oh * G.SH + kh * G.DH, iw = ow * G.SW + kw * G.DW;  // in the padded map
            if (ih >= G.PT && ih < G.PT + G.H && iw >= G.PL && iw < G.PL + G.W)
              t[oh * G.OW() + ow][(ih - G.PT) * G.W + (iw - G.PL)] = static_cast<int>(kh * G.KW + kw);
          }
    return t;
  }();
  static constexpr std::size_t NRf = packed_shape<OP>::nr;  // the forward's panels (outputs (o, p))
  static constexpr std::size_t forward_panel_floats = CQ * round_up(OP, simd_width) + 16;
  /// Samples per chunk of the weight gradient: dT's reduction (and dz^T's columns).
  static constexpr std::size_t chunk = 32;
  static constexpr std::size_t CQpad = round_up(CQ, simd_width);
  static constexpr std::size_t t_floats = OP * CQpad + 16;  // T's panels for dx, then dT (+ alignment)
  static constexpr std::size_t x_panel_floats = chunk * CQpad + 16;
  static constexpr std::size_t dzt_floats = round_up(OP * chunk, 16);
  static constexpr std::size_t forward_scratch = forward_panel_floats + round_up(OP, 16);  // panels, bias row
  static constexpr std::size_t backward_scratch = t_floats + x_panel_floats + dzt_floats;
  static_assert(G.groups == 1 && G.mode == PaddingMode::zeros, "the dense form needs groups 1 and zeros padding");
};

/// The panels below copy T's entries with compile-time offsets where a sample has few (p, q) pairs
/// and a panel holds whole runs of them (no index arithmetic or table lookups per entry); the
/// general path computes each entry.
template <Conv2dGeometry G>
inline constexpr bool dense_unrolled = conv_dense<G>::P * conv_dense<G>::Q <= 64;

/// T[j, k] for output j = o*P + p and input k = c*Q + q (the general path, every index at run time).
template <Conv2dGeometry G>
float dense_at(const float* w, std::size_t j, std::size_t k) {
  using D = conv_dense<G>;
  const int t = D::tap[j % D::P][k % D::Q];
  return t < 0 ? 0.0f : w[(j / D::P * D::C + k / D::Q) * D::KK + static_cast<std::size_t>(t)];
}

/// T[(o, p), (c, q)], from wc = w[o, c, :].
template <Conv2dGeometry G, std::size_t p, std::size_t q>
CTNN_INLINE float dense_entry(const float* wc) {
  constexpr int t = conv_dense<G>::tap[p][q];
  if constexpr (t < 0) return 0.0f;
  else return wc[t];
}

/// Row (c, q) of a forward panel: valid outputs from j0 (whole runs (o, 0..P)), zeros to width.
template <Conv2dGeometry G, std::size_t q, std::size_t... p>
void dense_forward_row(const float* w, std::size_t c, std::size_t j0, std::size_t valid, std::size_t width, float* row,
                       std::index_sequence<p...>) {
  using D = conv_dense<G>;
  for (std::size_t i = 0; i < valid; i += D::P) {
    const float* wc = w + ((j0 + i) / D::P * D::C + c) * D::KK;
    ((row[i + p] = dense_entry<G, p, q>(wc)), ...);
  }
  std::fill(row + valid, row + width, 0.0f);
}

/// Row (o, p) of an input-gradient panel: valid inputs from j0 (whole runs (c, 0..Q)), zeros to width.
template <Conv2dGeometry G, std::size_t p, std::size_t... q>
void dense_backward_row(const float* wo, std::size_t j0, std::size_t valid, std::size_t width, float* row,
                        std::index_sequence<q...>) {
  using D = conv_dense<G>;
  for (std::size_t i = 0; i < valid; i += D::Q) {
    const float* wc = wo + (j0 + i) / D::Q * D::KK;
    ((row[i + q] = dense_entry<G, p, q>(wc)), ...);
  }
  std::fill(row + valid, row + width, 0.0f);
}

/// T^T's panels for the forward, as pack_panels<CQ, OP> would pack T [OP, CQ]: panel j holds outputs
/// (o, p) = [j NR, j NR + width) for every input (c, q), row (c, q) contiguous; or the panels of
/// outputs [j_begin, j_end) (j_begin a multiple of NR).
template <Conv2dGeometry G>
void dense_forward_panels(const float* w, float* panels, std::size_t j_begin = 0,
                          std::size_t j_end = round_up(conv_dense<G>::OP, simd_width)) {
  using D = conv_dense<G>;
  constexpr std::size_t OPpad = round_up(D::OP, simd_width), NR = D::NRf, P = D::P, Q = D::Q;
  for (std::size_t j0 = j_begin; j0 < j_end; j0 += NR) {
    const std::size_t width = std::min(NR, OPpad - j0), valid = std::min(width, D::OP - j0);
    float* panel = panels + j0 * D::CQ;
    for (std::size_t c = 0; c < D::C; ++c) {
      if constexpr (dense_unrolled<G> && NR % P == 0) {
        [&]<std::size_t... q>(std::index_sequence<q...>) {
          (dense_forward_row<G, q>(w, c, j0, valid, width, panel + (c * Q + q) * width, std::make_index_sequence<P>{}),
           ...);
        }(std::make_index_sequence<Q>{});
      } else {
        for (std::size_t q = 0; q < Q; ++q) {
          float* row = panel + (c * Q + q) * width;
          for (std::size_t i = 0; i < width; ++i) row[i] = i < valid ? dense_at<G>(w, j0 + i, c * Q + q) : 0.0f;
        }
      }
    }
  }
}

/// T's panels for the input gradient, as rows_to_panels<CQ, OP> would copy T [OP, CQ]: panel j
/// holds inputs (c, q) = [j NR, j NR + width) for every output (o, p), row (o, p) contiguous; or
/// the rows of channels o in [o_begin, o_end).
template <Conv2dGeometry G>
void dense_backward_panels(const float* w, float* panels, std::size_t o_begin = 0, std::size_t o_end = G.O) {
  using D = conv_dense<G>;
  constexpr std::size_t NR = packed_shape<D::CQ>::nr, P = D::P, Q = D::Q, KK = D::KK;
  for (std::size_t j0 = 0; j0 < D::CQpad; j0 += NR) {
    const std::size_t width = std::min(NR, D::CQpad - j0), valid = std::min(width, D::CQ - j0);
    float* panel = panels + j0 * D::OP;
    for (std::size_t o = o_begin; o < o_end; ++o) {
      const float* wo = w + o * D::C * KK;
      if constexpr (dense_unrolled<G> && NR % Q == 0) {
        [&]<std::size_t... p>(std::index_sequence<p...>) {
          (dense_backward_row<G, p>(wo, j0, valid, width, panel + (o * P + p) * width, std::make_index_sequence<Q>{}),
           ...);
        }(std::make_index_sequence<P>{});
      } else {
        for (std::size_t p = 0; p < P; ++p) {
          float* row = panel + (o * P + p) * width;
          for (std::size_t i = 0; i < width; ++i) row[i] = i < valid ? dense_at<G>(w, o * P + p, j0 + i) : 0.0f;
        }
      }
    }
  }
}

/// acc[tap(p, q)] += dT[(o, p), (c, q)] for the pair pq = p*Q + q (nothing where no tap joins them);
/// rows: dT's rows (o, p) for every p.
template <Conv2dGeometry G, std::size_t pq>
CTNN_INLINE void dense_fold_pair(float* acc, const float* rows, std::size_t c) {
  using D = conv_dense<G>;
  constexpr std::size_t p = pq / D::Q, q = pq % D::Q;
  constexpr int t = D::tap[p][q];
  if constexpr (t >= 0) acc[t] += rows[p * D::CQ + c * D::Q + q];
}

/// dW[o, c, tap(p, q)] += dT[(o, p), (c, q)] for o in [o_begin, o_end). Where a sample has few
/// (p, q) pairs, each channel's taps are summed in registers over the pairs (a compile-time list),
/// then added to dW once.
template <Conv2dGeometry G>
void dense_fold_weight_grad(const float* dt, float* dw, std::size_t o_begin = 0, std::size_t o_end = G.O) {
  using D = conv_dense<G>;
  constexpr std::size_t P = D::P, Q = D::Q, KK = D::KK, CQ = D::CQ;
  if constexpr (dense_unrolled<G>) {
    for (std::size_t o = o_begin; o < o_end; ++o) {
      const float* rows = dt + o * P * CQ;  // rows (o, p) for every p
      float* dwo = dw + o * D::C * KK;
      for (std::size_t c = 0; c < D::C; ++c) {
        float acc[KK] = {};
        [&]<std::size_t... pq>(std::index_sequence<pq...>) {
          (dense_fold_pair<G, pq>(acc, rows, c), ...);
        }(std::make_index_sequence<P * Q>{});
        CTNN_UNROLL for (std::size_t t = 0; t < KK; ++t) dwo[c * KK + t] += acc[t];
      }
    }
  } else {
    for (std::size_t o = o_begin; o < o_end; ++o)
      for (std::size_t p = 0; p < P; ++p) {
        const float* row = dt + (o * P + p) * CQ;
        float* dwo = dw + o * D::C * KK;
        for (std::size_t c = 0; c < D::C; ++c)
          for (std::size_t q = 0; q < Q; ++q)
            if (const int t = D::tap[p][q]; t >= 0) dwo[c * KK + static_cast<std::size_t>(t)] += row[c * Q + q];
      }
  }
}

/// T's panels for both passes, prepared once (conv2d_prepare, kernels/conv2d/shared.hpp): the
/// forward's, then the input gradient's.
template <Conv2dGeometry G>
struct dense_prepared {
  using D = conv_dense<G>;
  static constexpr std::size_t forward = 0, backward = round_up(D::forward_panel_floats, 16);
  static constexpr std::size_t floats = backward + D::t_floats;
};

/// The prepared panels of a pass for outputs [o_begin, o_end) (o_begin * P a multiple of the
/// forward's panel width, as conv2d_prepare's parts are).
template <Conv2dGeometry G>
void dense_prepare(const float* w, float* prepared, bool backward, std::size_t o_begin, std::size_t o_end) {
  using D = conv_dense<G>;
  const std::size_t j_end = o_end == D::O ? round_up(D::OP, simd_width) : o_end * D::P;
  if (!backward) dense_forward_panels<G>(w, prepared + dense_prepared<G>::forward, o_begin * D::P, j_end);
  else dense_backward_panels<G>(w, prepared + dense_prepared<G>::backward, o_begin, o_end);
}

/// y = Op(conv2d(x, w) + b) for n samples, the dense form. `scratch`: conv_dense<G>::forward_scratch;
/// `prepared` (null: prepared here, in scratch): dense_prepared<G> for w.
template <Conv2dGeometry G, bool Bias, class Op>
void conv2d_forward_dense(const float* x, const float* w, const float* b, float* y, std::size_t n, float* scratch,
                          const float* prepared = nullptr) {
  using D = conv_dense<G>;
  const float* panels = prepared ? prepared + dense_prepared<G>::forward : nullptr;
  float* bias_row = scratch + D::forward_panel_floats;  // b[o] for each (o, p)
  if (!prepared) {
    float* own = align_64(scratch);
    dense_forward_panels<G>(w, own);
    panels = own;
  }
  for (std::size_t o = 0; o < D::O; ++o) std::fill_n(bias_row + o * D::P, D::P, Bias ? b[o] : 0.0f);
  for (std::size_t s = 0; s < n; ++s) std::copy_n(bias_row, D::OP, y + s * D::OP);
  rows_gemm<D::CQ, D::OP, Op>(x, panels, y, n);
}

/// Backward of conv2d + Op for n samples, the dense form (conv2d_backward's contract).
/// `scratch`: conv_dense<G>::backward_scratch floats; `prepared`: dense_prepared<G> for w (null:
/// prepared here); `held` (null: dW itself): where dT is left instead of being added into dW.
template <Conv2dGeometry G, bool Bias, class Op>
void conv2d_backward_dense(const float* x, const float* w, const float* y, float* dy, float* dw, float* db, float* dx,
                           std::size_t n, float* scratch, const float* prepared = nullptr, float* held = nullptr) {
  using D = conv_dense<G>;
  constexpr std::size_t OP = D::OP, CQ = D::CQ, P = D::P, Nc = D::chunk;
  if constexpr (!std::is_same_v<Op, identity_op>) eltwise_backward<Op>(y, dy, dy, n * OP);
  const float* dz = dy;
  float* t = align_64(scratch);  // T's panels, then dT
  float* x_panels = align_64(scratch + D::t_floats);
  float* dzt = scratch + D::t_floats + D::x_panel_floats;
  if constexpr (Bias) conv_bias_grad<D::O, P>(dz, n, db);
  if (dx) {  // dx = dz T
    const float* panels = prepared ? prepared + dense_prepared<G>::backward : t;
    if (!prepared) dense_backward_panels<G>(w, t);
    rows_gemm<OP, CQ, identity_op, true>(dz, panels, dx, n);
  }
  // dT = dz^T x over the batch, Nc samples a chunk (zeros past the last sample; the first chunk
  // writes dT, the others add to it), then into dW
  float* dt = held ? held : t;
  for (std::size_t s0 = 0; s0 < n; s0 += Nc) {
    const std::size_t count = std::min(Nc, n - s0);
    transpose_matrix(dz + s0 * OP, OP, dzt, Nc, count, OP);  // dzt[(o, p), s] = dz[s0 + s, (o, p)]
    if (count < Nc)
      for (std::size_t r = 0; r < OP; ++r) std::fill(dzt + r * Nc + count, dzt + (r + 1) * Nc, 0.0f);
    rows_to_panels<CQ, Nc>(x + s0 * CQ, count, x_panels);
    if (s0 == 0) rows_gemm<Nc, CQ, identity_op, true>(dzt, x_panels, dt, OP);
    else rows_gemm<Nc, CQ, identity_op>(dzt, x_panels, dt, OP);
  }
  if (!held) dense_fold_weight_grad<G>(dt, dw);
}

}  // namespace ctnn::kernels::detail
