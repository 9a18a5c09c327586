// Where the commands that read a model (sample, likelihood, ood, eval,
// score-plot) get their config and model, as a library call:
// --checkpoint FILE (its embedded config), or the newest checkpoint of
// --workdir W (the workdir's config.yaml), or a checkpoint of
// yang-song/score_sde_pytorch (--score-sde-checkpoint FILE with --config
// naming its architecture), or an openai/guided-diffusion model file
// (--guided-diffusion-checkpoint FILE with an adm --config), or an
// NVlabs/edm2 Precond state dict saved from Python (--checkpoint FILE, told
// apart by its unet.* keys, with an edm2 --config naming its preset), or, for
// model.name=analytic, no checkpoint at all
// (--config). EMA weights by default. The flags themselves are registered by
// cli/commands.h (add_model_source_options).
//
//   ModelSourceArgs a;  a.workdir = "runs/ve";
//   LoadedModel m = load_model(a);   // m.config, m.sde, m.net (eval mode, on m.device)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "nn/score_net.h"
#include "sde/sde.h"

namespace scorch {

struct ModelSourceArgs {
  std::string workdir, checkpoint, config;
  std::string score_sde_checkpoint;  // a score_sde_pytorch checkpoint.pth to import
  std::string guided_diffusion_checkpoint;  // a guided-diffusion model .pt to import
  std::vector<std::string> overrides;
  std::string weights = "ema";  // ema (the first EMA rate), model, or an EMA name ("0.999")
};

struct LoadedModel {
  Config config;
  std::shared_ptr<Sde> sde;
  ScoreNet net;             // in eval mode, on `device`
  torch::Device device = torch::kCPU;
  std::string description;  // "checkpoint X (step N, EMA 0.9999)" or "analytic ..."
  int64_t step = 0;
};

// Throws scorch::Error naming the flag, file or key at fault.
LoadedModel load_model(const ModelSourceArgs& args);

}  // namespace scorch
