// Config and model for inference commands (see model_source.h).
#include "jobs/model_source.h"

#include <filesystem>

#include "jobs/config_source.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/context.h"
#include "nn/analytic.h"
#include "nn/adm.h"
#include "nn/edm2.h"
#include "nn/import_edm2.h"
#include "nn/import_guided_diffusion.h"
#include "nn/import_score_sde.h"
#include "nn/model_factory.h"
#include "train/checkpoint.h"
#include "train/ema.h"

namespace scorch {
namespace fs = std::filesystem;

namespace {

// --score-sde-checkpoint: the architecture comes from --config (score_sde
// checkpoints hold weights only); its EMA or raw weights are imported.
LoadedModel load_imported(const ModelSourceArgs& a) {
  SCORCH_CHECK(a.checkpoint.empty() && a.workdir.empty(),
               "--score-sde-checkpoint excludes --checkpoint and --workdir");
  SCORCH_CHECK(!a.config.empty(), "--score-sde-checkpoint '", a.score_sde_checkpoint,
               "' needs --config naming its architecture (e.g. configs/vp/cifar10_ddpmpp_continuous"
               ".yaml, with the overrides it was trained with)");
  SCORCH_CHECK(fs::is_regular_file(a.score_sde_checkpoint), "--score-sde-checkpoint '",
               a.score_sde_checkpoint, "' is not a file");
  SCORCH_CHECK(a.weights == "ema" || a.weights == "model", "--weights '", a.weights,
               "' with --score-sde-checkpoint: use ema or model (score_sde keeps one EMA)");
  LoadedModel out;
  out.config = load_config(a.config, a.overrides);
  const auto& c = out.config;
  SCORCH_CHECK(c.model.name == ModelName::kDdpm || c.model.name == ModelName::kNcsnpp,
               "--score-sde-checkpoint imports DDPM and NCSN++/DDPM++ networks; --config has "
               "model.name '", c.model.name, "'");
  SCORCH_CHECK(c.model.precond == Precond::kNone, "--score-sde-checkpoint holds a score_sde "
               "network, which is not preconditioned; --config sets model.precond=",
               c.model.precond, ": set model.precond=none");
  out.device = make_single_process_context(c).device;
  out.sde = make_sde(c);
  out.net = make_score_net(c);
  const auto ckpt = import_score_sde_checkpoint(
      a.score_sde_checkpoint, *out.net,
      a.weights == "ema" ? ImportWeights::kEma : ImportWeights::kModel);
  out.step = ckpt.step;
  out.description = "score_sde checkpoint '" + a.score_sde_checkpoint + "' (step " +
                    std::to_string(ckpt.step) +
                    (a.weights == "ema" ? ", EMA " + std::to_string(ckpt.ema_decay) : ", raw model weights") + ")";
  out.net->to(out.device);
  out.net->eval();
  return out;
}

// --guided-diffusion-checkpoint: an ADM model file; the architecture and the
// (discrete VP, linear) schedule come from --config.
LoadedModel load_guided_diffusion(const ModelSourceArgs& a) {
  const std::string& file = a.guided_diffusion_checkpoint;
  SCORCH_CHECK(a.checkpoint.empty() && a.workdir.empty() && a.score_sde_checkpoint.empty(),
               "--guided-diffusion-checkpoint excludes --checkpoint, --workdir and "
               "--score-sde-checkpoint");
  SCORCH_CHECK(!a.config.empty(), "--guided-diffusion-checkpoint '", file,
               "' needs --config naming its architecture (model.name=adm with the model's "
               "flags, e.g. configs/vp/lsun_bedroom256_adm.yaml)");
  SCORCH_CHECK(fs::is_regular_file(file), "--guided-diffusion-checkpoint '", file,
               "' is not a file");
  LoadedModel out;
  out.config = load_config(a.config, a.overrides);
  const auto& c = out.config;
  SCORCH_CHECK(c.model.name == ModelName::kAdm && c.model.patch_size == 0,
               "--guided-diffusion-checkpoint imports into the ADM U-Net: --config needs "
               "model.name=adm without model.patch_size, got model.name '", c.model.name, "'");
  SCORCH_CHECK(c.training.sde == SdeKind::kVP && !c.training.continuous,
               "--guided-diffusion-checkpoint: guided-diffusion models predict the noise at "
               "integer time steps, Scorch's discrete VP convention; set training.sde=vpsde and "
               "training.continuous=false (got ", c.training.sde, ", continuous=",
               c.training.continuous ? "true" : "false", ")");
  out.device = make_single_process_context(c).device;
  out.sde = make_sde(c);
  out.net = make_score_net(c);
  const auto r = import_guided_diffusion_model(file, dynamic_cast<ADMImpl&>(*out.net));
  out.description = "guided-diffusion model '" + file + "' (" + std::to_string(r.tensors) +
                    " tensors" + (r.learned_sigma ? ", learned variance dropped" : "") + ")";
  if (r.num_classes > 0)
    log_warning("guided-diffusion model '", file, "' is class-conditional without a null class: "
                "sample with class labels (unlabelled samples use an untrained embedding)");
  out.net->to(out.device);
  out.net->eval();
  return out;
}

// --checkpoint FILE where FILE is a bare EDM2 Precond state dict (keys
// unet.*, saved from Python): the architecture, EDM2's preset, comes from
// --config; the file holds one set of weights (a released model's EMA).
LoadedModel load_edm2_state_dict(const ModelSourceArgs& a) {
  const std::string& file = a.checkpoint;
  SCORCH_CHECK(!a.config.empty(), "--checkpoint '", file, "' is an EDM2 Precond state dict "
               "(keys unet.*), which holds no config: give --config naming the model's preset, "
               "e.g. configs/edm2/img512-xs.yaml for edm2-img512-xs");
  SCORCH_CHECK(a.weights == "ema" || a.weights == "model", "--weights '", a.weights,
               "' with the EDM2 state dict '", file, "': it holds one set of weights; use ema "
               "(the default) or model");
  LoadedModel out;
  out.config = load_config(a.config, a.overrides);
  const auto& c = out.config;
  SCORCH_CHECK(c.model.name == ModelName::kEdm2 && c.model.patch_size == 0,
               "--checkpoint '", file, "' is an EDM2 Precond state dict; --config '", a.config,
               "' has model.name '", c.model.name, "': name the model's preset, a model.name=edm2 "
               "config such as configs/edm2/img512-xs.yaml");
  out.device = make_single_process_context(c).device;
  out.sde = make_sde(c);
  out.net = make_score_net(c);
  const int64_t tensors = import_edm2_state_dict(
      file, dynamic_cast<EDM2PrecondImpl&>(*out.net), "--config '" + a.config + "'");
  out.description = "EDM2 state dict '" + file + "' (" + std::to_string(tensors) + " tensors)";
  out.net->to(out.device);
  out.net->eval();
  return out;
}

}  // namespace

LoadedModel load_model(const ModelSourceArgs& a) {
  if (!a.guided_diffusion_checkpoint.empty()) return load_guided_diffusion(a);
  if (!a.score_sde_checkpoint.empty()) return load_imported(a);
  LoadedModel out;
  std::string ckpt_path = a.checkpoint;
  if (ckpt_path.empty() && !a.workdir.empty()) {
    const auto dir = (fs::path(a.workdir) / "checkpoints").string();
    std::vector<std::string> unreadable;
    if (auto latest = find_latest_checkpoint(dir, &unreadable)) {
      for (const auto& w : unreadable) log_warning(w);
      ckpt_path = *latest;
    } else if (!unreadable.empty()) {
      std::string all;
      for (const auto& w : unreadable) all += "\n  " + w;
      fail("no checkpoint in '" + dir + "' can be loaded:" + all);
    }
  }
  if (!a.checkpoint.empty() && fs::is_regular_file(a.checkpoint) &&
      is_edm2_state_dict_file(a.checkpoint))
    return load_edm2_state_dict(a);
  CheckpointData ckpt;
  if (!ckpt_path.empty()) {
    SCORCH_CHECK(fs::exists(ckpt_path), "checkpoint '", ckpt_path, "' does not exist");
    ckpt = load_checkpoint(ckpt_path);
  }
  // Config: --config, else the checkpoint's own, else the workdir's.
  if (!a.config.empty())
    out.config = load_config(a.config, a.overrides);
  else if (!ckpt_path.empty() && !ckpt.config_yaml.empty())
    out.config = parse_config(ckpt.config_yaml, "the config saved in '" + ckpt_path + "'",
                              a.overrides);
  else
    out.config = resolve_config("", a.workdir, a.overrides);
  const auto& c = out.config;
  out.device = make_single_process_context(c).device;
  out.sde = make_sde(c);

  if (c.model.name == ModelName::kAnalytic) {
    SCORCH_CHECK(a.checkpoint.empty(),
                 "model.name=analytic needs no checkpoint; drop --checkpoint");
    out.net = make_analytic_from_config(c, out.sde).ptr();
    out.description = "analytic Gaussian mixture (" +
                      std::to_string(c.model.analytic_means.empty()
                                         ? 1
                                         : c.model.analytic_means.size() /
                                               std::max<size_t>(1, static_cast<size_t>(c.data.dim))) +
                      " component(s))";
  } else {
    SCORCH_CHECK(!ckpt_path.empty(), "no checkpoint to sample from: ",
                 a.workdir.empty() ? std::string("pass --workdir W or --checkpoint FILE")
                                   : "'" + a.workdir + "/checkpoints' has none (train first, or "
                                     "pass --checkpoint FILE)");
    out.net = make_score_net(c);
    load_module_state(*out.net, ckpt.model, "checkpoint '" + ckpt_path + "'");
    std::string weights = "raw model weights";
    if (a.weights != "model") {
      Ema ema(*out.net, c.model);
      ema.load_state_dict(ckpt.ema, ckpt.ema_num_updates, nullptr);
      const std::string name = a.weights == "ema" ? ema.default_name() : a.weights;
      SCORCH_CHECK(ckpt.ema.count(name), "checkpoint '", ckpt_path, "' has no EMA '", name,
                   "'; it has ", [&] {
                     std::string s;
                     for (const auto& [k, v] : ckpt.ema) s += (s.empty() ? "" : ", ") + k;
                     return s.empty() ? std::string("none") : s;
                   }(), " (or use --weights model)");
      ema.copy_to(*out.net, name);
      weights = "EMA " + name;
    }
    // `scorch phema` output: every weight set is the reconstruction.
    const auto phema = ckpt.extra.find("phema_std");
    if (phema != ckpt.extra.end() && phema->second.isDouble() && ckpt.extra.count("phema_residual"))
      weights = "post-hoc EMA sigma_rel " + Ema::format_number(phema->second.toDouble());
    out.step = ckpt.step;
    out.description = "checkpoint '" + ckpt_path + "' (step " + std::to_string(ckpt.step) + ", " +
                      weights + ")";
  }
  out.net->to(out.device);
  out.net->eval();
  return out;
}

}  // namespace scorch
