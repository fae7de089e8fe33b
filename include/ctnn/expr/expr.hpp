// Tensor expressions with compile-time derivatives (see core.hpp for how a node is built and
// docs/custom_blocks.md for the user's view).
#pragma once

#include "ctnn/expr/core.hpp"
#include "ctnn/expr/matmul.hpp"
#include "ctnn/expr/ops.hpp"
#include "ctnn/expr/reduce.hpp"
