// nn::Residual whose body halves H and W (a stride-2 conv) beside the identity shortcut: the two
// paths' outputs must have one shape.
// EXPECT: ERROR_residual_shape_mismatch<ctnn::layer<1(UL)?>,\s?ctnn::body_output<ctnn::Shape<4(UL)?,\s?3(UL)?,\s?3(UL)?>\s?>,\s?ctnn::shortcut_output<ctnn::Shape<4(UL)?,\s?6(UL)?,\s?6(UL)?>\s?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr std::size_t stride = 2;
#else
constexpr std::size_t stride = 1;
#endif
using Body = nn::Sequential<nn::LazyConv2d<{.out_channels = 4, .kernel_size = 3, .stride = stride, .padding = 1}>,
                            nn::LazyBatchNorm2d<>>;
using Net = nn::Sequential<nn::ReLU, nn::Residual<Body>, nn::ReLU>;

int main() {
  ctnn::Model<Net, ctnn::Shape<4, 6, 6>> net;
  (void)net;
}
