// A Linear on a rank-0 sample (Shape<>): it has no last dimension to act on.
// EXPECT: ERROR_input_rank_too_small<ctnn::layer<0(UL)?>,\s?ctnn::Shape<\s?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

using Net = nn::Sequential<nn::LazyLinear<3>>;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using In = ctnn::Shape<>;
#else
using In = ctnn::Shape<1>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
