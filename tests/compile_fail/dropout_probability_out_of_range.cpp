// nn::Dropout<1.0f>: p must be in [0, 1) (p = 1 would scale by 1/0).
// EXPECT: ERROR_dropout_probability_out_of_range<ctnn::layer<2(UL)?>,\s?ctnn::probability<1
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr float p = 1.0f;
#else
constexpr float p = 0.5f;
#endif
using Net = nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::Dropout<p>, nn::Linear<8, 2>>;

int main() {
  ctnn::Model<Net, ctnn::Shape<4>> net;
  (void)net;
}
