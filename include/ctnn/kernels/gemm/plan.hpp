// Linear's GEMM, the cost model: which path (dot or packed) M rows take, the packed path's
// register tile for O outputs, and the scratch each path needs.
#pragma once

#include <algorithm>
#include <cstddef>

#include "ctnn/kernels/eltwise.hpp"

namespace ctnn::kernels {

#if defined(__AVX512F__)
#define CTNN_GEMM_AVX512 1
#else
#define CTNN_GEMM_AVX512 0
#endif

// ---- the instruction set -------------------------------------------------------------------

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
             K* O * sizeof(float) <= 32768 ? 0 : K * O * sizeof(float) / 32);
template <std::size_t K, std::size_t O>
inline constexpr std::size_t packed_cycles_per_row = K * ceil_div(O, simd_width) / 2;
template <std::size_t K, std::size_t O>
inline constexpr std::size_t pack_cycles = K * ceil_div(O, simd_width) * 10;
/// The packed path is never cheaper (few outputs: a panel row would be mostly padding).
template <std::size_t K, std::size_t O>
inline constexpr bool dot_always = dot_cycles_per_row<K, O> <= packed_cycles_per_row<K, O>;

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

}  // namespace ctnn::kernels
