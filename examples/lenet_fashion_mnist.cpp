// The main job: D2L's LeNet (section 7.6) trained on Fashion-MNIST; --model trains chapter 8's
// BN-LeNet (8.5) or ResNet-18 (8.6) instead.
//
//   lenet_fashion_mnist [--model lenet|bn-lenet|resnet18] [--epochs N] [--batch-size N] [--lr F]
//                       [--data DIR] [--threads N] [--seed 0] [--modern] [--quiet] [--save FILE]
//                       [--log FILE] [--distributed]
//   mpirun -np 2 lenet_fashion_mnist --distributed [options]
//
// --threads sets ctnn::set_num_threads: each batch is split over that many threads (default: all
// cores). --epochs, --batch-size and --threads take positive integers (--threads at most 1024),
// --lr a positive number, --seed a non-negative integer; anything else (for example "abc", "3x",
// "-1", a number too large for its type) is a usage error naming the option and the value given,
// as are unknown options: the program prints "error: ..." and exits with status 2.
//
// D2L's setup: sigmoid activations, average pooling, Xavier-uniform weights (biases keep
// PyTorch's default), SGD with lr 0.9, batch 256, 10 epochs. D2L publishes loss ~0.47, train
// accuracy ~0.82, test accuracy 0.74-0.78. --modern swaps in ReLU and max pooling (use a
// smaller --lr, e.g. 0.1). The data is Debian's dataset-fashion-mnist unless --data (or the
// CTNN_FASHION_MNIST environment variable) says otherwise.
//
// --model bn-lenet (D2L 8.5: lr 1.0) and --model resnet18 (D2L 8.6 at 28 x 28: lr 0.05) take the
// book's learning rate unless --lr is given (batch 256 and 10 epochs, as LeNet), the same
// Xavier-uniform init, and are tested in evaluation mode (BatchNorm's running statistics), as
// d2l's evaluate_accuracy does after net.eval().
//
// --log FILE writes the epoch lines' numbers as CSV, for tools/plot_training.py (D2L's plot of
// train loss, train accuracy and test accuracy against the epoch):
//   epoch,loss,train_acc,test_acc,seconds,examples_per_sec
// The file is rewritten whole after every epoch (FILE.tmp, flushed, fsync'ed, then renamed over
// FILE), so it always holds a complete CSV of the epochs done so far, even if training stops. It
// is first written (the header alone) before the data is loaded: a path that cannot be written
// is an error naming the file before training starts (exit status 1). With --distributed rank 0
// writes it.
//
// --distributed (built with MPI, -DCTNN_WITH_MPI: meson does it when it finds MPI) trains data-
// parallel, as PyTorch's DistributedDataParallel with a DistributedSampler (docs/distributed.md):
// every rank holds the model (rank 0's weights, broadcast), loads --batch-size / world_size
// samples of each global batch (an error unless it divides evenly), and averages the gradients
// over the ranks before each step. Each rank uses 1 thread unless --threads says otherwise.
// Rank 0 prints the epoch lines (loss and train accuracy over every rank's samples), evaluates
// the test set and saves the weights.
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctnn/ctnn.hpp>
#include <ctnn/models/d2l.hpp>
#ifdef CTNN_WITH_MPI
#include <ctnn/distributed.hpp>
#endif
#include <iostream>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <unistd.h>
#include <utility>

namespace nn = ctnn::nn;
namespace optim = ctnn::optim;
using ctnn::Model, ctnn::Shape;

