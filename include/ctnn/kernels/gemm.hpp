// GEMM with a fused epilogue: the kernel under Linear.
//
//   y[m, o] = Epilogue(sum_k x[m, k] * w[o, k] + b[o])      x: [M, K], w: [O, K], b: [O], y: [M, O]
//
// K and O are compile-time extents (they come from the layer's shape); M is the run-time
// row count (batch size times any leading sample dimensions). Two paths, chosen per call by a
// cost model (linear_uses_dot):
//
//   - dot (small M, or few outputs): reads w in its [O, K] layout. One row of x times a block of
//     simd_width rows of w gives simd_width accumulators whose lanes are partial sums along k;
//     a transpose-reduce folds them into one vector of simd_width outputs. No packing.
//   - packed (large M): w^T is packed into panels of NR = NV vectors of outputs, [K, NR] each,
//     with 16 x 16 transposes (four 128-bit loads per vector, then 4 x 4 transposes inside
//     128-bit lanes); an MR x NV register tile (8 x 3 or 6 x 4, whichever fits O's panels)
//     broadcasts x[m, k] and streams the panels, K blocked so the tile's rows of x stay in L1.
//
// Both paths apply the bias and the activation to the accumulators before they are stored, so
// Linear + ReLU is one pass over y. The kernels keep no state: everything lives in `scratch`
// (each thread passes its own), and nothing is static or global.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ctnn/kernels/eltwise.hpp"

#if defined(__AVX512F__)
#define CTNN_GEMM_AVX512 1
#else
#define CTNN_GEMM_AVX512 0
#endif

