// Training and evaluation mode — PyTorch's `module.training`, train() and eval().
//
// A layer whose forward differs between the two (BatchNorm, Dropout) or a user's block that reads
// the mode derives from nn::TrainingMode; nn::Block does. Model::train() / eval() set the mode of
// every such layer in the network (nn::set_training walks it with apply); a Model starts in
// training mode, as a torch module does.
#pragma once

namespace ctnn::nn {

/// The `training` flag of a layer (true until eval()).
struct TrainingMode {
  /// PyTorch's module.training.
  bool training() const { return training_; }
  /// module.train(mode=True)
  void train(bool on = true) { training_ = on; }
  /// module.eval()
  void eval() { training_ = false; }

 private:
  bool training_ = true;
};

/// Sets the mode of `layer` and of every layer inside it that has one.
template <class L>
void set_training(L& layer, bool on) {
  layer.apply([on](auto& l) {
    if constexpr (requires { l.train(on); }) l.train(on);
  });
}

}  // namespace ctnn::nn
