// A hand-written bound layer without output_shape (the next layer binds to it): binding checks
// the interface (nn::bound_layer) and names the first member the layer lacks, once; the layers
// after it check nothing.
// EXPECT: ERROR_bound_layer_missing_member<ctnn::layer<1(UL)?>,\s?ctnn::member_output_shape,\s?Passthrough<ctnn::Shape<8(UL)?>\s?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

// The bound layer: its output is its input (a view, as Flatten).
template <class In>
struct Passthrough : nn::ParameterFree<Passthrough<In>> {
  using input_shape = In;
#ifndef CTNN_EXPECT_COMPILE_FAIL
  using output_shape = In;
#endif
  static constexpr std::size_t activation_floats = 0, scratch_floats = 0;
  static constexpr std::ptrdiff_t output_offset = -1;
  const float* forward(const float* x, std::size_t, float*, float*) const { return x; }
  void backward(const float*, float*, std::size_t, const float*, float*, float*) {}
  void print(std::ostream& os, int) const { os << "Passthrough()"; }
  static std::string type_name() { return "Passthrough"; }
};
// The spec.
struct PassthroughSpec {
  template <class In, class Path>
  using bind = Passthrough<In>;
};

using Net = nn::Sequential<nn::Linear<4, 8>, PassthroughSpec, nn::Linear<8, 1>>;

int main() {
  ctnn::Model<Net, ctnn::Shape<4>> net;
  (void)net;
}