namespace ctnn::kernels {

// ---- vector helpers ------------------------------------------------------------------------

namespace detail {

inline constexpr bool gemm_avx512 = CTNN_GEMM_AVX512 && simd_width == 16;

}  // namespace detail

// ---- cost model: which path, and how much scratch ------------------------------------------

namespace detail {

inline constexpr std::size_t ceil_div(std::size_t n, std::size_t d) { return (n + d - 1) / d; }

/// Register tile of the packed path for O outputs: MR rows of x by NV vectors of outputs
/// (NR = NV * simd_width outputs per panel). AVX-512 has 32 registers: 24 accumulators, as 8 x 3
/// or 6 x 4, whichever fills the last panel best (O = 256: 4 panels of 64, no narrow one).
/// AVX2 has 16: 4 x 3.
template <std::size_t O>
struct packed_shape {
  static constexpr std::size_t vectors = ceil_div(O, simd_width);
  static constexpr std::size_t fill(std::size_t nv) { return vectors % nv == 0 ? nv : vectors % nv; }
  static constexpr std::size_t nv = simd_width >= 16 && fill(4) > fill(3) ? 4 : 3;
  static constexpr std::size_t mr = simd_width >= 16 ? 24 / nv : 4;
  static constexpr std::size_t nr = nv * simd_width;
};
/// K block of the packed path: MR rows x KC of x (6-8 KiB) stay in L1 while the panels stream
/// through from L2 (a whole 256 x 256 weight is one block).
inline constexpr std::size_t gemm_kc = 256;

/// Cost estimates in cycles, fitted to measurements on AVX-512 (Cascade Lake): FMAs at 2 per
/// cycle; the transpose-reduce ~40 cycles per simd_width outputs (15 folds, each a permute, a
/// blend and an add); the dot path reads all of w for every row of x, which is bound by L2
/// (~32 bytes a cycle) once w is larger than L1 (32 KiB); packing ~10 cycles per vector of panel
/// (a 16 x 16 transpose is 48 inserts and 32 shuffles, plus loads and stores).
/// The crossover: 20 -> 256 packs from M = 5 on, 256 -> 256 from M = 7 on.
template <std::size_t K, std::size_t O>
inline constexpr std::size_t dot_cycles_per_row =
    std::max(O * ceil_div(K, simd_width) / 2 + ceil_div(O, simd_width) * 40,
             K * O * sizeof(float) <= 32768 ? 0 : K * O * sizeof(float) / 32);
template <std::size_t K, std::size_t O>
inline constexpr std::size_t packed_cycles_per_row = K * ceil_div(O, simd_width) / 2;
template <std::size_t K, std::size_t O>
inline constexpr std::size_t pack_cycles = K * ceil_div(O, simd_width) * 10;
/// The packed path is never cheaper (few outputs: a panel row would be mostly padding).
template <std::size_t K, std::size_t O>
inline constexpr bool dot_always = dot_cycles_per_row<K, O> <= packed_cycles_per_row<K, O>;

}  // namespace detail

/// True when linear_forward<K, O> reads w directly for M rows (the dot path), false when it packs.
template <std::size_t K, std::size_t O>
constexpr bool linear_uses_dot(std::size_t M) {
  if constexpr (detail::dot_always<K, O>) return true;
  else
    return M * detail::dot_cycles_per_row<K, O> <= detail::pack_cycles<K, O> + M * detail::packed_cycles_per_row<K, O>;
}

/// Floats of a packed weight: the panels [K, O_pad] and the padded bias [O_pad]; 0 when the dot
/// path always wins, which reads w as it is (no packing). Kept by linear_forward_prepacked's caller.
template <std::size_t K, std::size_t O>
inline constexpr std::size_t prepacked_floats = detail::dot_always<K, O> ? 0 : (K + 1) * round_up(O, simd_width);

/// Scratch floats linear_forward needs for a K x O weight: the packed weight, plus room to align it
/// to 64 bytes (none when the dot path always wins).
template <std::size_t K, std::size_t O>
inline constexpr std::size_t linear_scratch_floats =
    prepacked_floats<K, O> == 0 ? 0 : prepacked_floats<K, O> + 64 / sizeof(float);

// ---- dot path: w read as [O, K] ------------------------------------------------------------

namespace detail {

/// y[m, o0 .. o0 + OB) for MR rows of x: OB (<= simd_width) rows of w dotted with each row of x
/// (each w vector loaded once for all MR rows), then reduced, one vector of outputs per row.
/// `next` (when Prefetch): the MR rows of x after these, prefetched into L1 meanwhile, since x is
/// often larger than L1 (a hidden layer's output) and a row is only a few vectors.
template <std::size_t K, std::size_t O, class Epilogue, std::size_t OB, std::size_t MR, bool Prefetch>
inline void dot_block(const float* x, const float* next, const float* w, const float* b, float* y, std::size_t o0) {
  constexpr std::size_t Kv = K / simd_width * simd_width, Kt = K - Kv;  // whole vectors; tail
  vfloat acc[MR][simd_width];
  CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i)
    CTNN_UNROLL for (std::size_t r = 0; r < simd_width; ++r) acc[i][r] = vfloat(0.0f);
  for (std::size_t k = 0; k < Kv; k += simd_width) {
    vfloat xv[MR];
    if constexpr (Prefetch)
      CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) __builtin_prefetch(next + i * K + k);
    CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) xv[i] = vfloat::load_unaligned(x + i * K + k);
    CTNN_UNROLL for (std::size_t r = 0; r < OB; ++r) {
      const vfloat wv = vfloat::load_unaligned(w + (o0 + r) * K + k);
      CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) acc[i][r] = fmadd(wv, xv[i], acc[i][r]);
    }
  }
