// Conv2d kernels, specialized on compile-time extents (the layer's Conv2dGeometry):
//
//   y[n, o, oh, ow] = Op(b[o] + sum_{c in group(o), kh, kw} w[o, c, kh, kw] * xp[n, c, oh*SH + kh*DH, ow*SW + kw*DW])
//   x: [N, C, H, W], w: [O, C/g, KH, KW], b: [O], y: [N, O, OH, OW], xp = x padded (F.pad semantics)
//
// Entry points: conv2d_forward and conv2d_backward (with their scratch sizes); conv2d_prepare and
// conv2d_fold_held, for weights prepared once. One file a form, in kernels/conv2d/:
//   geometry.hpp       Conv2dGeometry
//   padding.hpp        pad2d (F.pad's four modes) and its adjoint unpad2d_add
//   plan.hpp           which form runs each pass (the cost model, or Conv2dForms to force one)
//   rows.hpp           the rows form, all three passes: the batch's patches as the rows of Linear's
//                      packed GEMM (groups 1; taps that only read zero padding dropped)
//   regions.hpp        the regions form, all three passes: the rows form per region of outputs
//                      that read the same taps, channels-last patches (groups 1, zeros padding)
//   dense.hpp          the dense form, all three passes: on maps of a few pixels, the conv as the
//                      Linear it is on the flattened sample (groups 1, zeros padding)
//   forward:   gemm.hpp (im2col + GEMM; pointwise 1x1 too), depthwise.hpp (groups == C),
//              flat.hpp (stride 1, direct on the flattened padded input),
//              shifted.hpp (stride 1, KW compact copies: every lane an output)
//   backward:  backward_gemm.hpp (im2col dW, dcol GEMM + col2im dx: any geometry),
//              backward_flat.hpp (stride 1: dz layouts, chunks of samples), dw_flat.hpp (flat
//              and shifted weight gradients), dw_outer.hpp (outer-product weight gradient)
//   forward.hpp, backward.hpp   the entry points
//   shared.hpp         the regions and dense forms' prepared weights and held weight gradients,
//                      done once for the slices of a batch (Model's threads) or kept for a backward
#pragma once

#include "ctnn/kernels/conv2d/backward.hpp"
#include "ctnn/kernels/conv2d/forward.hpp"
#include "ctnn/kernels/conv2d/shared.hpp"
