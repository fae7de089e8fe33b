// Linear's GEMM, packed path (large M): w^T packed into panels of NR outputs, [K, NR] each, by
// 16 x 16 transposes; an MR x NV register tile broadcasts x[m, k] and streams the panels, K
// blocked so the tile's rows of x stay in L1; bias and the epilogue applied to the accumulators.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "ctnn/kernels/gemm/plan.hpp"

namespace ctnn::kernels {

// ---- packed path: panels of w^T, MR x NV register tiles ------------------------------------
//
// Panel p holds outputs [p NR, p NR + width_p) for all K: [K, width_p], row k contiguous
// (width_p = NR, the last panel O_pad - p NR). Panels follow each other in scratch.

namespace detail {

/// Packs w [O, K] into the panels (O padded with zeros to O_pad = round_up(O, simd_width)); or
/// only outputs [o_begin, o_end) of them, o_begin a multiple of the panel width NR (a thread's part).
template <std::size_t K, std::size_t O>
inline void pack_panels(const float* w, float* panels, std::size_t o_begin = 0,
                        std::size_t o_end = round_up(O, simd_width)) {
  constexpr std::size_t Opad = round_up(O, simd_width), NR = packed_shape<O>::nr;
#if CTNN_GEMM_AVX512
  if constexpr (gemm_avx512) {
    for (std::size_t o0 = o_begin; o0 < o_end; o0 += 16) {
      const std::size_t p = o0 / NR, width = std::min(NR, Opad - p * NR);
      float* panel = panels + p * NR * K + (o0 - p * NR);
      const std::size_t rows = std::min<std::size_t>(16, O - o0);
      std::size_t k0 = 0;
      if (rows == 16)
        for (; k0 + 16 <= K; k0 += 16) transpose_block<K, true>(w + o0 * K + k0, panel + k0 * width, width, 16, 16);
      for (; k0 < K; k0 += 16)
        transpose_block<K, false>(w + o0 * K + k0, panel + k0 * width, width, rows, std::min<std::size_t>(16, K - k0));
    }
    return;
  }
#endif
  for (std::size_t o0 = o_begin; o0 < o_end; o0 += NR) {
    const std::size_t width = std::min(NR, Opad - o0), valid = std::min(width, O - o0);
    float* panel = panels + o0 * K;
    transpose_matrix(w + o0 * K, K, panel, width, valid, K);  // panel[k, c] = w[o0 + c, k]
    if (valid < width)
      for (std::size_t k = 0; k < K; ++k) std::fill(panel + k * width + valid, panel + (k + 1) * width, 0.0f);
  }
}

/// MR rows x NV vectors of y (row stride ldy) over kc values of k: rows of x (stride ldx) times one
/// panel (rows of `width` floats). Starts from the bias vector (First) or the partial sums in y,
/// and applies the epilogue after the last K block (Last). last_n: the valid outputs in the tile's
/// last vector (simd_width, or O % simd_width at the end of a row; a run-time value, so the last
/// panel shares the others' tile when it is as wide). The strides are run-time values too: the
/// conv rows form calls it out of line for every shape (conv2d/rows.hpp), Linear inlines it.
template <class Epilogue, std::size_t MR, std::size_t NV, bool First, bool Last>
CTNN_INLINE void packed_tile_strided(const float* x, std::size_t ldx, const float* panel, std::size_t width,
                                     const float* bias, float* y, std::size_t ldy, std::size_t kc, std::size_t last_n) {
  vfloat acc[MR][NV];
  const auto n = [last_n](std::size_t v) { return v + 1 == NV ? last_n : simd_width; };
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) {
    if constexpr (First) acc[r][v] = vfloat::load_aligned(bias + v * simd_width);
    else acc[r][v] = load_n(y + r * ldy + v * simd_width, n(v));
  }
  _Pragma("GCC unroll 4") for (std::size_t k = 0; k < kc; ++k) {
    vfloat pv[NV];
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) pv[v] = vfloat::load_aligned(panel + k * width + v * simd_width);
    CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) {
      const vfloat xv(x[r * ldx + k]);
      CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = fmadd(xv, pv[v], acc[r][v]);
    }
  }
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) {
    if constexpr (Last) store_n(Epilogue::forward(acc[r][v]), y + r * ldy + v * simd_width, n(v));
    else store_n(acc[r][v], y + r * ldy + v * simd_width, n(v));
  }
}

