// safetensors save and load: round trips, files written by PyTorch (tools/gen_reference.py),
// dtype conversion, validation against the compile-time schema, malformed files (truncation,
// bit flips, huge sizes, duplicates, bad JSON...), atomic save. In every failing load the
// model must be byte-identical to what it was before.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctnn/ctnn.hpp>
#include <ctnn/io/safetensors.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "models.hpp"

namespace fs = std::filesystem;
namespace nn = ctnn::nn;
namespace io = ctnn::io;
using ctnn::Batch, ctnn::Model, ctnn::Shape, ctnn::Tensor;

namespace {

using MLP = nn::Sequential<nn::Linear<20, 256>, nn::ReLU, nn::Linear<256, 10>>;
using MLPModel = Model<MLP, Shape<20>>;
using ctnn_test::LeNetModel;
using Tiny = nn::Sequential<nn::Linear<3, 2>>;  // "0.weight" [2, 3], "0.bias" [2]
using TinyModel = Model<Tiny, Shape<3>>;

using ctnn_test::TempDir;

using Bytes = std::vector<std::byte>;

Bytes read_bytes(const fs::path& p) { return io::read_file(p); }
void write_bytes(const fs::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

/// Every parameter's bytes, in state_dict order: the model "exactly as it was".
template <class M>
Bytes snapshot(const M& net) {
  Bytes b;
  for (auto&& [name, t] : net.state_dict()) {
    const auto* p = reinterpret_cast<const std::byte*>(t.data());
    b.insert(b.end(), p, p + t.numel() * sizeof(float));
  }
  return b;
}

/// An 8-byte little-endian length, `header` as is, then `data`.
Bytes make_file(const std::string& header, const Bytes& data = {}) {
  Bytes b(8);
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) b[i] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
  for (char c : header) b.push_back(static_cast<std::byte>(c));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}
Bytes float_bytes(std::vector<float> v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

/// A valid file for TinyModel: weight 1..6, bias 7..8.
const std::string tiny_header =
    R"({"0.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"0.bias":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}})";
Bytes tiny_data() { return float_bytes({1, 2, 3, 4, 5, 6, 7, 8}); }

/// Loads `bytes` into `net` in memory; returns the error message ("" when it loaded).
template <class M>
std::string try_load(M& net, const Bytes& bytes, bool strict = true) {
  try {
    io::load_state_dict(net.state_dict(), io::parse_safetensors(bytes, "test.safetensors"), strict, "test.safetensors");
    return "";
  } catch (const io::format_error& e) {
    return e.what();
  }
}

/// The load must fail with a message holding every one of `parts`, and leave the model unchanged.
/// It goes through a real file and ctnn::load, so the file path must be named too.
void expect_load_error(const Bytes& bytes, std::initializer_list<std::string> parts, bool strict = true) {
  TempDir dir;
  const auto path = dir / "bad.safetensors";
  write_bytes(path, bytes);
  TinyModel net(7);
  const auto before = snapshot(net);
  std::string msg;
  try {
    ctnn::load(net, path, strict);
  } catch (const io::format_error& e) {
    msg = e.what();
  }
  INFO("message: " << msg);
  REQUIRE_MESSAGE(!msg.empty(), "the load did not fail");
  CHECK(msg.find(path.string()) != std::string::npos);
  for (const auto& p : parts) CHECK_MESSAGE(msg.find(p) != std::string::npos, "missing '" << p << "'");
  CHECK(snapshot(net) == before);
}

template <class M, class S>
void check_outputs_match(M& net, const std::string& ref_file, float rtol, float atol) {
  const auto ref = ctnn_test::load_reference(ctnn_test::reference_path(ref_file));
  const auto& x = ref.at("input");
  Batch<S> X(x.shape[0], x.values);
  const auto Y = net(X);
  REQUIRE(Y.sizes() == ref.at("output").shape);
  ctnn_test::check_close(Y.to_vector(), ref.at("output").values, rtol, atol, ref_file);
}

}  // namespace

// ---- Round trips and the layout -------------------------------------------------------------

TEST_CASE("safetensors: save and load an MLP round-trips every parameter bit for bit") {
  TempDir dir;
  const auto path = dir / "mlp.safetensors";
  MLPModel a(1), b(2);
  ctnn::save(a, path);
  CHECK(snapshot(a) != snapshot(b));
  ctnn::load(b, path);
  CHECK(snapshot(a) == snapshot(b));
  Batch<Shape<20>> X(3);
  ctnn::rand_(X);
  CHECK(a(X).to_vector() == b(X).to_vector());
  CHECK(dir.leftovers().empty());

  // The layout: 8-byte length, JSON starting with the metadata, data at a multiple of 8.
  const auto bytes = read_bytes(path);
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(std::to_integer<unsigned>(bytes[i])) << (8 * i);
  CHECK((8 + n) % 8 == 0);
  CHECK(bytes.size() == 8 + n + 4 * MLPModel::parameter_count);
  const std::string header(reinterpret_cast<const char*>(bytes.data() + 8), n);
  CHECK(header.rfind(
            R"({"__metadata__":{"format":"pt"},"0.weight":{"dtype":"F32","shape":[256,20],"data_offsets":[0,20480]})",
            0) == 0);
  const auto file = io::read_safetensors(path);
  CHECK(file.metadata == std::map<std::string, std::string>{{"format", "pt"}});
  CHECK(file.tensors.size() == 4);
}

TEST_CASE("safetensors: save and load LeNet round-trips and gives the same outputs") {
  TempDir dir;
  const auto path = dir / "lenet.safetensors";
  LeNetModel a(3), b(4);
  ctnn::save(a, path);
  ctnn::load(b, path);
  CHECK(snapshot(a) == snapshot(b));
  Batch<Shape<1, 28, 28>> X(2);
  ctnn::rand_(X);
  CHECK(a(X).to_vector() == b(X).to_vector());
  CHECK(fs::file_size(path) % 8 == 0);  // header padded to 8, data is whole floats... and 61706 * 4 % 8 == 0
  // Saving again over the file replaces it.
  LeNetModel c(5);
  ctnn::save(c, path);
  ctnn::load(b, path);
  CHECK(snapshot(b) == snapshot(c));
  CHECK(dir.leftovers().empty());
}

