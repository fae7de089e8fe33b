// libFuzzer target for the safetensors loader: any bytes either load into a small model or throw
// ctnn::io::format_error, and a failed load leaves the model unchanged. The same bytes, read as
// JSON text, either throw json::parse_error at an offset inside them, or parse to a value whose
// dump() parses back to the same dump(). Build with clang
// (-fsanitize=fuzzer,address; tests/fuzz/meson.build) and run, e.g.:
//   build/clang/tests/fuzz/fuzz_safetensors -max_total_time=60 CORPUS_COPY/ tests/fuzz/corpus/
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ctnn/ctnn.hpp>
#include <ctnn/io/safetensors.hpp>

namespace {
namespace nn = ctnn::nn;
// "0.weight" [2, 3], "0.bias" [2], "2.weight" [1, 2] (no bias): the seed corpus is written for it.
using Net = nn::Sequential<nn::Linear<3, 2>, nn::ReLU, nn::Linear<2, 1, false>>;
using M = ctnn::Model<Net, ctnn::Shape<3>>;

std::vector<float> values(const M& m) {
  std::vector<float> v;
  for (auto&& [name, t] : m.state_dict()) v.insert(v.end(), t.begin(), t.end());
  return v;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static M net(1);
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  const auto before = values(net);
  for (bool strict : {true, false}) {
    try {
      ctnn::io::load_state_dict(net.state_dict(), ctnn::io::parse_safetensors(bytes, "fuzz"), strict, "fuzz");
    } catch (const ctnn::io::format_error&) {
      const auto after = values(net);
      if (std::memcmp(before.data(), after.data(), before.size() * sizeof(float)) != 0) std::abort();
    }
  }
  // The generic reader too (it accepts any tensor names).
  try {
    (void)ctnn::io::parse_safetensors(bytes, "fuzz").tensors.size();
  } catch (const ctnn::io::format_error&) {
  }
  // The JSON reader on its own, with more nesting than a header may have.
  namespace json = ctnn::io::json;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string dumped;
  try {
    dumped = json::parse(text, 16).dump();
  } catch (const json::parse_error& e) {
    if (e.offset > size) std::abort();
    return 0;
  }
  if (json::invalid_utf8_at(dumped) != std::string_view::npos) std::abort();
  if (json::parse(dumped, 16).dump() != dumped) std::abort();
  return 0;
}
