// Import of checkpoints written by yang-song/score_sde_pytorch (run_lib.py's
// checkpoint.pth / checkpoint_<k>.pth: torch.save of {'model': DataParallel
// state_dict, 'ema': {'decay', 'num_updates', 'shadow_params'}, 'optimizer',
// 'step'}) into Scorch's DDPM and NCSN++/DDPM++ networks, whose parameter
// names equal the reference's after dropping the "module." prefix.
//
//   ScoreNet net = make_score_net(config);  // the checkpoint's architecture
//   auto ckpt = import_score_sde_checkpoint("checkpoint_26.pth", *net, ImportWeights::kEma);
//   // net now holds the EMA weights; ckpt.model / ckpt.ema hold both sets.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>

namespace scorch {

// A score_sde checkpoint in Scorch's names.
struct ScoreSdeCheckpoint {
  // Every parameter and buffer of the network (the reference's model state
  // dict, including the frozen Fourier W and the float64 "sigmas" buffer).
  std::map<std::string, torch::Tensor> model;
  // EMA shadow of every trainable parameter. The reference stores a list in
  // the order of model.parameters() with requires_grad; this names them.
  std::map<std::string, torch::Tensor> ema;
  double ema_decay = 0.0;       // the EMA rate it was trained with
  int64_t ema_num_updates = 0;  // its warm-up counter
  int64_t step = 0;             // training step
};

// Reads `path` and maps it onto `model`'s parameter and buffer names. Every
// key of the checkpoint's 'model' must name a parameter or buffer of `model`
// with the same shape, every parameter and buffer of `model` must be covered,
// and 'ema.shadow_params' must hold one tensor of the right shape per
// trainable parameter; otherwise throws scorch::Error naming the file and the
// key. A missing 'ema' leaves `ema` empty. `model` is not modified.
ScoreSdeCheckpoint read_score_sde_checkpoint(const std::string& path,
                                             const torch::nn::Module& model);

// Copies tensors into the parameters and buffers of the same names (no grad;
// values are cast to each destination's dtype and device). Names not in
// `tensors` are left as they are. REQUIRES: names and shapes checked, e.g.
// by read_score_sde_checkpoint.
void load_named_tensors(torch::nn::Module& model,
                        const std::map<std::string, torch::Tensor>& tensors);

// Which weights import_score_sde_checkpoint puts into the network.
enum class ImportWeights {
  kModel,  // the raw training weights
  kEma,    // EMA shadow weights (what score_sde samples and evaluates with);
           // buffers and frozen parameters come from the model state
};

// read_score_sde_checkpoint + load_named_tensors. Throws like the former;
// kEma without an 'ema' entry is an error.
ScoreSdeCheckpoint import_score_sde_checkpoint(const std::string& path, torch::nn::Module& model,
                                               ImportWeights weights = ImportWeights::kModel);

}  // namespace scorch