#if CTNN_GEMM_AVX512
  if constexpr (gemm_avx512 && Kt != 0 && Kt <= 4 && OB == simd_width) {
    // A tail of at most 4 columns (K = 20): after two levels of the transpose-reduce each row's
    // partial sums fill one 128-bit lane (l2[r] holds rows r, r+4, r+8, r+12), so the tails of
    // four rows are one vector of 128-bit loads and one FMA instead of four masked ones.
    const auto mask = static_cast<__mmask8>((1u << Kt) - 1u);
    auto tail = [&](std::size_t row) { return _mm_maskz_loadu_ps(mask, w + (o0 + row) * K + Kv); };
    CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) {
      const __m512 xt = _mm512_broadcast_f32x4(_mm_maskz_loadu_ps(mask, x + i * K + Kv));
      const vfloat sum = reduce_rows(acc[i], [&](__m512* l2) {
        CTNN_UNROLL for (std::size_t r = 0; r < 4; ++r) {
          __m512 t = _mm512_castps128_ps512(tail(r));
          t = _mm512_insertf32x4(t, tail(r + 4), 1);
          t = _mm512_insertf32x4(t, tail(r + 8), 2);
          t = _mm512_insertf32x4(t, tail(r + 12), 3);
          l2[r] = _mm512_fmadd_ps(t, xt, l2[r]);
        }
      });
      const vfloat bias = b ? vfloat::load_unaligned(b + o0) : vfloat(0.0f);
      (Epilogue::forward(sum + bias)).store_unaligned(y + i * O + o0);
    }
    return;
  }
#endif
  if constexpr (Kt != 0) {
    vfloat xv[MR];
    CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) xv[i] = load_first(x + i * K + Kv, Kt);
    CTNN_UNROLL for (std::size_t r = 0; r < OB; ++r) {
      const vfloat wv = load_first(w + (o0 + r) * K + Kv, Kt);
      CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) acc[i][r] = fmadd(wv, xv[i], acc[i][r]);
    }
  }
  const vfloat bias = b ? load_n(b + o0, OB) : vfloat(0.0f);
  CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i)
    store_n(Epilogue::forward(reduce_rows(acc[i]) + bias), y + i * O + o0, OB);
}

/// Rows of x per dot block: about 24 accumulators (MR x OB), so a narrow last block of outputs
/// (O = 10) shares each w vector load among several rows.
template <std::size_t OB>
inline constexpr std::size_t dot_rows = OB <= 8 ? 3 : OB <= 12 ? 2 : 1;

template <std::size_t K, std::size_t O, class Epilogue, std::size_t MR, bool Prefetch>
inline void dot_rows_all(const float* x, const float* next, const float* w, const float* b, float* y) {
  constexpr std::size_t Ov = O / simd_width * simd_width;
  for (std::size_t o = 0; o < Ov; o += simd_width)
    dot_block<K, O, Epilogue, simd_width, MR, Prefetch>(x, next, w, b, y, o);
  if constexpr (Ov < O) dot_block<K, O, Epilogue, O - Ov, MR, Prefetch>(x, next, w, b, y, Ov);
}

template <std::size_t K, std::size_t O, class Epilogue>
inline void linear_forward_dot(const float* x, const float* w, const float* b, float* y, std::size_t M) {
  constexpr std::size_t MR = dot_rows<O < simd_width ? O : simd_width>;
  std::size_t m = 0;
  for (; m + 2 * MR <= M; m += MR) dot_rows_all<K, O, Epilogue, MR, true>(x + m * K, x + (m + MR) * K, w, b, y + m * O);
  for (; m + MR <= M; m += MR) dot_rows_all<K, O, Epilogue, MR, false>(x + m * K, nullptr, w, b, y + m * O);
  for (; m < M; ++m) dot_rows_all<K, O, Epilogue, 1, false>(x + m * K, nullptr, w, b, y + m * O);
}

}  // namespace detail

// ---- packed path: panels of w^T, MR x NV register tiles ------------------------------------
//
// Panel p holds outputs [p NR, p NR + width_p) for all K: [K, width_p], row k contiguous
// (width_p = NR, the last panel O_pad - p NR). Panels follow each other in scratch.

