// An empty nn::Sequential<> nested at net[1].
// EXPECT: ERROR_empty_sequential<ctnn::layer<1(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Linear<4, 4>, nn::Sequential<>>;
#else
using Net = nn::Sequential<nn::Linear<4, 4>, nn::Sequential<nn::ReLU>>;
#endif

int main() {
  ctnn::Model<Net, ctnn::Shape<4>> net;
  (void)net;
}