TEST_CASE("safetensors: a single layer saves and loads under its own names") {
  TempDir dir;
  MLPModel a(1), b(2);
  ctnn::save(a.get<2>(), dir / "layer.safetensors");
  CHECK(io::read_safetensors(dir / "layer.safetensors").tensors.count("weight") == 1);
  ctnn::load(b.get<2>(), dir / "layer.safetensors");
  CHECK(b.state_dict()["2.weight"].to_vector() == a.state_dict()["2.weight"].to_vector());
  CHECK(b.state_dict()["0.weight"].to_vector() != a.state_dict()["0.weight"].to_vector());
}

TEST_CASE("safetensors: save and load a single tensor, and a dict of tensors") {
  TempDir dir;
  Tensor<Shape<2, 3>> x{0, 1, 2, 3, 4, 5}, x2;
  ctnn::save(x, dir / "x-file");
  ctnn::load(x2, dir / "x-file");
  CHECK(x2.to_vector() == x.to_vector());
  CHECK(ctnn::load_tensors(dir / "x-file").count("tensor") == 1);

  Tensor<Shape<3, 2>> wrong;
  try {
    ctnn::load(wrong, dir / "x-file");
    FAIL("expected a shape error");
  } catch (const io::format_error& e) {
    CHECK(std::string(e.what()).find("expected shape [3, 2], found [2, 3]") != std::string::npos);
  }
  CHECK(wrong.to_vector() == std::vector<float>(6, 0.0f));

  Tensor<Shape<4>> y{7, 8, 9, 10};
  ctnn::save_tensors({{"x", x}, {"y", y}}, dir / "mydict");
  auto d = ctnn::load_tensors(dir / "mydict");
  REQUIRE(d.size() == 2);
  CHECK(d.at("x").shape == std::vector<std::size_t>{2, 3});
  CHECK(d.at("x").values == x.to_vector());
  CHECK(d.at("y").values == y.to_vector());
  CHECK(d.at("y").dtype == "F32");
  // Two tensors and none named "tensor": load(Tensor&) can't choose.
  CHECK_THROWS_WITH_AS(ctnn::load(x2, dir / "mydict"), doctest::Contains("no tensor named 'tensor'"), io::format_error);
  // A file with one tensor under another name loads into a tensor.
  ctnn::save_tensors({{"only", y}}, dir / "one");
  Tensor<Shape<4>> y2;
  ctnn::load(y2, dir / "one");
  CHECK(y2.to_vector() == y.to_vector());
  // load_tensors' result saves back; a state_dict saves as a dict too.
  ctnn::save_tensors(d, dir / "again");
  CHECK(ctnn::load_tensors(dir / "again").at("y").values == y.to_vector());
  TinyModel t(1);
  ctnn::save_tensors(t.state_dict(), dir / "sd", {});
  const auto f = io::read_safetensors(dir / "sd");
  CHECK(f.metadata.empty());
  CHECK(f.tensors.at("0.bias").values == t.state_dict()["0.bias"].to_vector());
  // A zero-dimensional tensor.
  Tensor<Shape<>> s{3.5f}, s2;
  ctnn::save(s, dir / "scalar");
  ctnn::load(s2, dir / "scalar");
  CHECK(s2.to_vector() == std::vector<float>{3.5f});
}

// ---- Files written by PyTorch --------------------------------------------------------------

TEST_CASE("safetensors: PyTorch's MLP state_dict loads and reproduces PyTorch's outputs") {
  MLPModel net(9);
  ctnn::load(net, ctnn_test::reference_path("st_mlp.safetensors"));
  check_outputs_match<MLPModel, Shape<20>>(net, "st_mlp.txt", 1e-5f, 1e-6f);
}

TEST_CASE("safetensors: PyTorch's LeNet state_dict loads and reproduces PyTorch's outputs") {
  LeNetModel net(9);
  ctnn::load(net, ctnn_test::reference_path("st_lenet.safetensors"));
  check_outputs_match<LeNetModel, Shape<1, 28, 28>>(net, "st_lenet.txt", 1e-4f, 1e-5f);
  // And it saves back to the same tensors.
  TempDir dir;
  ctnn::save(net, dir / "lenet.safetensors");
  const auto mine = ctnn::load_tensors(dir / "lenet.safetensors");
  const auto theirs = ctnn::load_tensors(ctnn_test::reference_path("st_lenet.safetensors"));
  REQUIRE(mine.size() == theirs.size());
  for (auto& [name, t] : theirs) {
    CHECK(mine.at(name).shape == t.shape);
    CHECK(mine.at(name).values == t.values);
  }
}