/// packed_tile_strided for Linear: x rows of K, y rows of O, the tile at output column j.
template <std::size_t K, std::size_t O, class Epilogue, std::size_t MR, std::size_t NV, bool First, bool Last>
inline void packed_tile(const float* x, const float* panel, std::size_t width, const float* bias, float* y,
                        std::size_t j, std::size_t kc, std::size_t last_n) {
  packed_tile_strided<Epilogue, MR, NV, First, Last>(x, K, panel, width, First ? bias + j : nullptr, y + j, O, kc,
                                                     last_n);
}

/// One panel (outputs j.., the panel at `panel`) for MR rows over one K block: the panel's
/// width decides the tile's vector count, the end of the row its last vector's valid count.
template <std::size_t K, std::size_t O, class Epilogue, std::size_t MR, bool First, bool Last>
inline void packed_panel_rows(const float* x, const float* panel, std::size_t p, const float* bias, float* y,
                              std::size_t k0, std::size_t kc) {
  using S = packed_shape<O>;
  constexpr std::size_t Opad = round_up(O, simd_width), tail = O % simd_width == 0 ? simd_width : O % simd_width;
  constexpr std::size_t panels = ceil_div(Opad, S::nr), NVlast = (Opad - (panels - 1) * S::nr) / simd_width;
  const std::size_t j = p * S::nr;
  if (NVlast == S::nv || p + 1 < panels) {
    packed_tile<K, O, Epilogue, MR, S::nv, First, Last>(x + k0, panel + k0 * S::nr, S::nr, bias, y, j, kc,
                                                        p + 1 < panels ? simd_width : tail);
  } else {
    packed_tile<K, O, Epilogue, MR, NVlast, First, Last>(x + k0, panel + k0 * NVlast * simd_width, NVlast * simd_width,
                                                         bias, y, j, kc, tail);
  }
}

template <std::size_t K, std::size_t O, class Epilogue, bool First, bool Last>
inline void packed_kblock(const float* x, const float* panels, const float* bias, float* y, std::size_t M,
                          std::size_t k0, std::size_t kc) {
  using S = packed_shape<O>;
  constexpr std::size_t MR = S::mr, Opad = round_up(O, simd_width), P = ceil_div(Opad, S::nr);
  std::size_t m = 0;
  for (; m + MR <= M; m += MR)
    for (std::size_t p = 0; p < P; ++p)
      packed_panel_rows<K, O, Epilogue, MR, First, Last>(x + m * K, panels + p * S::nr * K, p, bias, y + m * O, k0, kc);
  if (m < M)
    for (std::size_t p = 0; p < P; ++p)
      leftover_rows<MR>(M - m, [&]<std::size_t R>(std::size_t r) {
        packed_panel_rows<K, O, Epilogue, R, First, Last>(x + (m + r) * K, panels + p * S::nr * K, p, bias,
                                                          y + (m + r) * O, k0, kc);
      });
}

/// Packs w [O, K] and b [O] (null: no bias) at `packed` (64-byte aligned): the panels [K, Opad],
/// then the bias padded with zeros to Opad.
template <std::size_t K, std::size_t O>
inline void pack_weight_bias(const float* w, const float* b, float* packed) {
  constexpr std::size_t Opad = round_up(O, simd_width);
  float* bias = packed + K * Opad;
  pack_panels<K, O>(w, packed);
  if (b) std::copy_n(b, O, bias);
  else std::fill_n(bias, O, 0.0f);
  std::fill(bias + O, bias + Opad, 0.0f);
}

