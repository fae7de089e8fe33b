// A Residual inside the body of another Residual: the error names the inner one's path
// (layer 0, its body (0), the Sequential's layer 2).
// EXPECT: ERROR_residual_shape_mismatch<ctnn::layer<0(UL)?,\s?0(UL)?,\s?2(UL)?>,\s?ctnn::body_output<ctnn::Shape<5(UL)?,\s?4(UL)?,\s?4(UL)?>\s?>,\s?ctnn::shortcut_output<ctnn::Shape<3(UL)?,\s?4(UL)?,\s?4(UL)?>\s?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr std::size_t channels = 5;
#else
constexpr std::size_t channels = 3;
#endif
using Inner = nn::Residual<nn::LazyConv2d<{.out_channels = channels, .kernel_size = 1}>>;
using Net = nn::Sequential<
    nn::Residual<nn::Sequential<nn::LazyConv2d<{.out_channels = 3, .kernel_size = 1}>, nn::ReLU, Inner>>>;

int main() {
  ctnn::Model<Net, ctnn::Shape<3, 4, 4>> net;
  (void)net;
}
