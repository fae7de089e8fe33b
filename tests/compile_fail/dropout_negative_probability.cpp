// nn::Dropout<-0.1f>: p must be in [0, 1).
// EXPECT: ERROR_dropout_probability_out_of_range<ctnn::layer<0(UL)?>,\s?ctnn::probability<-
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr float p = -0.1f;
#else
constexpr float p = 0.0f;
#endif
using Net = nn::Sequential<nn::Dropout<p>, nn::Linear<4, 2>>;

int main() {
  ctnn::Model<Net, ctnn::Shape<4>> net;
  (void)net;
}