TEST_CASE("safetensors: F64 is rounded, F16 and BF16 widen exactly, as PyTorch converts them") {
  const auto ref = ctnn_test::load_reference(ctnn_test::reference_path("st_dtypes.txt"));
  const auto file = ctnn::load_tensors(ctnn_test::reference_path("st_dtypes.safetensors"));
  for (const char* name : {"f32", "f64", "f16", "bf16"}) {
    INFO(name);
    const auto& t = file.at(name);
    CHECK(t.shape == ref.at(name).shape);
    REQUIRE(t.values.size() == ref.at(name).values.size());
    CHECK(std::memcmp(t.values.data(), ref.at(name).values.data(), t.values.size() * 4) == 0);  // -0 too
  }
  CHECK(file.at("f16").dtype == "F16");
  CHECK(file.at("bf16").dtype == "BF16");

  // Into a model: BF16 weights and F64 bias.
  const std::string h =
      R"({"0.weight":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"0.bias":{"dtype":"F64","shape":[2],"data_offsets":[12,28]}})";
  Bytes data;
  for (std::uint16_t v : {0x3f80, 0x4000, 0xc040, 0x0000, 0x8000, 0x7f80}) {  // 1, 2, -3, 0, -0, inf
    data.push_back(static_cast<std::byte>(v & 0xff));
    data.push_back(static_cast<std::byte>(v >> 8));
  }
  for (double v : {0.1, -2.5}) {
    std::byte b[8];
    std::memcpy(b, &v, 8);
    data.insert(data.end(), b, b + 8);
  }
  TinyModel net;
  CHECK(try_load(net, make_file(h, data)) == "");
  CHECK(net.state_dict()["0.weight"].to_vector() == std::vector<float>{1, 2, -3, 0, -0.0f, INFINITY});
  CHECK(net.state_dict()["0.bias"].to_vector() == std::vector<float>{0.1f, -2.5f});
}

// ---- Validation against the model ------------------------------------------------------------

TEST_CASE("safetensors: a valid hand-written file loads; missing, misshaped and extra tensors are errors") {
  TinyModel net;
  CHECK(try_load(net, make_file(tiny_header, tiny_data())) == "");
  CHECK(net.state_dict()["0.bias"].to_vector() == std::vector<float>{7, 8});

  // Missing tensor.
  expect_load_error(make_file(R"({"0.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})",
                              float_bytes({1, 2, 3, 4, 5, 6})),
                    {"missing tensor '0.bias'", "expected shape [2]"});
  // Missing is an error with strict = false too (unlike torch, which ignores it there).
  expect_load_error(make_file(R"({"0.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})",
                              float_bytes({1, 2, 3, 4, 5, 6})),
                    {"missing tensor '0.bias'"}, false);
  // Wrong shape (same element count).
  expect_load_error(
      make_file(
          R"({"0.weight":{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]},"0.bias":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}})",
          tiny_data()),
      {"tensor '0.weight': expected shape [2, 3], found [3, 2]"});
  // Extra tensor: an error when strict, ignored otherwise.
  const auto extra = make_file(
      R"({"0.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"0.bias":{"dtype":"F32","shape":[2],"data_offsets":[24,32]},"1.weight":{"dtype":"F32","shape":[1],"data_offsets":[32,36]}})",
      float_bytes({1, 2, 3, 4, 5, 6, 7, 8, 9}));
  expect_load_error(extra, {"unexpected tensor '1.weight'", "shape [1]", "strict = false"});
  TempDir dir;
  write_bytes(dir / "extra.safetensors", extra);
  ctnn::load(net, dir / "extra.safetensors", /*strict=*/false);
  CHECK(net.state_dict()["0.weight"].to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
  // Every problem is listed at once.
  expect_load_error(
      make_file(
          R"({"0.weight":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},"x":{"dtype":"F32","shape":[],"data_offsets":[24,28]}})",
          float_bytes({1, 2, 3, 4, 5, 6, 7})),
      {"expected shape [2, 3], found [6]", "missing tensor '0.bias'", "unexpected tensor 'x'"});
  // A real model: LeNet's file into the MLP.
  MLPModel mlp(1);
  const auto before = snapshot(mlp);
  CHECK_THROWS_WITH_AS(ctnn::load(mlp, ctnn_test::reference_path("st_lenet.safetensors")),
                       doctest::Contains("tensor '0.weight': expected shape [256, 20], found [6, 1, 5, 5]; "),
                       io::format_error);
  CHECK(snapshot(mlp) == before);
}

// ---- Malformed files -----------------------------------------------------------------------

TEST_CASE("safetensors: bad header entries name the tensor and the problem") {
  const auto d = tiny_data();
  auto hdr = [](std::string w, std::string b = R"({"dtype":"F32","shape":[2],"data_offsets":[24,32]})") {
    return R"({"0.weight":)" + w + R"(,"0.bias":)" + b + "}";
  };
  expect_load_error(make_file(hdr(R"({"dtype":"F31","shape":[2,3],"data_offsets":[0,24]})"), d),
                    {"tensor '0.weight'", "unknown dtype 'F31'"});
  expect_load_error(make_file(hdr(R"({"dtype":"I32","shape":[2,3],"data_offsets":[0,24]})"), d),
                    {"tensor '0.weight'", "unsupported dtype 'I32'"});
  expect_load_error(make_file(hdr(R"({"dtype":7,"shape":[2,3],"data_offsets":[0,24]})"), d),
                    {"tensor '0.weight'", "dtype is a JSON number"});
  expect_load_error(make_file(hdr(R"({"dtype":"F32","shape":[2,-3],"data_offsets":[0,24]})"), d),
                    {"tensor '0.weight'", "not a non-negative integer"});
  expect_load_error(make_file(hdr(R"({"dtype":"F32","shape":[2,3.0],"data_offsets":[0,24]})"), d),
                    {"tensor '0.weight'", "not a non-negative integer"});
  expect_load_error(make_file(hdr(R"({"dtype":"F32","shape":"2x3","data_offsets":[0,24]})"), d),
                    {"tensor '0.weight'", "shape is a JSON string"});
  expect_load_error(make_file(hdr(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0]})"), d),
                    {"tensor '0.weight'", "expected [begin, end]"});
  expect_load_error(make_file(hdr(R"({"dtype":"F32","shape":[2,3]})"), d), {"tensor '0.weight'", "no data_offsets"});
  expect_load_error(make_file(hdr(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,24],"x":1})"), d),
                    {"tensor '0.weight'", "unexpected key 'x'"});
  expect_load_error(make_file(hdr(R"([1,2])"), d), {"tensor '0.weight'", "expected an object"});
  expect_load_error(make_file(hdr(R"({"dtype":"F32","shape":[2,3],"data_offsets":[24,0]})"), d),
                    {"tensor '0.weight'", "begin is after end"});
  // Size disagreeing with dtype x shape.
  expect_load_error(make_file(hdr(R"({"dtype":"F32","shape":[2,2],"data_offsets":[0,24]})"), d),
                    {"tensor '0.weight'", "hold 24 bytes, but dtype F32 and shape [2, 2] need 16"});
  expect_load_error(make_file(hdr(R"({"dtype":"F16","shape":[2,3],"data_offsets":[0,24]})"), d),
                    {"tensor '0.weight'", "need 12"});
  // Metadata must be strings.
  expect_load_error(make_file(R"({"__metadata__":{"format":1},)" + tiny_header.substr(1), d),
                    {"__metadata__ entry 'format'", "expected a string"});
  expect_load_error(make_file(R"({"__metadata__":"pt"})"), {"__metadata__ is a JSON string"});
}

