// nn::Concat<> with no branches (torch.cat of an empty list is an error too).
// EXPECT: ERROR_empty_concat<ctnn::layer<1(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::ReLU, nn::Concat<>>;
#else
using Net = nn::Sequential<nn::ReLU, nn::Concat<nn::Identity>>;
#endif

int main() {
  ctnn::Model<Net, ctnn::Shape<3, 4, 4>> net;
  (void)net;
}
