// nn::Sequential<> as the whole network.
// EXPECT: ERROR_empty_sequential<ctnn::layer<\s?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<>;
#else
using Net = nn::Sequential<nn::Linear<4, 4>>;
#endif

int main() {
  ctnn::Model<Net, ctnn::Shape<4>> net;
  (void)net;
}
