// nn::BatchNorm2d on a [120] sample (after a Linear): it takes [N, C, H, W].
// EXPECT: ERROR_input_rank_not_3<ctnn::layer<1(UL)?>,\s?ctnn::Shape<120(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Linear<16, 120>, nn::BatchNorm2d<{.num_features = 120}>>;
#else
using Net = nn::Sequential<nn::Linear<16, 120>, nn::BatchNorm1d<{.num_features = 120}>>;
#endif

int main() {
  ctnn::Model<Net, ctnn::Shape<16>> net;
  (void)net;
}
