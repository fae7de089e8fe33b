// GEMM with a fused epilogue: the kernel under Linear (and, later, 1x1 and im2col convolution).
//
//   y[m, o] = Epilogue(sum_k x[m, k] * w[o, k] + b[o])      x: [M, K], w: [O, K], b: [O], y: [M, O]
//
// K and O are compile-time extents (they come from the layer's shape); M is the run-time
// row count (batch size times any leading sample dimensions). w is packed once per call into
// a [K, O_pad] panel (O_pad = O rounded up to the SIMD width, zero-filled) so the inner loop
// broadcasts x[m, k] and multiplies whole vectors of w^T; the bias and the activation are
// applied to the accumulators before they are stored, so Linear + ReLU is one pass over y.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "ctnn/kernels/eltwise.hpp"

namespace ctnn::kernels {

/// Scratch floats linear_forward needs for a K x O weight (the packed panel and the padded bias).
template <std::size_t K, std::size_t O>
inline constexpr std::size_t linear_scratch_floats = (K + 1) * round_up(O, simd_width);

namespace detail {

/// MR rows x NV vectors of y, accumulated in registers over all K.
template <std::size_t K, std::size_t O, class Epilogue, std::size_t MR, std::size_t NV>
inline void gemm_tile(const float* x, const float* panel, const float* bias, float* y, std::size_t j) {
  constexpr std::size_t Opad = round_up(O, simd_width);
  vfloat acc[MR][NV];
  for (std::size_t r = 0; r < MR; ++r)
    for (std::size_t v = 0; v < NV; ++v) acc[r][v] = vfloat::load_unaligned(bias + j + v * simd_width);
  for (std::size_t k = 0; k < K; ++k) {
    vfloat wv[NV];
    for (std::size_t v = 0; v < NV; ++v) wv[v] = vfloat::load_unaligned(panel + k * Opad + j + v * simd_width);
    for (std::size_t r = 0; r < MR; ++r) {
      const vfloat xv(x[r * K + k]);
      for (std::size_t v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(xv, wv[v], acc[r][v]);
    }
  }
  for (std::size_t r = 0; r < MR; ++r) {
    for (std::size_t v = 0; v < NV; ++v) {
      const vfloat out = Epilogue::forward(acc[r][v]);
      const std::size_t col = j + v * simd_width;
      float* dst = y + r * O + col;
      if (col + simd_width <= O) {
        out.store_unaligned(dst);
      } else {  // the last, partial vector of a row
        alignas(64) float tmp[simd_width];
        out.store_aligned(tmp);
        std::memcpy(dst, tmp, (O - col) * sizeof(float));
      }
    }
  }
}

template <std::size_t K, std::size_t O, class Epilogue, std::size_t MR>
inline void gemm_rows(const float* x, const float* panel, const float* bias, float* y) {
  constexpr std::size_t Opad = round_up(O, simd_width);
  constexpr std::size_t NV = 2;  // vectors of y per tile
  std::size_t j = 0;
  for (; j + NV * simd_width <= Opad; j += NV * simd_width) gemm_tile<K, O, Epilogue, MR, NV>(x, panel, bias, y, j);
  if constexpr (Opad % (NV * simd_width) != 0) gemm_tile<K, O, Epilogue, MR, 1>(x, panel, bias, y, j);
}

}  // namespace detail

/// y = Epilogue(x w^T + b) for M rows. `b` may be null (no bias). `scratch` holds
/// linear_scratch_floats<K, O> floats.
template <std::size_t K, std::size_t O, class Epilogue = identity_op>
void linear_forward(const float* x, const float* w, const float* b, float* y, std::size_t M, float* scratch) {
  constexpr std::size_t Opad = round_up(O, simd_width);
  float* panel = scratch;          // [K, Opad] = w^T, zero-padded
  float* bias = scratch + K * Opad;  // [Opad]
  for (std::size_t k = 0; k < K; ++k) {
    float* row = panel + k * Opad;
    for (std::size_t o = 0; o < O; ++o) row[o] = w[o * K + k];
    std::fill(row + O, row + Opad, 0.0f);
  }
  if (b) std::copy_n(b, O, bias);
  else std::fill_n(bias, O, 0.0f);
  std::fill(bias + O, bias + Opad, 0.0f);

  constexpr std::size_t MR = 4;  // rows of y per tile
  std::size_t m = 0;
  for (; m + MR <= M; m += MR) detail::gemm_rows<K, O, Epilogue, MR>(x + m * K, panel, bias, y + m * O);
  for (; m < M; ++m) detail::gemm_rows<K, O, Epilogue, 1>(x + m * K, panel, bias, y + m * O);
}

// ---- backward ------------------------------------------------------------------------------
//
// With dz = dL/d(x w^T + b) (the activation's derivative already applied):
//   dx[m, k]  = sum_o dz[m, o] w[o, k]            linear_backward_input   (overwrites dx)
//   dw[o, k] += sum_m dz[m, o] x[m, k]            linear_backward_params  (accumulates, as torch)
//   db[o]    += sum_m dz[m, o]
// Both vectorize along k, where w's and x's rows are contiguous; the last K % simd_width
// columns are finished with scalar loops.

namespace detail {

/// The MR x NV-vector tile of dx at rows m.., columns k..: sum over all O.
template <std::size_t K, std::size_t O, std::size_t MR, std::size_t NV>
inline void dx_tile(const float* dz, const float* w, float* dx, std::size_t k) {
  vfloat acc[MR][NV];
  for (std::size_t r = 0; r < MR; ++r)
    for (std::size_t v = 0; v < NV; ++v) acc[r][v] = vfloat(0.0f);
  for (std::size_t o = 0; o < O; ++o) {
    vfloat wv[NV];
    for (std::size_t v = 0; v < NV; ++v) wv[v] = vfloat::load_unaligned(w + o * K + k + v * simd_width);
    for (std::size_t r = 0; r < MR; ++r) {
      const vfloat d(dz[r * O + o]);
      for (std::size_t v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(d, wv[v], acc[r][v]);
    }
  }
  for (std::size_t r = 0; r < MR; ++r)
    for (std::size_t v = 0; v < NV; ++v) acc[r][v].store_unaligned(dx + r * K + k + v * simd_width);
}

template <std::size_t K, std::size_t O, std::size_t MR>
inline void dx_rows(const float* dz, const float* w, float* dx) {
  constexpr std::size_t Kv = K / simd_width * simd_width;  // columns done with vectors
  std::size_t k = 0;
  for (; k + 2 * simd_width <= Kv; k += 2 * simd_width) dx_tile<K, O, MR, 2>(dz, w, dx, k);
  if constexpr (Kv % (2 * simd_width) != 0) dx_tile<K, O, MR, 1>(dz, w, dx, k);
  for (std::size_t r = 0; r < MR; ++r)
    for (std::size_t kk = Kv; kk < K; ++kk) {
      float s = 0.0f;
      for (std::size_t o = 0; o < O; ++o) s += dz[r * O + o] * w[o * K + kk];
      dx[r * K + kk] = s;
    }
}

/// The OR x NV-vector tile of dw at rows o.., columns k..: sum over all M.
template <std::size_t K, std::size_t O, std::size_t OR, std::size_t NV>
inline void dw_tile(const float* dz, const float* x, float* dw, std::size_t M, std::size_t o, std::size_t k) {
  vfloat acc[OR][NV];
  for (std::size_t r = 0; r < OR; ++r)
    for (std::size_t v = 0; v < NV; ++v) acc[r][v] = vfloat::load_unaligned(dw + (o + r) * K + k + v * simd_width);
  for (std::size_t m = 0; m < M; ++m) {
    vfloat xv[NV];
    for (std::size_t v = 0; v < NV; ++v) xv[v] = vfloat::load_unaligned(x + m * K + k + v * simd_width);
    for (std::size_t r = 0; r < OR; ++r) {
      const vfloat d(dz[m * O + o + r]);
      for (std::size_t v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(d, xv[v], acc[r][v]);
    }
  }
  for (std::size_t r = 0; r < OR; ++r)
    for (std::size_t v = 0; v < NV; ++v) acc[r][v].store_unaligned(dw + (o + r) * K + k + v * simd_width);
}

template <std::size_t K, std::size_t O, std::size_t OR>
inline void dw_rows(const float* dz, const float* x, float* dw, std::size_t M, std::size_t o) {
  constexpr std::size_t Kv = K / simd_width * simd_width;
  std::size_t k = 0;
  for (; k + 2 * simd_width <= Kv; k += 2 * simd_width) dw_tile<K, O, OR, 2>(dz, x, dw, M, o, k);
  if constexpr (Kv % (2 * simd_width) != 0) dw_tile<K, O, OR, 1>(dz, x, dw, M, o, k);
  for (std::size_t r = 0; r < OR; ++r)
    for (std::size_t kk = Kv; kk < K; ++kk) {
      float s = dw[(o + r) * K + kk];
      for (std::size_t m = 0; m < M; ++m) s += dz[m * O + o + r] * x[m * K + kk];
      dw[(o + r) * K + kk] = s;
    }
}

}  // namespace detail

/// dx = dz w  (dz: [M, O], w: [O, K], dx: [M, K]); dx is overwritten.
template <std::size_t K, std::size_t O>
void linear_backward_input(const float* dz, const float* w, float* dx, std::size_t M) {
  constexpr std::size_t MR = 4;
  std::size_t m = 0;
  for (; m + MR <= M; m += MR) detail::dx_rows<K, O, MR>(dz + m * O, w, dx + m * K);
  for (; m < M; ++m) detail::dx_rows<K, O, 1>(dz + m * O, w, dx + m * K);
}

/// dw += dz^T x, db += column sums of dz (db may be null: no bias).
template <std::size_t K, std::size_t O>
void linear_backward_params(const float* dz, const float* x, float* dw, float* db, std::size_t M) {
  constexpr std::size_t OR = 4, Omain = O / OR * OR;  // rows of dw per tile; rows done in tiles
  for (std::size_t o = 0; o < Omain; o += OR) detail::dw_rows<K, O, OR>(dz, x, dw, M, o);
  if constexpr (Omain < O)
    for (std::size_t o = Omain; o < O; ++o) detail::dw_rows<K, O, 1>(dz, x, dw, M, o);
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
