// nn::Concat of a branch that flattens beside one that does not: the ranks differ.
// EXPECT: ERROR_concat_shape_mismatch<ctnn::layer<0(UL)?>,\s?ctnn::branch<1(UL)?>,\s?ctnn::branch_output<ctnn::Shape<48(UL)?>\s?>,\s?ctnn::first_branch_output<ctnn::Shape<3(UL)?,\s?4(UL)?,\s?4(UL)?>\s?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Second = nn::Flatten;
#else
using Second = nn::ReLU;
#endif
using Net = nn::Sequential<nn::Concat<nn::Identity, Second>>;

int main() {
  ctnn::Model<Net, ctnn::Shape<3, 4, 4>> net;
  (void)net;
}