// D2L's LeNet and its ReLU / max-pool variant, with their PyTorch code: include/ctnn/models/d2l.hpp.
using ctnn::models::LeNet, ctnn::models::ModernLeNet;
using Image = ctnn::models::FashionMNISTImage;
static_assert(Model<LeNet, Image>::parameter_count == 61'706);

namespace {

/// The networks --model trains.
enum class Arch { lenet, bn_lenet, resnet18 };

struct Options {
  Arch model = Arch::lenet;
  int epochs = 10;
  std::size_t batch_size = 256;
  std::optional<float> lr;  // D2L's for the model when not given: lenet 0.9, bn-lenet 1.0, resnet18 0.05
  std::optional<std::string> data;
  int threads = 0;  // 0: ctnn's default
  std::uint64_t seed = 0;
  bool modern = false;
  bool quiet = false;
  std::optional<std::string> save;  // --save FILE: the trained weights, as safetensors
  std::optional<std::string> log;   // --log FILE: the per-epoch numbers as CSV
  bool distributed = false;         // --distributed: one rank of an MPI job (mpirun -np W)
};

/// Where this process stands in the job: rank 0 of 1 unless --distributed.
struct Ranks {
  int rank = 0, world = 1;
};

/// A mistake on the command line: main prints "error: <what>" and exits with status 2 (the
/// shell's usage-error convention), apart from run-time failures, which exit with 1.
struct usage_error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// The value of a numeric option: the whole text must be a number (no sign for unsigned types,
/// no trailing junk such as "3x", no leading blanks) within [min, max]; otherwise a usage_error
/// that names the option, says what it expects and quotes what was given.
template <class T>
T number(const std::string& option, const std::string& text, T min, T max, const std::string& expects) {
  T v{};
  const char* const end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  bool ok = ec == std::errc{} && ptr == end && !text.empty() && v >= min && v <= max;
  if constexpr (std::is_floating_point_v<T>) ok = ok && std::isfinite(v);
  if (!ok) {
    const char* why = ec == std::errc::result_out_of_range ? " (out of range)" : "";
    throw usage_error(option + " expects " + expects + ", got \"" + text + "\"" + why);
  }
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  constexpr int max_threads = 1024;  // a pool of more threads than this is a typo, not a machine
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--model") {
      const std::string m = value();
      if (m == "lenet") o.model = Arch::lenet;
      else if (m == "bn-lenet") o.model = Arch::bn_lenet;
      else if (m == "resnet18") o.model = Arch::resnet18;
      else throw usage_error("--model expects lenet, bn-lenet or resnet18, got \"" + m + "\"");
    } else if (a == "--epochs") {
      o.epochs = number(a, value(), 1, std::numeric_limits<int>::max(), "a positive integer");
    } else if (a == "--batch-size") {
      o.batch_size = number<std::size_t>(a, value(), 1, std::numeric_limits<std::size_t>::max(), "a positive integer");
    } else if (a == "--lr") {
      o.lr =
          number(a, value(), std::numeric_limits<float>::min(), std::numeric_limits<float>::max(), "a positive number");
    } else if (a == "--data") {
      o.data = value();
    } else if (a == "--threads") {
      o.threads = number(a, value(), 1, max_threads, "an integer from 1 to " + std::to_string(max_threads));
    } else if (a == "--seed") {
      o.seed =
          number<std::uint64_t>(a, value(), 0, std::numeric_limits<std::uint64_t>::max(), "a non-negative integer");
    } else if (a == "--modern") {
      o.modern = true;
    } else if (a == "--quiet") {
      o.quiet = true;
    } else if (a == "--save") {
      o.save = value();
    } else if (a == "--log") {
      o.log = value();
      if (o.log->empty()) throw usage_error("--log expects a file name, got \"\"");
    } else if (a == "--distributed") {
      o.distributed = true;
    } else if (a == "--help" || a == "-h") {
      std::cout << "usage: lenet_fashion_mnist [--model lenet|bn-lenet|resnet18] [--epochs N] [--batch-size N]\n"
                   "                           [--lr F] [--data DIR] [--threads N] [--seed N] [--modern] [--quiet]\n"
                   "                           [--save FILE] [--log FILE] [--distributed]\n"
                   "       mpirun -np W lenet_fashion_mnist --distributed [options]   (data-parallel over W ranks)\n"
                   "  --log FILE  the epochs as CSV (epoch,loss,train_acc,test_acc,seconds,examples_per_sec),\n"
                   "              rewritten after every epoch; plot it with tools/plot_training.py\n";
      std::exit(0);
    } else {
      throw usage_error("unknown option " + a + " (try --help)");
    }
  }
  return o;
}

