// A model input with an extent of 0: Shape<4, 0>.
// EXPECT: ERROR_zero_sized_dimension<ctnn::model_input,\s?ctnn::dim<1(UL)?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

using Net = nn::Sequential<nn::LazyLinear<8>, nn::ReLU, nn::Linear<8, 1>>;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using In = ctnn::Shape<4, 0>;
#else
using In = ctnn::Shape<4, 2>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