TEST_CASE("safetensors: overlapping, non-contiguous, out-of-range offsets and trailing bytes") {
  const auto d = tiny_data();
  auto file = [&](std::string w, std::string b, Bytes data) {
    return make_file(R"({"0.weight":{"dtype":"F32","shape":[2,3],"data_offsets":)" + w +
                         R"(},"0.bias":{"dtype":"F32","shape":[2],"data_offsets":)" + b + "}}",
                     data);
  };
  // Overlap: the bias inside the weight.
  expect_load_error(file("[0,24]", "[16,24]", float_bytes({1, 2, 3, 4, 5, 6})),
                    {"tensor '0.bias'", "overlap tensor '0.weight' [0, 24]"});
  // A gap between the tensors.
  expect_load_error(file("[0,24]", "[28,36]", float_bytes({1, 2, 3, 4, 5, 6, 0, 7, 8})),
                    {"tensor '0.bias'", "leave bytes [24, 28)", "contiguous"});
  // A gap at the start: the data does not begin at offset 0.
  expect_load_error(file("[4,28]", "[28,36]", float_bytes({0, 1, 2, 3, 4, 5, 6, 7, 8})),
                    {"tensor '0.weight'", "leave bytes [0, 4)"});
  // Trailing bytes after the last tensor.
  auto more = d;
  more.push_back(std::byte{0});
  expect_load_error(file("[0,24]", "[24,32]", more), {"1 trailing bytes after the last tensor"});
  // Out of range: the data section is shorter than the offsets say (a truncated file).
  expect_load_error(file("[0,24]", "[24,32]", float_bytes({1, 2, 3, 4, 5, 6, 7})),
                    {"tensor '0.bias'", "out of range: the data section is 28 bytes"});
  // Huge offsets and huge shapes.
  expect_load_error(file("[0,24]", "[24,18446744073709551615]", d), {"tensor '0.bias'", "out of range"});
  expect_load_error(
      make_file(R"({"0.weight":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,24]}})", d),
      {"tensor '0.weight'", "overflows"});
  expect_load_error(make_file(R"({"0.weight":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,24]}})", d),
                    {"tensor '0.weight'", "need 4000000000000"});
  // Numbers too large for 64 bits are not integers for JSON.
  expect_load_error(file("[0,24]", "[24,1e30]", d), {"tensor '0.bias'", "expected [begin, end]"});
}

TEST_CASE("safetensors: header length, JSON syntax, duplicates, nesting, encoding") {
  // Too short for the length field.
  expect_load_error({}, {"0 bytes, too short"});
  expect_load_error(Bytes(7), {"7 bytes, too short"});
  // Huge declared header lengths.
  auto huge = make_file(tiny_header, tiny_data());
  huge[7] = std::byte{0x80};  // 2^63 + n
  expect_load_error(huge, {"exceeds the limit of 100000000 bytes"});
  auto big = make_file(tiny_header, tiny_data());
  big[0] = std::byte{0x01};
  big[1] = std::byte{0xe1};
  big[2] = std::byte{0xf5};
  big[3] = std::byte{0x05};  // 100000001
  expect_load_error(big, {"header length 100000001 exceeds the limit"});
  auto longer = make_file(tiny_header, tiny_data());
  longer[2] = std::byte{0x10};  // a megabyte more than the file holds
  expect_load_error(longer, {"bytes follow the length field"});
  expect_load_error(make_file(""), {"too short for a JSON object"});
  // Bad JSON.
  expect_load_error(make_file(R"({"0.weight":)"), {"not valid JSON"});
  expect_load_error(make_file(R"({"0.weight":{}} x)"), {"not valid JSON"});
  expect_load_error(make_file(tiny_header + std::string("\0 x", 3), tiny_data()), {"NUL byte at offset 124"});
  expect_load_error(make_file("[1,2,3]"), {"the header is a JSON array, expected an object"});
  expect_load_error(make_file("null    "), {"the header is a JSON null"});
  expect_load_error(make_file("{\"a\xff\":1}"), {"not valid JSON"});  // not UTF-8
  // Duplicate names (JSON allows them; a parser would silently keep one).
  expect_load_error(
      make_file(
          R"({"0.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"0.bias":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
          float_bytes({1, 2, 3, 4})),
      {"tensor '0.bias' appears twice"});
  expect_load_error(make_file(R"({"0.bias":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})",
                              float_bytes({1, 2})),
                    {"tensor '0.bias': duplicate key 'dtype'"});
  // Deeper nesting than the format has.
  expect_load_error(make_file(R"({"0.bias":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", float_bytes({1, 2})),
                    {"nests deeper", "'0.bias'"});
  expect_load_error(make_file(std::string(10000, '[') + std::string(10000, ']')), {"nests deeper"});
  // Control characters in a name are escaped in the message.
  expect_load_error(make_file("{\"a\\u0001b\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}"),
                    {"tensor 'a\\x01b': unknown dtype 'X'"});
}

