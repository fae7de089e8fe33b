// Linear's GEMM backward: dx = dz w (overwritten), dw += dz^T x, db += column sums of dz;
// register-tiled along k (rows of w and x are contiguous), the last K % simd_width columns masked.
#pragma once

#include <cstddef>

#include "ctnn/kernels/gemm/plan.hpp"

namespace ctnn::kernels {

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
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] =
      vfloat(0.0f);
  for (std::size_t o = 0; o < O; ++o) {
    vfloat wv[NV];
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) wv[v] = load_n(w + o * K + k + v * simd_width, n(v));
    CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) {
      const vfloat d(dz[r * O + o]);
      CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = fmadd(d, wv[v], acc[r][v]);
    }
  }
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v)
      store_n(acc[r][v], dx + r * K + k + v * simd_width, n(v));
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
  CTNN_UNROLL for (std::size_t r = 0; r < OR; ++r) CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] =
      load_n(dw + (o + r) * K + k + v * simd_width, n(v));
  for (std::size_t m = 0; m < M; ++m) {
    vfloat xv[NV];
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) xv[v] = load_n(x + m * K + k + v * simd_width, n(v));
    CTNN_UNROLL for (std::size_t r = 0; r < OR; ++r) {
      const vfloat d(dz[m * O + o + r]);
      CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = fmadd(d, xv[v], acc[r][v]);
    }
  }
  CTNN_UNROLL for (std::size_t r = 0; r < OR; ++r) CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v)
      store_n(acc[r][v], dw + (o + r) * K + k + v * simd_width, n(v));
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