/// Number of samples whose largest logit is the label.
template <std::size_t C>
std::size_t correct(ctnn::ConstBatchView<Shape<C>> logits, std::span<const std::int64_t> labels) {
  std::size_t hits = 0;
  for (std::size_t n = 0; n < logits.batch_size(); ++n) {
    std::size_t best = 0;
    for (std::size_t c = 1; c < C; ++c)
      if (logits(n, c) > logits(n, best)) best = c;
    hits += static_cast<std::int64_t>(best) == labels[n];
  }
  return hits;
}

void progress(int epoch, int epochs, std::size_t done, std::size_t total, double loss) {
  constexpr int width = 30;
  const int filled = static_cast<int>(width * done / total);
  std::fprintf(stderr, "\repoch %d/%d [%.*s%*s] %zu/%zu loss %.4f", epoch, epochs, filled,
               "==============================", width - filled, "", done, total, loss);
  std::fflush(stderr);
}

/// values summed over the ranks, in place (nothing to do on one).
void sum_over_ranks([[maybe_unused]] std::span<double> values, [[maybe_unused]] const Ranks& ranks) {
#ifdef CTNN_WITH_MPI
  if (ranks.world > 1) ctnn::dist::all_reduce(values);
#endif
}

/// --log FILE: the numbers of the epoch lines as CSV. The whole file is rewritten after every
/// epoch: into FILE.tmp, flushed and fsync'ed, then renamed over FILE, so FILE is always a
/// complete CSV of the epochs so far. The constructor writes the header alone, so a path that
/// cannot be written fails before training, with an error that names the file.
class EpochLog {
 public:
  explicit EpochLog(std::string path) : path_(std::move(path)) { write(); }

  void add(int epoch, double loss, double train_acc, double test_acc, double seconds, double examples_per_sec) {
    char line[160];
    std::snprintf(line, sizeof line, "%d,%.6f,%.6f,%.6f,%.3f,%.1f\n", epoch, loss, train_acc, test_acc, seconds,
                  examples_per_sec);
    text_ += line;
    write();
  }

 private:
  void write() const {
    const std::string tmp = path_ + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) fail(tmp, "cannot create", errno);
    bool written =
        std::fwrite(text_.data(), 1, text_.size(), f) == text_.size() && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
    int err = errno;
    if (std::fclose(f) != 0 && written) {
      written = false;
      err = errno;
    }
    if (!written) fail(tmp, "cannot write", err);
    if (std::rename(tmp.c_str(), path_.c_str()) != 0) fail(tmp, "cannot replace it with", errno);
  }

  /// Removes the temporary file and throws, e.g.
  /// --log "/no/such/dir/x.csv": cannot create "/no/such/dir/x.csv.tmp": No such file or directory
  [[noreturn]] void fail(const std::string& tmp, const char* what, int err) const {
    std::remove(tmp.c_str());
    throw std::runtime_error("--log \"" + path_ + "\": " + what + " \"" + tmp + "\": " + std::strerror(err));
  }

  std::string path_;
  std::string text_ = "epoch,loss,train_acc,test_acc,seconds,examples_per_sec\n";
};

/// --lr, or D2L's learning rate for the model.
float learning_rate(const Options& o) {
  if (o.lr) return *o.lr;
  switch (o.model) {
    case Arch::bn_lenet: return 1.0f;
    case Arch::resnet18: return 0.05f;
    default: return 0.9f;
  }
}