TEST_CASE("safetensors: truncation at every byte of a small file is a clear error and changes nothing") {
  TempDir dir;
  TinyModel src(1);
  ctnn::save(src, dir / "tiny.safetensors");
  const auto full = read_bytes(dir / "tiny.safetensors");
  TinyModel net(2);
  const auto before = snapshot(net);
  for (std::size_t k = 0; k < full.size(); ++k) {
    const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(k));
    const auto msg = try_load(net, cut);
    INFO("truncated to " << k << " bytes of " << full.size());
    CHECK(msg.find("test.safetensors") != std::string::npos);
    CHECK(snapshot(net) == before);
  }
  CHECK(try_load(net, full) == "");
  CHECK(snapshot(net) == snapshot(src));
}

TEST_CASE("safetensors: a bit flip anywhere in the header is an error or loads the same values") {
  TinyModel src(1);
  const auto entries = io::entries_of(src.state_dict());
  for (bool with_metadata : {false, true}) {
    const auto full =
        io::serialize_safetensors(entries, with_metadata ? std::map<std::string, std::string>{{"format", "pt"}}
                                                         : std::map<std::string, std::string>{});
    std::uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= std::uint64_t(std::to_integer<unsigned>(full[i])) << (8 * i);
    std::size_t errors = 0, loads = 0;
    for (std::size_t i = 0; i < 8 + n; ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        auto b = full;
        b[i] ^= static_cast<std::byte>(1 << bit);
        TinyModel net(2);
        const auto before = snapshot(net);
        const auto msg = try_load(net, b);
        INFO("byte " << i << " bit " << bit << ": " << msg);
        if (msg.empty()) {
          ++loads;
          CHECK(snapshot(net) == snapshot(src));  // only a harmless flip (in a metadata string) may load
        } else {
          ++errors;
          CHECK(msg.find("test.safetensors") != std::string::npos);
          CHECK(snapshot(net) == before);
        }
      }
    }
    if (!with_metadata) CHECK(loads == 0);
    CHECK(errors > 0);
    MESSAGE(std::string(with_metadata ? "with" : "without")
            << " metadata: " << errors << " flips rejected, " << loads << " loaded the same values");
  }
}

// ---- Files and atomic save ---------------------------------------------------------------------

TEST_CASE("safetensors: a missing file, a directory, a missing directory are file errors") {
  TempDir dir;
  TinyModel net(1);
  const auto before = snapshot(net);
  CHECK_THROWS_WITH_AS(ctnn::load(net, dir / "nope.safetensors"), doctest::Contains("cannot open for reading"),
                       io::file_error);
  CHECK_THROWS_WITH_AS(ctnn::load(net, dir.path), doctest::Contains("not a regular file"), io::file_error);
  CHECK(snapshot(net) == before);
  CHECK_THROWS_WITH_AS(ctnn::save(net, dir / "no" / "such" / "dir.safetensors"),
                       doctest::Contains("cannot create a temporary file"), io::file_error);
}

