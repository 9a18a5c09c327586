// Import of openai/guided-diffusion model files (torch.save of
// UNetModel.state_dict(): the released *.pt models, and train_util's
// model<step>.pt / ema_<rate>_<step>.pt) into Scorch's ADM U-Net, whose
// parameter names are the reference's.
//
//   Config c = load_config("configs/vp/lsun_bedroom256_adm.yaml");
//   ScoreNet net = make_score_net(c);
//   import_guided_diffusion_model("lsun_bedroom.pt", *net);
//
// A guided-diffusion model predicts the noise eps of x_i = sqrt(abar_i) x_0 +
// sqrt(1 - abar_i) eps at integer time steps i, which is Scorch's discrete
// VP convention (time_cond = t (N - 1), score = -out / sqrt(1 - abar_i)); its
// linear schedule, betas = linspace(1e-4, 0.02, 1000), is the VP SDE with
// model.beta_min 0.1, model.beta_max 20, model.num_scales 1000. The cosine
// schedule has no Scorch SDE and cannot be imported faithfully.
#pragma once

#include <torch/torch.h>

#include <string>

namespace scorch {

class ADMImpl;

struct GuidedDiffusionImport {
  bool learned_sigma = false;  // the file's output had 2C channels; the variance half was dropped
  int64_t num_classes = 0;     // label_emb rows in the file (Scorch adds the null class)
  int64_t tensors = 0;         // tensors read
};

// Reads `path` and copies every tensor into `net` by name: label_emb's rows
// into the first rows of Scorch's (the null class keeps its initial value),
// and of a learn_sigma output convolution (2C channels) the first C, the
// eps prediction. Throws scorch::Error naming the file and the key when a
// tensor has no counterpart, a shape differs (with the config key that sets
// it), or a parameter of `net` is missing from the file; `net` is then
// unchanged.
GuidedDiffusionImport import_guided_diffusion_model(const std::string& path, ADMImpl& net);

}  // namespace scorch
