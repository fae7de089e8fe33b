// conv2d_backward: dW, db and dx of conv2d + Op for n samples, the forms chosen by the plan.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "ctnn/kernels/conv2d/backward_flat.hpp"

namespace ctnn::kernels {

/// Scratch floats conv2d_backward<G, .., Forms> needs (shared by all samples).
template <Conv2dGeometry G, Conv2dForms Forms = Conv2dForms{}>
inline constexpr std::size_t conv2d_backward_scratch_floats = detail::conv2d_backward_plan<G, Forms>::scratch_floats;

// The im2col form (any geometry; the stride-1 forms are in backward_flat.hpp).
// With dz = dL/d(conv output) (the activation's derivative already applied), per sample and group:
//   col[K, P]  = im2col(xp_g)                          (rows padded to Pp = P rounded up to 16, zeros)
//   dW_g      += dz_g[Og, P] col^T                     conv_dw: dot products along p, vectorized
//   db[o]     += sum_p dz[o, p]
//   dcol[K, P] = W_g^T dz_g                            conv_dcol: a GEMM tile like forward's
//   dxp_g      = col2im(dcol)                          the padded input's gradient
//   dx         = the adjoint of F.pad applied to dxp    every padded cell adds into the input cell it
//                                                      was copied from (zeros mode: dropped)
// dz is first copied into rows of Pp floats so every loop runs on whole, aligned vectors.

/// Backward of conv2d + Op for n samples, given y = Op(conv2d(x, w) + b) (read only when Op is not
/// identity_op) and dy = dL/dy [N, O, OH, OW]: dw += dL/dw, db += dL/db (only when Bias), dx = dL/dx
/// (overwritten; skipped when null). dy may be overwritten (with Op'(y) * dy). `scratch` holds
/// conv2d_backward_scratch_floats<G, Forms> floats, 64-byte aligned. Where conv2d_prepared_floats<G,
/// Forms> is not 0 (kernels/conv2d/shared.hpp): `prepared`, conv2d_prepare's weights for w (null:
/// prepared here); `held` (null: dw), conv2d_held_floats<G, Forms> floats where the weight
/// gradient is left, in the form's layout, for conv2d_fold_held to add into dw.
template <Conv2dGeometry G, bool Bias, class Op = identity_op, Conv2dForms Forms = Conv2dForms{}>
void conv2d_backward(const float* x, const float* w, const float* y, float* dy, float* dw, float* db, float* dx,
                     std::size_t n, float* scratch, const float* prepared = nullptr, float* held = nullptr) {
  using plan = detail::conv2d_backward_plan<G, Forms>;
  if constexpr (plan::use_dense) {
    detail::conv2d_backward_dense<G, Bias, Op>(x, w, y, dy, dw, db, dx, n, scratch, prepared, held);
    return;
  } else if constexpr (plan::use_regions) {
    detail::conv2d_backward_regions<G, Bias, Op>(x, w, y, dy, dw, db, dx, n, scratch, prepared, held);
    return;
  } else if constexpr (plan::use_rows) {
    detail::conv2d_backward_rows<G, Bias, Op>(x, w, y, dy, dw, db, dx, n, scratch);
    return;
  } else if constexpr (plan::use_flat) {
    detail::conv2d_backward_flat<G, Bias, Op, Forms>(x, w, y, dy, dw, db, dx, n, scratch);
    return;
  } else {
    constexpr std::size_t P = plan::P, Pp = plan::Pp, K = plan::K, Og = G.Og(), Cg = G.Cg();
    constexpr std::size_t Hp = G.Hp(), LDx = plan::LDx;
    constexpr std::size_t in_floats = G.C * G.H * G.W, out_floats = G.O * P;
    if constexpr (!std::is_same_v<Op, identity_op>) eltwise_backward<Op>(y, dy, dy, n * out_floats);
    const float* dz = dy;
    float* xp = scratch;
    float* dzp = xp + plan::xp_floats;
    float* col = dzp + plan::dz_floats + plan::gap_floats;
    float* dxp = col + plan::col_floats;
    for (std::size_t s = 0; s < n; ++s) {
      const float* xs = x + s * in_floats;
      const float* dzs = dz + s * out_floats;
      for (std::size_t o = 0; o < G.O; ++o) {
        std::copy_n(dzs + o * P, P, dzp + o * Pp);
        std::fill(dzp + o * Pp + P, dzp + (o + 1) * Pp, 0.0f);
      }
      if constexpr (Bias) {
        for (std::size_t o = 0; o < G.O; ++o) {
          vfloat acc(0.0f);
          for (std::size_t p = 0; p < Pp; p += simd_width) acc += vfloat::load_aligned(dzp + o * Pp + p);
          db[o] += hsum(acc);
        }
      }
      const float* src = xs;
      if constexpr (G.padded()) {
        pad2d<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, LDx, G.mode>(xs, xp);
        src = xp;
      }
      float* gx = dx ? dxp : nullptr;  // where col2im writes: the (padded) input's gradient
      for (std::size_t g = 0; g < G.groups; ++g) {
        const float* dzg = dzp + g * Og * Pp;
        im2col<G, Hp, LDx, Pp>(src + g * Cg * Hp * LDx, col);
        detail::conv_dw<Og, K, Pp>(dzg, col, dw + g * Og * K);
        if (gx) {
          detail::conv_dcol<Og, K, Pp>(w + g * Og * K, dzg, col);
          col2im<G, Hp, LDx, Pp>(col, gx + g * Cg * Hp * LDx);
        }
      }
      if (gx) {
        if constexpr (G.padded())
          unpad2d_add<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, LDx, G.mode>(dxp, dx + s * in_floats);
        else std::memcpy(dx + s * in_floats, dxp, in_floats * sizeof(float));
      }
    }
  }
}

}  // namespace ctnn::kernels