TEST_CASE("safetensors: save is atomic: a failing save keeps the previous file and leaves no temporary") {
  TempDir dir;
  MLPModel a(1), b(2);
  // The target is a directory: the rename fails after the temporary file was fully written.
  fs::create_directory(dir / "target");
  std::ofstream(dir / "target" / "keep") << "x";
  CHECK_THROWS_WITH_AS(ctnn::save(a, dir / "target"), doctest::Contains("cannot rename"), io::file_error);
  CHECK(fs::is_directory(dir / "target"));
  CHECK(fs::exists(dir / "target" / "keep"));
  CHECK(dir.leftovers().empty());

  // A write that fails half way (the file size limit, as a full disk would): the old file survives.
  const auto path = dir / "mlp.safetensors";
  ctnn::save(a, path);
  const auto old_bytes = read_bytes(path);
  rlimit old_limit{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  auto* old_handler = signal(SIGXFSZ, SIG_IGN);
  rlimit small = old_limit;
  small.rlim_cur = 4096;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string msg;
  try {
    ctnn::save(b, path);
  } catch (const io::file_error& e) {
    msg = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, old_handler);
  INFO(msg);
  CHECK(msg.find("write failed after 4096 of") != std::string::npos);
  CHECK(msg.find(path.string()) != std::string::npos);
  CHECK(read_bytes(path) == old_bytes);
  CHECK(dir.leftovers().empty());
  MLPModel c(3);
  ctnn::load(c, path);
  CHECK(snapshot(c) == snapshot(a));
}

TEST_CASE("safetensors: saving rejects duplicate or reserved names") {
  TempDir dir;
  Tensor<Shape<2>> x{1, 2};
  ctnn::StateDict sd;
  sd.add("a", x);
  sd.add("a", x);
  CHECK_THROWS_WITH_AS(ctnn::save_tensors(sd, dir / "dup"), doctest::Contains("'a': the name is used twice"),
                       io::format_error);
  CHECK_THROWS_WITH_AS(ctnn::save_tensors({{"__metadata__", x}}, dir / "meta"),
                       doctest::Contains("the name is reserved"), io::format_error);
  CHECK(!fs::exists(dir / "dup"));
  CHECK(dir.leftovers().empty());
}

// ---- The JSON reader and writer (ctnn/io/json.hpp) -------------------------------------------

namespace {

namespace json = ctnn::io::json;

/// The parse_error that parsing `text` throws (REQUIREs that it throws one).
json::parse_error json_error(std::string_view text, std::size_t max_depth = 8) {
  try {
    (void)json::parse(text, max_depth);
  } catch (const json::parse_error& e) {
    return e;
  }
  FAIL("parsed without error: " << text);
  throw;  // unreachable: FAIL throws
}

/// The string that the JSON text `quoted` (a string literal) holds.
std::string json_string(std::string_view quoted) {
  const auto v = json::parse(quoted, 1);
  REQUIRE(v.as_string() != nullptr);
  return *v.as_string();
}

bool syntax_error(std::string_view text) {
  try {
    (void)json::parse(text, 8);
    return false;
  } catch (const json::parse_error& e) {
    return e.kind == json::parse_error::Kind::syntax;
  }
}

}  // namespace

TEST_CASE("json: every escape, and \\u escapes with surrogate pairs, decode to UTF-8") {
  CHECK(json_string(R"("plain")") == "plain");
  CHECK(json_string(R"("\"\\\/\b\f\n\r\t")") == "\"\\/\b\f\n\r\t");
  CHECK(json_string(R"("\u0041\u00e9\u20AC")") == "A\xc3\xa9\xe2\x82\xac");  // A, e-acute, euro sign
  CHECK(json_string(R"("a\u0000b")") == std::string("a\0b", 3));           // an escaped NUL is allowed
  CHECK(json_string(R"("\ud83d\ude00")") == "\xf0\x9f\x98\x80");              // U+1F600 from a pair
  CHECK(json_string(R"("\uDBFF\uDFFF")") == "\xf4\x8f\xbf\xbf");              // U+10FFFF, the last
  CHECK(json_string(R"("\ud800\udc00")") == "\xf0\x90\x80\x80");              // U+10000, the first
  // Raw UTF-8 passes through.
  CHECK(json_string("\"\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\"") == "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80");

  // Lone or mismatched surrogates have no UTF-8 form.
  for (const char* bad :
       {R"("\ud83d")", R"("\ud83dx")", R"("\ud83d\u0041")", R"("\ude00")", R"("\ud83d\ud83d")", R"("\ud83d\n")"}) {
    INFO(bad);
    const auto e = json_error(bad);
    CHECK(e.kind == json::parse_error::Kind::syntax);
    CHECK(std::string(e.what()).find("surrogate") != std::string::npos);
    CHECK(e.offset == 1);  // the escape's backslash
  }
  // Unknown escapes, short \u escapes, an unterminated string, raw control characters.
  for (const char* bad : {R"("\x41")", R"("\u12")", R"("\u12g4")", R"("\U0041")", R"("\')", R"("abc)", R"("abc\)",
                          "\"a\nb\"", "\"a\tb\"", "\"a\x01\"", "\"a\x1f\""}) {
    INFO(bad);
    CHECK(syntax_error(bad));
  }
  CHECK(std::string(json_error("\"a\x01\"").what()) ==
        "expected a string character, found byte 0x01 (control characters must be escaped) at offset 2");
  CHECK(std::string(json_error(R"("abc)").what()) ==
        "expected '\"' to end the string that starts at offset 0, found the end of the text at offset 4");
}

TEST_CASE("json: text that is not UTF-8 is rejected where the bad byte is") {
  for (const char* bad : {"\"\xff\"", "\"a\x80\"", "\"\xc0\x80\"", "\"\xc1\xbf\"",  // lone continuation, overlong
                          "\"\xe0\x9f\xbf\"", "\"\xed\xa0\x80\"",  // overlong, an encoded surrogate
                          "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"",  // above U+10FFFF
                          "\"\xe2\x82\"", "\"\xf0\x9f\x98\""}) {  // truncated sequences
    INFO(bad);
    const auto e = json_error(bad);
    CHECK(e.kind == json::parse_error::Kind::syntax);
    CHECK(std::string(e.what()).find("invalid UTF-8") != std::string::npos);
  }
  CHECK(json_error("\"ab\xff\"").offset == 3);
  CHECK(std::string(json_error("\"ab\xff\"").what()) == "invalid UTF-8: byte 0xff in a string at offset 3");
  CHECK(json_error("\xef\xbb\xbf{}").offset == 0);  // no byte order mark
  // The checker and the writer, directly.
  CHECK(json::invalid_utf8_at("ok \xc3\xa9\xf0\x9f\x98\x80") == std::string_view::npos);
  CHECK(json::invalid_utf8_at("ok\xed\xbf\xbf") == 2);
  CHECK(json::invalid_utf8_at(std::string_view("a\0\xc3", 3)) == 2);
}

TEST_CASE("json: whitespace is space, tab, LF and CR, anywhere between tokens") {
  const auto v = json::parse(" \t\r\n{ \"a\" :\n[ 1 ,\t2 ]\r, \"b\"\t:{ } } \n ", 8);
  CHECK(v.dump() == R"({"a":[1,2],"b":{}})");
  for (const char* bad : {"\f{}", "{}\v", "{\xc2\xa0}", "[1,\x0b 2]"}) {  // form feed, vertical tab, NBSP
    INFO(bad);
    CHECK(syntax_error(bad));
  }
}

TEST_CASE("json: objects, arrays, literals; empty ones; what may not follow what") {
  CHECK(json::parse("{}", 1).as_object()->empty());
  CHECK(json::parse("[ ]", 1).as_array()->empty());
  CHECK(json::parse(R"({"":{}})", 2).as_object()->at(0).key.empty());
  CHECK(std::string(json::parse("true", 0).type_name()) == "boolean");
  CHECK(std::string(json::parse("false", 0).type_name()) == "boolean");
  CHECK(std::string(json::parse("null", 0).type_name()) == "null");
  CHECK(std::string(json::parse(R"("")", 0).type_name()) == "string");
  const auto o = json::parse(R"({"z":1,"a":[true,null,"s"]})", 2);
  REQUIRE(o.as_object() != nullptr);
  CHECK(o.as_object()->at(0).key == "z");  // document order, not sorted
  CHECK(o.find("a")->as_array()->size() == 3);
  CHECK(o.find("b") == nullptr);
  CHECK(o.find("z")->find("z") == nullptr);  // not an object
  CHECK(o.find("z")->as_string() == nullptr);
  for (const char* bad : {"",
                          "   ",
                          "{",
                          "[",
                          "[1,]",
                          R"({"a":1,})",
                          R"({"a" 1})",
                          R"({"a":})",
                          "{1:2}",
                          "{'a':1}",
                          R"({"a":1 "b":2})",
                          "[1 2]",
                          "tru",
                          "nul",
                          "True",
                          "{}{}",
                          "{} x",
                          "[]]",
                          "/*c*/{}",
                          "{}//"}) {
    INFO(bad);
    CHECK(syntax_error(bad));
  }
  CHECK(std::string(json_error("").what()) ==
        "expected a value (object, array, string, number, true, false or null), found the end of the text at offset 0");
  CHECK(std::string(json_error(R"({"a":1} x)").what()) ==
        "expected the end of the text after the top-level value, found 'x' at offset 8");
  CHECK(std::string(json_error(std::string("{}\0", 3)).what()) ==
        "expected the end of the text after the top-level value, found a NUL byte at offset 2");
  CHECK(std::string(json_error(R"({"a" 1})").what()) == "expected ':' after an object key, found '1' at offset 5");
  CHECK(std::string(json_error("[1 2]").what()) == "expected ']' or ',' after an array element, found '2' at offset 3");
}

TEST_CASE("json: numbers are kept exactly: 64-bit non-negative integers as such, others as text") {
  CHECK(json::parse("0", 0).as_uint() == 0u);
  CHECK(json::parse("20480", 0).as_uint() == 20480u);
  CHECK(json::parse("18446744073709551615", 0).as_uint() == std::numeric_limits<std::uint64_t>::max());
  // Numbers, but not unsigned 64-bit integers: dump gives them back as written.
  for (const char* n : {"18446744073709551616", "99999999999999999999999", "-0", "-1", "1.5", "3.0", "1e3", "1E+3",
                        "2e-1", "-0.0e-0", "1e400"}) {
    INFO(n);
    const auto v = json::parse(n, 0);
    CHECK(std::string(v.type_name()) == "number");
    CHECK(!v.as_uint());
    CHECK(v.dump() == n);
  }
  for (const char* bad :
       {"01", "-01", "00", "1.", ".5", "+1", "-", "1e", "1e+", "0x10", "NaN", "Infinity", "-Infinity", "1.e3", "--1"}) {
    INFO(bad);
    CHECK(syntax_error(bad));
  }
}

TEST_CASE("json: nesting deeper than the limit is refused where it starts, with the keys around it") {
  CHECK(json::parse("[[[]]]", 3).dump() == "[[[]]]");
  auto e = json_error("[[[[]]]]", 3);
  CHECK(e.kind == json::parse_error::Kind::too_deep);
  CHECK(e.offset == 3);
  CHECK(e.path.empty());
  e = json_error(R"({"a":{"b":[[1]]}})", 3);
  CHECK(e.kind == json::parse_error::Kind::too_deep);
  CHECK(e.offset == 11);
  CHECK(e.path == std::vector<std::string>{"a", "b"});
  CHECK(json_error("{}", 0).kind == json::parse_error::Kind::too_deep);
  // Far too deep: refused at the limit, long before the stack could overflow.
  e = json_error(std::string(1'000'000, '[') + std::string(1'000'000, ']'), 64);
  CHECK(e.kind == json::parse_error::Kind::too_deep);
  CHECK(e.offset == 64);
}

TEST_CASE("json: a key twice in one object is refused, even when spelled differently") {
  auto e = json_error(R"({"a":1,"a":2})");
  CHECK(e.kind == json::parse_error::Kind::duplicate_key);
  CHECK(e.offset == 7);
  CHECK(e.path == std::vector<std::string>{"a"});
  e = json_error(R"({"x":{"k":1,"y":[],"\u006b":2}})");  // \u006b is "k"
  CHECK(e.kind == json::parse_error::Kind::duplicate_key);
  CHECK(e.path == std::vector<std::string>{"x", "k"});
  // The same key in different objects is fine.
  CHECK(json::parse(R"({"x":{"a":1},"y":{"a":1},"a":[{"a":1},{"a":2}]})", 3).as_object()->size() == 3);
}

TEST_CASE("json: the writer escapes what it must, and dump parses back to the same value") {
  std::string out;
  json::append_quoted(out, std::string("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f\0\xc3\xa9", 17));
  CHECK(out == "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\\u0000\xc3\xa9\"");
  CHECK(json_string(out) == std::string("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f\0\xc3\xa9", 17));
  const std::string text =
      R"({"n\u00e9":[0,18446744073709551615,-1,2.5e3,true,false,null],"\ud83d\ude00":{"\"":"\n"}})";
  const auto v = json::parse(text, 3);
  CHECK(v.dump() ==
        "{\"n\xc3\xa9\":[0,18446744073709551615,-1,2.5e3,true,false,null],\"\xf0\x9f\x98\x80\":{\"\\\"\":\"\\n\"}}");
  CHECK(json::parse(v.dump(), 3).dump() == v.dump());
}