/// One row of x (M = 1) against the output vectors [V0, V0 + V) of the panels: every vector is an
/// accumulator (x[k] broadcast, one FMA per vector and k), so the FMA chains run side by side.
template <std::size_t K, std::size_t O, class Epilogue, std::size_t V0, std::size_t V>
inline void packed_row(const float* x, const float* packed, const float* bias, float* y) {
  using S = packed_shape<O>;
  constexpr std::size_t Opad = round_up(O, simd_width);
  // Output vector v: panel p = j / NR at column j - p NR, where j = (V0 + v) simd_width.
  constexpr auto at = [](std::size_t v, std::size_t k) {
    const std::size_t j = (V0 + v) * simd_width, p = j / S::nr;
    return p * S::nr * K + k * std::min(S::nr, Opad - p * S::nr) + (j - p * S::nr);
  };
  vfloat acc[V];
  CTNN_UNROLL for (std::size_t v = 0; v < V; ++v) acc[v] = vfloat::load_aligned(bias + (V0 + v) * simd_width);
  _Pragma("GCC unroll 2") for (std::size_t k = 0; k < K; ++k) {
    const vfloat xv(x[k]);
    CTNN_UNROLL for (std::size_t v = 0; v < V; ++v) acc[v] = fmadd(xv, vfloat::load_aligned(packed + at(v, k)), acc[v]);
  }
  CTNN_UNROLL for (std::size_t v = 0; v < V; ++v) {
    const std::size_t j = (V0 + v) * simd_width;
    store_n(Epilogue::forward(acc[v]), y + j, std::min(simd_width, O - j));
  }
}

/// packed_row over all of O, 24 output vectors at a time (the registers left for the loads).
template <std::size_t K, std::size_t O, class Epilogue, std::size_t V0 = 0>
inline void packed_row_all(const float* x, const float* packed, const float* bias, float* y) {
  constexpr std::size_t vectors = ceil_div(O, simd_width), group = simd_width >= 16 ? 24 : 12;
  if constexpr (V0 < vectors) {
    packed_row<K, O, Epilogue, V0, std::min(group, vectors - V0)>(x, packed, bias, y);
    packed_row_all<K, O, Epilogue, V0 + group>(x, packed, bias, y);
  }
}

/// The packed path's GEMM on weights packed by pack_weight_bias.
template <std::size_t K, std::size_t O, class Epilogue>
inline void linear_forward_on_panels(const float* x, const float* packed, float* y, std::size_t M) {
  constexpr std::size_t Opad = round_up(O, simd_width);
  const float* bias = packed + K * Opad;
  if (M == 1) {
    packed_row_all<K, O, Epilogue>(x, packed, bias, y);
  } else if constexpr (K <= gemm_kc) {
    packed_kblock<K, O, Epilogue, true, true>(x, packed, bias, y, M, 0, K);
  } else {
    // K blocks: the first starts from the bias, the middle ones add to y, the last applies Epilogue.
    constexpr std::size_t last = (K - 1) / gemm_kc * gemm_kc;
    packed_kblock<K, O, Epilogue, true, false>(x, packed, bias, y, M, 0, gemm_kc);
    for (std::size_t k0 = gemm_kc; k0 < last; k0 += gemm_kc)
      packed_kblock<K, O, Epilogue, false, false>(x, packed, bias, y, M, k0, gemm_kc);
    packed_kblock<K, O, Epilogue, false, true>(x, packed, bias, y, M, last, K - last);
  }
}

/// Aligns scratch (any float*) to 64 bytes: the tiles load the panels aligned.
inline float* align_64(float* scratch) {
  const auto addr = reinterpret_cast<std::uintptr_t>(scratch);
  return scratch + (round_up(addr, 64) - addr) / sizeof(float);
}

template <std::size_t K, std::size_t O, class Epilogue>
inline void linear_forward_packed(const float* x, const float* w, const float* b, float* y, std::size_t M,
                                  float* scratch) {
  float* packed = align_64(scratch);
  pack_weight_bias<K, O>(w, b, packed);
  linear_forward_on_panels<K, O, Epilogue>(x, packed, y, M);
}

}  // namespace detail

}  // namespace ctnn::kernels