namespace detail {

/// Packs w [O, K] into the panels (O padded with zeros to O_pad = round_up(O, simd_width)).
template <std::size_t K, std::size_t O>
inline void pack_panels(const float* w, float* panels) {
  constexpr std::size_t Opad = round_up(O, simd_width), NR = packed_shape<O>::nr;
#if CTNN_GEMM_AVX512
  if constexpr (gemm_avx512) {
    for (std::size_t o0 = 0; o0 < Opad; o0 += 16) {
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
  for (std::size_t o0 = 0; o0 < Opad; o0 += NR) {
    const std::size_t width = std::min(NR, Opad - o0);
    float* panel = panels + o0 * K;
    for (std::size_t k = 0; k < K; ++k)
      for (std::size_t c = 0; c < width; ++c) panel[k * width + c] = o0 + c < O ? w[(o0 + c) * K + k] : 0.0f;
  }
}

/// MR rows x NV vectors of y over k in [k0, k0 + kc): starts from the bias (First) or the
/// partial sums in y, and applies the epilogue after the last K block (Last).
/// last_n: the valid outputs in the tile's last vector (simd_width, or O % simd_width at the end of
/// a row; a run-time value, so the last panel shares the others' tile when it is as wide).
template <std::size_t K, std::size_t O, class Epilogue, std::size_t MR, std::size_t NV, bool First, bool Last>
inline void packed_tile(const float* x, const float* panel, std::size_t width, const float* bias, float* y,
                        std::size_t j, std::size_t kc, std::size_t last_n) {
  vfloat acc[MR][NV];
  const auto n = [last_n](std::size_t v) { return v + 1 == NV ? last_n : simd_width; };
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r)
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) {
      if constexpr (First) acc[r][v] = vfloat::load_aligned(bias + j + v * simd_width);
      else acc[r][v] = load_n(y + r * O + j + v * simd_width, n(v));
    }
  _Pragma("GCC unroll 4") for (std::size_t k = 0; k < kc; ++k) {
    vfloat pv[NV];
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) pv[v] = vfloat::load_aligned(panel + k * width + v * simd_width);
    CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) {
      const vfloat xv(x[r * K + k]);
      CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = fmadd(xv, pv[v], acc[r][v]);
    }
  }
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r)
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) {
      if constexpr (Last) store_n(Epilogue::forward(acc[r][v]), y + r * O + j + v * simd_width, n(v));
      else store_n(acc[r][v], y + r * O + j + v * simd_width, n(v));
    }
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
    packed_tile<K, O, Epilogue, MR, NVlast, First, Last>(x + k0, panel + k0 * NVlast * simd_width,
                                                         NVlast * simd_width, bias, y, j, kc, tail);
  }
}

