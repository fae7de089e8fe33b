// nn::Concat whose branch 1 halves H and W: every extent but the channels must agree.
// EXPECT: ERROR_concat_shape_mismatch<ctnn::layer<0(UL)?>,\s?ctnn::branch<1(UL)?>,\s?ctnn::branch_output<ctnn::Shape<3(UL)?,\s?4(UL)?,\s?4(UL)?>\s?>,\s?ctnn::first_branch_output<ctnn::Shape<2(UL)?,\s?8(UL)?,\s?8(UL)?>\s?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr std::size_t stride = 2;
#else
constexpr std::size_t stride = 1;
#endif
using Net = nn::Sequential<nn::Concat<nn::LazyConv2d<{.out_channels = 2, .kernel_size = 1}>,
                                      nn::LazyConv2d<{.out_channels = 3, .kernel_size = 1, .stride = stride}>>,
                           nn::ReLU>;

int main() {
  ctnn::Model<Net, ctnn::Shape<3, 8, 8>> net;
  (void)net;
}
