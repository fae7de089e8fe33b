// A block returns X.sum() (a 0-d tensor over the whole batch): outputs must keep the batch.
// EXPECT: ERROR_block_result_not_batched<ctnn::Shape<>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

template <class In>
struct Total : nn::Block<Total<In>> {
#ifdef CTNN_EXPECT_COMPILE_FAIL
  auto forward(auto X) { return X.sum(); }
#else
  auto forward(auto X) { return sum<1>(X); }
#endif
};

int main() {
  ctnn::Model<nn::block<Total>, ctnn::Shape<4>> net;
  (void)net;
}
