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
  CHECK(header.rfind(R"({"__metadata__":{"format":"pt"},"0.weight":{"dtype":"F32","shape":[256,20],"data_offsets":[0,20480]})", 0) == 0);
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
      make_file(R"({"0.weight":{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]},"0.bias":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}})",
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
  expect_load_error(make_file(R"({"0.weight":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},"x":{"dtype":"F32","shape":[],"data_offsets":[24,28]}})",
                              float_bytes({1, 2, 3, 4, 5, 6, 7})),
                    {"expected shape [2, 3], found [6]", "missing tensor '0.bias'", "unexpected tensor 'x'"});
  // A real model: LeNet's file into the MLP.
  MLPModel mlp(1);
  const auto before = snapshot(mlp);
  CHECK_THROWS_WITH_AS(ctnn::load(mlp, ctnn_test::reference_path("st_lenet.safetensors")),
                       doctest::Contains("tensor '0.weight': expected shape [256, 20], found [6, 1, 5, 5]; "), io::format_error);
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
  expect_load_error(make_file(hdr(R"({"dtype":"I64","shape":[2,3],"data_offsets":[0,24]})"), d),
                    {"tensor '0.weight'", "unsupported dtype 'I64'"});
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
      make_file(R"({"0.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"0.bias":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
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
    const auto full = io::serialize_safetensors(entries, with_metadata ? std::map<std::string, std::string>{{"format", "pt"}}
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
    MESSAGE(std::string(with_metadata ? "with" : "without") << " metadata: " << errors << " flips rejected, " << loads
                                                 << " loaded the same values");
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
