// The one place ctnn includes xsimd.
//
// g++ 12 reports false "'__Y' may be used uninitialized" warnings inside the AVX-512
// intrinsics (those built on _mm512_undefined_ps; GCC bug 105593) once they are inlined into
// our kernels. The warning is attributed to the intrinsic header's lines, so silencing it
// around the include silences exactly those and nothing in ctnn's own code.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <xsimd/xsimd.hpp>
#pragma GCC diagnostic pop
#else
#include <xsimd/xsimd.hpp>
#endif

// Register tiles are arrays indexed by loops over compile-time bounds: unroll them fully so the
// accumulators live in registers (g++ -O2 does not unroll on its own, and spills them). Up to 32
// iterations: the outer weight gradient's tile has one accumulator per tap (25 for a 5x5 kernel).
#define CTNN_UNROLL _Pragma("GCC unroll 32")