/// The rows left over after whole tiles (rows < MR <= 8), as tiles of 4, 2 and 1 rows, one for each
/// binary digit of `rows`: f.template operator()<R>(first row). Three tile heights serve every
/// remainder; one height per remainder would instantiate MR - 1 tiles per panel width and K block,
/// most of the code (and of the compile time) a network's layers make.
template <std::size_t MR, class F>
inline void leftover_rows(std::size_t rows, F&& f) {
  static_assert(MR <= 8);
  std::size_t done = 0;
  const auto tile = [&]<std::size_t R>() {
    if constexpr (R < MR)
      if (rows & R) {
        f.template operator()<R>(done);
        done += R;
      }
  };
  tile.template operator()<4>();
  tile.template operator()<2>();
  tile.template operator()<1>();
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
    CTNN_UNROLL for (std::size_t v = 0; v < V; ++v)
      acc[v] = fmadd(xv, vfloat::load_aligned(packed + at(v, k)), acc[v]);
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

/// The forward's paths; `automatic` is the cost model's choice per call (what Linear uses). The
/// packed path exists only where it can pay (!dot_always: a weight that has a packing).
enum class GemmPath { automatic, dot, packed };

/// y = Epilogue(x w^T + b) for M rows. `b` may be null (no bias). `scratch` holds
/// linear_scratch_floats<K, O> floats (any alignment). Path forces a path (tests).
template <std::size_t K, std::size_t O, class Epilogue = identity_op, GemmPath Path = GemmPath::automatic>
void linear_forward(const float* x, const float* w, const float* b, float* y, std::size_t M, float* scratch) {
  static_assert(Path != GemmPath::packed || !detail::dot_always<K, O>, "this weight has no packed path");
  if constexpr (Path == GemmPath::dot) detail::linear_forward_dot<K, O, Epilogue>(x, w, b, y, M);
  else if constexpr (Path == GemmPath::packed) detail::linear_forward_packed<K, O, Epilogue>(x, w, b, y, M, scratch);
  else if (linear_uses_dot<K, O>(M)) detail::linear_forward_dot<K, O, Epilogue>(x, w, b, y, M);
  else if constexpr (!detail::dot_always<K, O>) detail::linear_forward_packed<K, O, Epilogue>(x, w, b, y, M, scratch);
}

/// Packs w [O, K] and b [O] (null: no bias) once, for linear_forward_prepacked: `packed` holds
/// prepacked_floats<K, O> floats and is 64-byte aligned.
template <std::size_t K, std::size_t O>
void prepack_linear(const float* w, const float* b, float* packed) {
  if constexpr (!detail::dot_always<K, O>) detail::pack_weight_bias<K, O>(w, b, packed);
}

/// linear_forward on a weight packed by prepack_linear: the packed path at every M (no packing
/// per call, so it wins from M = 1), or the dot path on w and b when the weight has no packing.
template <std::size_t K, std::size_t O, class Epilogue = identity_op>
void linear_forward_prepacked(const float* x, const float* w, const float* b, const float* packed, float* y,
                              std::size_t M) {
  if constexpr (detail::dot_always<K, O>) detail::linear_forward_dot<K, O, Epilogue>(x, w, b, y, M);
  else detail::linear_forward_on_panels<K, O, Epilogue>(x, packed, y, M);
}

// ---- backward ------------------------------------------------------------------------------
//
// With dz = dL/d(x w^T + b) (the activation's derivative already applied):
//   dx[m, k]  = sum_o dz[m, o] w[o, k]            linear_backward_input   (overwrites dx)
//   dw[o, k] += sum_m dz[m, o] x[m, k]            linear_backward_params  (accumulates, as torch)
//   db[o]    += sum_m dz[m, o]
// Both are register-tiled GEMMs that vectorize along k, where w's and x's rows are contiguous
// (no packing); the last K % simd_width columns are a masked vector.

namespace detail {

/// dx tile: MR rows x NV vectors at columns k.. (LastN valid in the last one), summed over all O.
template <std::size_t K, std::size_t O, std::size_t MR, std::size_t NV, std::size_t LastN>
inline void dx_tile(const float* dz, const float* w, float* dx, std::size_t k) {
  constexpr auto n = [](std::size_t v) { return v + 1 == NV ? LastN : simd_width; };
  vfloat acc[MR][NV];
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r)
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = vfloat(0.0f);
  for (std::size_t o = 0; o < O; ++o) {
    vfloat wv[NV];
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) wv[v] = load_n(w + o * K + k + v * simd_width, n(v));
    CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) {
      const vfloat d(dz[r * O + o]);
      CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = fmadd(d, wv[v], acc[r][v]);
    }
  }
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r)
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) store_n(acc[r][v], dx + r * K + k + v * simd_width, n(v));
}

/// Backward tiles: 8 x 3 vectors on AVX-512 (24 accumulators), 4 x 2 on 16-register ISAs.
inline constexpr std::size_t bwd_mr = simd_width >= 16 ? 8 : 4;
inline constexpr std::size_t bwd_nv = simd_width >= 16 ? 3 : 2;

/// Columns of a row of K in backward tiles: whole tiles of bwd_nv full vectors, then one tile
/// with the rest (up to bwd_nv - 1 full vectors and the partial one).
template <std::size_t K>
struct k_split {
  static constexpr std::size_t full = K / simd_width;                        // full vectors
  static constexpr std::size_t main = full / bwd_nv * bwd_nv * simd_width;    // columns in whole tiles
  static constexpr std::size_t tail_nv = full % bwd_nv + (K % simd_width != 0);  // vectors in the last tile
  static constexpr std::size_t tail_n = K % simd_width == 0 ? simd_width : K % simd_width;
};