// ---- The JSON header of a safetensors file ----------------------------------------------------

TEST_CASE("safetensors: names with quotes, backslashes, control characters and any Unicode round-trip") {
  TempDir dir;
  Tensor<Shape<2>> x{1, 2};
  const std::vector<std::string> names{"\xc3\xbc",  // u-umlaut
                                       "\xe6\x97\xa5\xe6\x9c\xac",  // two CJK characters
                                       "\xf0\x9f\x98\x80.weight",  // U+1F600, outside the BMP
                                       "quote\"back\\slash/",  // JSON's own characters
                                       "tab\tnewline\nbell\x07",  // control characters
                                       std::string("nul\0inside", 10),  // even NUL, as \u0000
                                       ""};  // the empty name
  std::map<std::string, ctnn::TensorRef> dict;
  for (const auto& n : names) dict.emplace(n, x);
  const std::map<std::string, std::string> meta{{"format", "pt"},
                                                {"note \xe2\x82\xac\n", "v\"al\\ue\t\xf0\x9f\x98\x80"}};
  ctnn::save_tensors(dict, dir / "names", meta);
  const auto file = io::read_safetensors(dir / "names");
  CHECK(file.metadata == meta);
  REQUIRE(file.tensors.size() == names.size());
  for (const auto& n : names) {
    INFO(n);
    REQUIRE(file.tensors.count(n) == 1);
    CHECK(file.tensors.at(n).values == x.to_vector());
  }
  // The header escapes what JSON requires and nothing else (UTF-8 stays as is).
  const auto bytes = read_bytes(dir / "names");
  const std::string header(reinterpret_cast<const char*>(bytes.data() + 8), bytes.size() - 8 - names.size() * 8);
  CHECK(header.find(R"("quote\"back\\slash/")") != std::string::npos);
  CHECK(header.find(R"("tab\tnewline\nbell\u0007")") != std::string::npos);
  CHECK(header.find(R"("nul\u0000inside")") != std::string::npos);
  CHECK(header.find("\"\xf0\x9f\x98\x80.weight\"") != std::string::npos);
}

TEST_CASE("safetensors: saving a name or metadata that is not UTF-8 is refused, and writes nothing") {
  TempDir dir;
  Tensor<Shape<2>> x{1, 2};
  CHECK_THROWS_WITH_AS(ctnn::save_tensors({{"bad\xff", x}}, dir / "a"),
                       doctest::Contains("tensor 'bad\\xff': the name is not valid UTF-8 (at byte 3)"),
                       io::format_error);
  CHECK_THROWS_WITH_AS(ctnn::save_tensors({{"\xed\xa0\x80", x}}, dir / "a"),  // an encoded surrogate
                       doctest::Contains("not valid UTF-8 (at byte 0)"), io::format_error);
  CHECK_THROWS_WITH_AS(ctnn::save_tensors({{"x", x}}, dir / "a", {{"k\xc3", "v"}}),
                       doctest::Contains("__metadata__ key 'k\\xc3' is not valid UTF-8"), io::format_error);
  CHECK_THROWS_WITH_AS(ctnn::save_tensors({{"x", x}}, dir / "a", {{"k", "\x80"}}),
                       doctest::Contains("__metadata__ value of 'k' is not valid UTF-8"), io::format_error);
  CHECK(!fs::exists(dir / "a"));
  CHECK(dir.leftovers().empty());
}

TEST_CASE("safetensors: the header's JSON may use escapes, any whitespace, and any key order") {
  TinyModel net;
  // Names spelled with \u escapes, keys in another order, pretty-printed with tabs and CRLF.
  const std::string pretty =
      "{\r\n\t\"0.w\\u0065ight\" : {\"data_offsets\": [0, 24], \"shape\": [2, 3], \"dtype\": \"F32\"},\r\n"
      "\t\"__metadata__\" : {\"k\\ud83d\\ude00\": "
      "\"\\/\"},\n\t\"0.bias\":{\"shape\":[2],\"dtype\":\"F32\",\"data_offsets\":[24,32]}\n}  ";
  CHECK(try_load(net, make_file(pretty, tiny_data())) == "");
  CHECK(net.state_dict()["0.weight"].to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
  const auto file = io::parse_safetensors(make_file(pretty, tiny_data()));
  CHECK(file.metadata.at("k\xf0\x9f\x98\x80") == "/");
  // An empty header object is a file of no tensors.
  CHECK(io::parse_safetensors(make_file("{}      ")).tensors.empty());
  expect_load_error(make_file("{}"), {"missing tensor '0.weight'", "missing tensor '0.bias'"});
}

TEST_CASE("safetensors: JSON errors in the header say what and at which offset") {
  const auto d = tiny_data();
  expect_load_error(make_file(R"({"0.weight":{}} x)"),
                    {"the header is not valid JSON: expected the end of the text after the top-level value, found 'x' "
                     "at offset 16 of the header"});
  expect_load_error(make_file(R"({"0.weight":{"dtype":"F32",}})"),
                    {"expected a string key, found '}' at offset 27 of the header"});
  expect_load_error(make_file("{\"0.weight\xc0\":1}"),
                    {"invalid UTF-8: byte 0xc0 in a string at offset 10 of the header"});
  expect_load_error(make_file("\xef\xbb\xbf" + tiny_header, d),
                    {"found byte 0xef at offset 0 of the header"});  // no BOM
  expect_load_error(make_file(R"({"0.w\ud800eight":1})"),
                    {"high surrogate not followed by a low surrogate at offset 5 of the header"});
  // Duplicates found through escapes, and in the metadata, name where the second one is.
  expect_load_error(
      make_file(R"({"0.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"0.bi\u0061s":{}})", float_bytes({1, 2})),
      {"tensor '0.bias' appears twice in the header (duplicate names; again at offset 59 of the header)"});
  expect_load_error(make_file(R"({"__metadata__":{"a":"x","a":"y"}})"),
                    {"__metadata__ has the key 'a' twice (again at offset 25 of the header)"});
  expect_load_error(
      make_file(R"({"0.bias":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", float_bytes({1, 2})),
      {"nests deeper than the format allows (object -> entry -> shape array) at offset 34 of the header, in '0.bias'"});
  // Numbers beyond 64 bits are numbers, but not sizes or offsets.
  expect_load_error(make_file(R"({"0.weight":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,24]}})",
                              d),
                    {"shape [18446744073709551616] has an entry that is not a non-negative integer"});
  expect_load_error(make_file(R"({"0.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,18446744073709551616]}})",
                              d),
                    {"data_offsets [0,18446744073709551616], expected [begin, end]"});
  expect_load_error(make_file(R"({"0.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,18446744073709551615]}})",
                              d),
                    {"data_offsets [0, 18446744073709551615] are out of range"});
}
