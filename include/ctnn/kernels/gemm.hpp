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
//
// Files: gemm/plan.hpp (cost model, scratch sizes), gemm/dot.hpp, gemm/packed.hpp (the two forward
// paths), gemm/backward.hpp (dx, dW, db). GemmPath forces a path (the form-grid test).
#pragma once

#include <cstddef>

#include "ctnn/kernels/gemm/backward.hpp"
#include "ctnn/kernels/gemm/dot.hpp"
#include "ctnn/kernels/gemm/packed.hpp"

namespace ctnn::kernels {

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

}  // namespace ctnn::kernels