template <std::size_t K, std::size_t O, std::size_t MR>
inline void dx_rows(const float* dz, const float* w, float* dx) {
  using S = k_split<K>;
  for (std::size_t k = 0; k < S::main; k += bwd_nv * simd_width) dx_tile<K, O, MR, bwd_nv, simd_width>(dz, w, dx, k);
  if constexpr (S::tail_nv != 0) dx_tile<K, O, MR, S::tail_nv, S::tail_n>(dz, w, dx, S::main);
}

/// dw tile: OR rows of dw x NV vectors at columns k.. (LastN valid in the last one), summed over all M rows.
template <std::size_t K, std::size_t O, std::size_t OR, std::size_t NV, std::size_t LastN>
inline void dw_tile(const float* dz, const float* x, float* dw, std::size_t M, std::size_t o, std::size_t k) {
  constexpr auto n = [](std::size_t v) { return v + 1 == NV ? LastN : simd_width; };
  vfloat acc[OR][NV];
  CTNN_UNROLL for (std::size_t r = 0; r < OR; ++r)
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = load_n(dw + (o + r) * K + k + v * simd_width, n(v));
  for (std::size_t m = 0; m < M; ++m) {
    vfloat xv[NV];
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) xv[v] = load_n(x + m * K + k + v * simd_width, n(v));
    CTNN_UNROLL for (std::size_t r = 0; r < OR; ++r) {
      const vfloat d(dz[m * O + o + r]);
      CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = fmadd(d, xv[v], acc[r][v]);
    }
  }
  CTNN_UNROLL for (std::size_t r = 0; r < OR; ++r)
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) store_n(acc[r][v], dw + (o + r) * K + k + v * simd_width, n(v));
}

template <std::size_t K, std::size_t O, std::size_t OR>
inline void dw_rows(const float* dz, const float* x, float* dw, std::size_t M, std::size_t o) {
  using S = k_split<K>;
  for (std::size_t k = 0; k < S::main; k += bwd_nv * simd_width)
    dw_tile<K, O, OR, bwd_nv, simd_width>(dz, x, dw, M, o, k);
  if constexpr (S::tail_nv != 0) dw_tile<K, O, OR, S::tail_nv, S::tail_n>(dz, x, dw, M, o, S::main);
}

}  // namespace detail

/// dx = dz w  (dz: [M, O], w: [O, K], dx: [M, K]); dx is overwritten.
template <std::size_t K, std::size_t O>
void linear_backward_input(const float* dz, const float* w, float* dx, std::size_t M) {
  constexpr std::size_t MR = detail::bwd_mr;
  std::size_t m = 0;
  for (; m + MR <= M; m += MR) detail::dx_rows<K, O, MR>(dz + m * O, w, dx + m * K);
  if (m < M)
    detail::leftover_rows<MR>(M - m, [&]<std::size_t R>(std::size_t r) {
      detail::dx_rows<K, O, R>(dz + (m + r) * O, w, dx + (m + r) * K);
    });
}

/// dw += dz^T x, db += column sums of dz (db may be null: no bias).
template <std::size_t K, std::size_t O>
void linear_backward_params(const float* dz, const float* x, float* dw, float* db, std::size_t M) {
  constexpr std::size_t OR = detail::bwd_mr, Omain = O / OR * OR;  // rows of dw per tile; rows done in tiles
  for (std::size_t o = 0; o < Omain; o += OR) detail::dw_rows<K, O, OR>(dz, x, dw, M, o);
  if constexpr (Omain < O) detail::dw_rows<K, O, O - Omain>(dz, x, dw, M, Omain);
  if (db) {
    for (std::size_t m = 0; m < M; ++m) {
      std::size_t j = 0;
      for (; j + simd_width <= O; j += simd_width)
        (vfloat::load_unaligned(db + j) + vfloat::load_unaligned(dz + m * O + j)).store_unaligned(db + j);
      for (; j < O; ++j) db[j] += dz[m * O + j];
    }
  }
}

}  // namespace ctnn::kernels