template <class Net>
int train(const Options& opt, const Ranks& ranks, const ctnn::io::Dataset<Image>& train_set,
          const ctnn::io::Dataset<Image>& test_set, EpochLog* log) {
  const bool lead = ranks.rank == 0;  // rank 0 prints, tests, logs and saves
  ctnn::Generator gen(opt.seed);
  Model<Net, Image> net(gen);
  // d2l.init_cnn: Xavier-uniform weights for every Linear and Conv2d (biases keep the default).
  net.apply([&](auto& layer) {
    if constexpr (nn::is_linear<decltype(layer)> || nn::is_conv2d<decltype(layer)>)
      nn::init::xavier_uniform_(layer.weight, 1.0f, gen);
  });
#ifdef CTNN_WITH_MPI
  if (ranks.world > 1) ctnn::dist::broadcast_parameters(net, 0);  // DDP: every rank starts from rank 0's
#endif
  if (!opt.quiet && lead) std::cout << net.summary();

  nn::CrossEntropyLoss criterion;
  optim::SGD sgd{.lr = learning_rate(opt)};
  // This rank's part of every global batch of --batch-size (all of it on one process).
  const auto world = static_cast<std::size_t>(ranks.world);
  ctnn::io::DataLoader<Image> train_loader(train_set, opt.batch_size / world, /*shuffle=*/true, opt.seed,
                                           /*drop_last=*/false,
                                           {.num_replicas = world, .rank = std::size_t(ranks.rank)});
  ctnn::io::DataLoader<Image> test_loader(test_set, 1024);

  double train_acc = 0, test_acc = 0;
  for (int epoch = 1; epoch <= opt.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    double loss_sum = 0;
    std::size_t seen = 0, hits = 0, batch = 0;
    for (auto [X, y] : train_loader) {
      auto logits = net.forward(X);
      hits += correct(logits, y);
      net.zero_grad();
      loss_sum += double(net.backward(criterion, y)) * X.batch_size();
#ifdef CTNN_WITH_MPI
      if (ranks.world > 1) ctnn::dist::allreduce_gradients(net);  // DDP: .grad averaged over the ranks
#endif
      sgd.step(net);
      seen += X.batch_size();
      if (!opt.quiet && lead && (++batch % 10 == 0 || seen == train_loader.num_samples()))
        progress(epoch, opt.epochs, seen * world, train_loader.num_samples() * world, loss_sum / seen);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double totals[3] = {loss_sum, double(hits), double(seen)};  // over every rank's samples
    sum_over_ranks(totals, ranks);
    loss_sum = totals[0];
    hits = static_cast<std::size_t>(totals[1]);
    seen = static_cast<std::size_t>(totals[2]);
    if (!lead) continue;
    std::size_t test_hits = 0;
    net.eval();  // BatchNorm: the running statistics (Dropout: none)
    for (auto [X, y] : test_loader) test_hits += correct(net.forward(X), y);
    net.train();
    train_acc = double(hits) / seen;
    test_acc = double(test_hits) / test_set.size();
    if (!opt.quiet) std::fprintf(stderr, "\r%*s\r", 80, "");
    std::printf("epoch %2d  loss %.3f  train acc %.3f  test acc %.3f  %.2f s  %.0f examples/sec\n", epoch,
                loss_sum / seen, train_acc, test_acc, seconds, seen / seconds);
    std::fflush(stdout);
    if (log) log->add(epoch, loss_sum / seen, train_acc, test_acc, seconds, seen / seconds);
  }
  if (opt.save && lead) {
    // torch.save(net.state_dict(), path), as safetensors; reload into a fresh model and re-test.
    ctnn::save(net, *opt.save);
    Model<Net, Image> fresh(opt.seed + 1);
    ctnn::load(fresh, *opt.save);
    fresh.eval();
    std::size_t reload_hits = 0;
    for (auto [X, y] : test_loader) reload_hits += correct(fresh.forward(X), y);
    const double reload_acc = double(reload_hits) / test_set.size();
    std::printf("saved the trained weights to %s; reloaded into a fresh model: test acc %.3f (%s)\n", opt.save->c_str(),
                reload_acc, reload_acc == test_acc ? "the same" : "DIFFERENT");
    if (reload_acc != test_acc) return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Ranks ranks;
#ifdef CTNN_WITH_MPI
  std::optional<ctnn::dist::Context> mpi;  // outside the try: a failing rank ends the job below
#endif
  try {
    const Options opt = parse(argc, argv);
    if (opt.distributed) {
#ifdef CTNN_WITH_MPI
      mpi.emplace(argc, argv);
      ranks = {ctnn::dist::rank(), ctnn::dist::world_size()};
      if (opt.batch_size % static_cast<std::size_t>(ranks.world) != 0)
        throw usage_error("--batch-size " + std::to_string(opt.batch_size) + " does not split evenly over " +
                          std::to_string(ranks.world) + " ranks (--distributed: each rank takes batch-size / ranks)");
      if (opt.threads == 0) ctnn::set_num_threads(1);
#else
      throw usage_error(
          "--distributed: this build has no MPI (install libopenmpi-dev and reconfigure; meson then "
          "builds the trainer with MPI)");
#endif
    }
    if (opt.threads > 0) ctnn::set_num_threads(opt.threads);
    const bool lead = ranks.rank == 0;
    std::optional<EpochLog> log;  // --log: rank 0's, written (the header) now, before training
    if (opt.log && lead) log.emplace(*opt.log);
    EpochLog* const log_ptr = log ? &*log : nullptr;
    const auto dir = opt.data ? std::filesystem::path(*opt.data) : ctnn::io::fashion_mnist_dir();
    const auto train_set = ctnn::io::load_fashion_mnist(dir, /*train=*/true);
    const auto test_set = ctnn::io::load_fashion_mnist(dir, /*train=*/false);
    if (lead) {
      std::printf("Fashion-MNIST from %s: %zu training and %zu test images\n", dir.c_str(), train_set.size(),
                  test_set.size());
      const char* name = opt.model == Arch::bn_lenet   ? "BN-LeNet (D2L 8.5)"
                         : opt.model == Arch::resnet18 ? "ResNet-18 (D2L 8.6)"
                         : opt.modern                  ? "LeNet (ReLU + max pooling)"
                                                       : "LeNet (D2L: sigmoid + average pooling)";
      std::printf("%s, batch %zu, lr %g, %d epochs, %d thread%s", name, opt.batch_size, double(learning_rate(opt)),
                  opt.epochs, ctnn::get_num_threads(), ctnn::get_num_threads() == 1 ? "" : "s");
      if (opt.distributed)
        std::printf(" per rank, %d rank%s of batch %zu", ranks.world, ranks.world == 1 ? "" : "s",
                    opt.batch_size / static_cast<std::size_t>(ranks.world));
      std::printf("\n");
    }
    switch (opt.model) {
      case Arch::bn_lenet: return train<ctnn::models::BNLeNet>(opt, ranks, train_set, test_set, log_ptr);
      case Arch::resnet18: return train<ctnn::models::ResNet18>(opt, ranks, train_set, test_set, log_ptr);
      default:
        return opt.modern ? train<ModernLeNet>(opt, ranks, train_set, test_set, log_ptr)
                          : train<LeNet>(opt, ranks, train_set, test_set, log_ptr);
    }
  } catch (const usage_error& e) {
    if (ranks.rank == 0) std::fprintf(stderr, "error: %s\n", e.what());  // every rank sees it: all exit 2
    return 2;
  } catch (const std::exception& e) {
#ifdef CTNN_WITH_MPI
    if (ranks.world > 1) ctnn::dist::abort(std::string("lenet_fashion_mnist: ") + e.what());  // ends every rank
#endif
    std::fprintf(stderr, "lenet_fashion_mnist: %s\n", e.what());
    return 1;
  }
}
