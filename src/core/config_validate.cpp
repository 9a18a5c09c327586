// Config validation (the cross-key checks that no single field's range can
// express), in one place for every command, and the values derived from a
// config across the code.
#include <algorithm>
#include <iterator>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/signals.h"

namespace scorch {
namespace {

bool is_unet(ModelName name) {
  return name == ModelName::kDdpm || name == ModelName::kNcsnpp || name == ModelName::kAdm;
}

// The networks whose levels model.ch_mult sets (edm2's: model.edm2_channel_mult).
const std::vector<int64_t>& level_mult(const ModelConfig& m) {
  return m.name == ModelName::kEdm2 ? m.edm2_channel_mult : m.ch_mult;
}

bool is_ncsn(ModelName name) {
  return name == ModelName::kNcsn || name == ModelName::kNcsnv2_64 ||
         name == ModelName::kNcsnv2_128 || name == ModelName::kNcsnv2_256;
}

void validate_analytic(const Config& c) {
  const auto& m = c.model;
  const int64_t d = is_image_data(c) ? c.data.num_channels * c.data.image_size * c.data.image_size
                                     : c.data.dim;
  const auto nm = static_cast<int64_t>(m.analytic_means.size());
  SCORCH_CHECK(nm % d == 0, "model.analytic_means has ", nm, " values; it needs K * D for D = ", d,
               " (K components of dimension D)");
  const int64_t k = nm == 0 ? 1 : nm / d;
  SCORCH_CHECK(m.analytic_weights.empty() || static_cast<int64_t>(m.analytic_weights.size()) == k,
               "model.analytic_weights has ", m.analytic_weights.size(), " values for ", k,
               " components");
  SCORCH_CHECK(m.analytic_covariances.empty() ||
                   static_cast<int64_t>(m.analytic_covariances.size()) == k * d * d,
               "model.analytic_covariances has ", m.analytic_covariances.size(),
               " values; it needs K*D*D = ", k * d * d);
  SCORCH_CHECK(m.analytic_std > 0, "model.analytic_std must be > 0");
}

// The network against the data it models.
void validate_network_data(const Config& c) {
  const auto& m = c.model;
  SCORCH_CHECK(c.data.dataset != DatasetName::kHdf5 || !c.data.path.empty(),
               "data.dataset=hdf5 needs data.path (a dataset directory)");
  if (m.name == ModelName::kAnalytic) return validate_analytic(c);
  if (!is_image_data(c) && m.name == ModelName::kAdm) {
    // 1-D / 3-D signals stored as vectors of C * L or C * depth * S * S values.
    SCORCH_CHECK(c.data.dataset == DatasetName::kHdf5, "model.name=adm with model.dims=", m.dims,
                 " reads signals stored as vectors: data.dataset must be hdf5, got '",
                 c.data.dataset, "'");
    const int64_t s = c.data.image_size, ch = c.data.num_channels;
    const int64_t d = m.dims == 1 ? ch * s : ch * c.data.depth * s * s;
    SCORCH_CHECK(c.data.dim == d, "data.dim ", c.data.dim, " must equal ",
                 m.dims == 1 ? "data.num_channels * data.image_size"
                             : "data.num_channels * data.depth * data.image_size^2",
                 " = ", d, " for model.name=adm with model.dims=", m.dims);
  } else if (!is_image_data(c)) {
    SCORCH_CHECK(m.name == ModelName::kMlp, "model.name '", m.name,
                 "' is an image network but data.dataset '", c.data.dataset,
                 "' is 2-D vector data; use model.name=mlp");
    if (is_toy_data(c))
      SCORCH_CHECK(c.data.dim == 2, "data.dataset '", c.data.dataset,
                   "' is two-dimensional; data.dim must be 2, got ", c.data.dim);
  } else {
    SCORCH_CHECK(m.name != ModelName::kMlp, "model.name 'mlp' is for vector data; data.dataset '",
                 c.data.dataset, "' holds images: use ddpm, ncsnpp, adm or edm2");
    SCORCH_CHECK(m.name != ModelName::kAdm || m.dims == 2, "model.dims=", m.dims, " is for ",
                 m.dims == 1 ? "1-D" : "3-D", " signals stored as vectors (data.dataset=hdf5); ",
                 "data.dataset '", c.data.dataset, "' holds images: set model.dims=2");
    const int64_t levels = static_cast<int64_t>(level_mult(m).size());
    const int64_t net_size = m.patch_size > 0 ? m.patch_size : c.data.image_size;
    SCORCH_CHECK(net_size % (int64_t{1} << (levels - 1)) == 0,
                 m.patch_size > 0 ? "model.patch_size (" : "data.image_size (", net_size,
                 ") must be divisible by 2^(len(",
                 m.name == ModelName::kEdm2 ? "model.edm2_channel_mult" : "model.ch_mult",
                 ")-1) = ", int64_t{1} << (levels - 1));
  }
}

// model.checkpointing: the networks that have the blocks it names, and losses
// whose backward differentiates the network once (a checkpointed block's
// backward is not itself differentiable).
void validate_checkpointing(const Config& c) {
  const auto& m = c.model;
  if (m.checkpointing == Checkpointing::kNone) return;
  SCORCH_CHECK(m.name != ModelName::kEdm2, "model.checkpointing=", m.checkpointing,
               " is not implemented for model.name=edm2: its forced weight normalization "
               "rewrites the weights in every training forward, and a recomputed block would "
               "apply it twice; set model.checkpointing=none");
  SCORCH_CHECK(is_unet(m.name) || is_ncsn(m.name), "model.checkpointing=", m.checkpointing,
               " recomputes the residual and attention blocks of ddpm, ncsnpp, adm, ncsn and "
               "ncsnv2_*; model.name=", m.name, " has no such blocks: set model.checkpointing=none");
  SCORCH_CHECK(m.checkpointing != Checkpointing::kAttention || is_unet(m.name),
               "model.checkpointing=attention recomputes attention blocks; model.name=", m.name,
               " has none (its RefineNet residual blocks are recomputed with "
               "model.checkpointing=blocks): set model.checkpointing=blocks or none");
  const LossName loss = resolved_loss(c);
  SCORCH_CHECK(loss != LossName::kSsm && loss != LossName::kSsmVr && loss != LossName::kEsm,
               "model.checkpointing=", m.checkpointing, " needs a loss that differentiates the "
               "network once; training.loss=", loss, " differentiates it twice (its Jacobian "
               "enters the loss): set model.checkpointing=none or training.loss=dsm");
}

// model.name=edm2 (nn/edm2.h): EDM2's Precond is EDM's edm preconditioning,
// and its U-Net reads the model.edm2_* keys; the generic U-Net keys that it
// does not read are errors when set, not silently ignored.
void validate_edm2(const Config& c) {
  const auto& m = c.model;
  const ModelConfig defaults;
  SCORCH_CHECK(m.precond == Precond::kEDM, "model.name=edm2 is EDM2's preconditioned network "
               "(EDM's c_skip, c_out, c_in with model.sigma_data and c_noise = ln(sigma) / 4): "
               "set model.precond=edm, got model.precond=", m.precond);
  SCORCH_CHECK(m.ch_mult == defaults.ch_mult, "model.ch_mult is not read by model.name=edm2; "
               "set model.edm2_channel_mult instead (and leave model.ch_mult out)");
  SCORCH_CHECK(m.num_res_blocks == defaults.num_res_blocks, "model.num_res_blocks is not read "
               "by model.name=edm2; set model.edm2_num_blocks instead (and leave "
               "model.num_res_blocks out)");
  SCORCH_CHECK(m.attn_resolutions == defaults.attn_resolutions, "model.attn_resolutions is not "
               "read by model.name=edm2; set model.edm2_attn_resolutions instead (and leave "
               "model.attn_resolutions out)");
}

// The options a network honours (nn/model_factory.cpp builds from them).
void validate_network_options(const Config& c) {
  const auto& m = c.model;
  validate_checkpointing(c);
  if (m.patch_size > 0) {
    SCORCH_CHECK(is_image_data(c) && (m.name == ModelName::kDdpm || m.name == ModelName::kNcsnpp ||
                                      (m.name == ModelName::kAdm && m.dims == 2)),
                 "model.patch_size needs image data and a U-Net that takes two extra coordinate "
                 "channels: model.name ddpm, ncsnpp or adm (dims 2), got model.name=", m.name);
    SCORCH_CHECK(m.patch_size < c.data.image_size, "model.patch_size ", m.patch_size,
                 " must be smaller than data.image_size ", c.data.image_size,
                 " (0 trains on whole images)");
    SCORCH_CHECK(m.patch_stride <= m.patch_size, "model.patch_stride ", m.patch_stride,
                 " must not exceed model.patch_size ", m.patch_size,
                 " (tiles would leave gaps); 0 = patch_size / 2");
  }
  if (is_unet(m.name))
    SCORCH_CHECK(m.normalization == Normalization::kGroupNorm, "model.normalization ",
                 m.normalization, " is for NCSN / NCSNv2; model.name=", m.name,
                 " uses GroupNorm");
  if (m.name == ModelName::kNcsnpp)
    SCORCH_CHECK(m.embedding_type != EmbeddingType::kFourier || c.training.continuous,
                 "model.embedding_type=fourier needs training.continuous=true (Fourier features "
                 "embed sigma; discrete training feeds level indices)");
  if (m.name == ModelName::kAdm) {
    SCORCH_CHECK(m.conditional, "model.name=adm is always time-conditional; set "
                 "model.conditional=true");
    SCORCH_CHECK(m.embedding_type == EmbeddingType::kPositional,
                 "model.name=adm embeds time_cond with guided-diffusion's sinusoidal embedding; "
                 "model.embedding_type must be positional");
    SCORCH_CHECK(!m.scale_by_sigma || c.training.sde == SdeKind::kVE,
                 "model.scale_by_sigma is for training.sde=vesde (the network's output divided "
                 "by sigma), got ", c.training.sde);
  }
  if (m.name == ModelName::kEdm2) validate_edm2(c);
  if (is_ncsn(m.name)) {
    SCORCH_CHECK(m.normalization == Normalization::kInstanceNormPlusPlus, "model.name=", m.name,
                 " needs model.normalization=InstanceNorm++, got ", m.normalization);
    SCORCH_CHECK(c.data.num_classes == 0, "model.name=", m.name,
                 " is unconditional; data.num_classes must be 0, got ", c.data.num_classes);
    SCORCH_CHECK(!c.training.continuous, "model.name=", m.name,
                 " is conditioned on noise-level indices; set training.continuous=false "
                 "(with training.sde=vesde, as score_sde's ncsn configs)");
  }

}

// The noise schedule of the SDE (sde/sde.cpp builds from it).
void validate_sde(const Config& c) {
  const auto& m = c.model;
  SCORCH_CHECK(m.num_scales >= 2, "model.num_scales: ", m.num_scales,
               " must be at least 2 (the discrete level is t (N - 1))");
  if (c.training.sde == SdeKind::kVE) return;  // sigma_min > 0 and < sigma_max: above
  SCORCH_CHECK(m.beta_min > 0.0, "model.beta_min: ", m.beta_min, " must be a positive number");
  SCORCH_CHECK(m.beta_max < static_cast<double>(m.num_scales), "model.beta_max: ", m.beta_max,
               " must be below model.num_scales (", m.num_scales,
               ") so that the discrete betas beta_max / N stay below 1");
}

// model.precond (nn/precond.h) wraps a network fed a continuous noise label
// c_noise that may be negative (NCSN++ then embeds it as EDM does, not its
// log): not the level-indexed NCSNs, not a network that divides its output by
// sigma itself, and not the patch wrapper (not done).
void validate_precond(const Config& c) {
  const auto& m = c.model;
  const bool edm_loss = c.training.loss == LossName::kEdm || c.training.loss == LossName::kEdmVp ||
                        c.training.loss == LossName::kEdmVe || c.training.loss == LossName::kEdm2;
  if (m.precond == Precond::kNone) {
    SCORCH_CHECK(!edm_loss, "training.loss=", c.training.loss,
                 " trains a denoiser D(x; sigma) and needs model.precond=vp, ve or edm (EDM "
                 "Table 1; edm pairs with model.precond=edm), got model.precond=none");
    return;
  }
  SCORCH_CHECK(m.name == ModelName::kMlp || m.name == ModelName::kDdpm ||
                   m.name == ModelName::kNcsnpp || m.name == ModelName::kAdm ||
                   m.name == ModelName::kEdm2,
               "model.precond=", m.precond, " wraps a network that takes a continuous noise "
               "label: model.name mlp, ddpm, ncsnpp or adm (edm2 with model.precond=edm), got "
               "model.name=", m.name,
               " (set model.precond=none)");
  SCORCH_CHECK(c.training.continuous, "model.precond=", m.precond,
               " needs training.continuous=true (the wrapper reads sigma from the continuous "
               "time label), got training.continuous=false");
  SCORCH_CHECK(!m.scale_by_sigma, "model.precond=", m.precond, " scales the output by c_out "
               "itself; set model.scale_by_sigma=false");
  SCORCH_CHECK(m.patch_size == 0, "model.precond=", m.precond,
               " does not wrap the patch network; set model.patch_size=0 or model.precond=none");
}

// The loss against the SDE and time (losses/loss.cpp builds from them).
void validate_loss(const Config& c) {
  const auto& t = c.training;
  SCORCH_CHECK(t.continuous || t.loss != LossName::kAuto || t.sde != SdeKind::kSubVP,
               "training.continuous=false has no discrete loss for subvpsde; set "
               "training.continuous=true or training.sde=vpsde/vesde");
  const LossName loss = resolved_loss(c);
  SCORCH_CHECK(loss != LossName::kEdm2 || c.model.name == ModelName::kEdm2,
               "training.loss=edm2 weights the loss by the learned uncertainty u(sigma) of EDM2's "
               "network (its logvar head) and needs model.name=edm2, got model.name=",
               c.model.name, "; use training.loss=edm for other networks");
  if (loss == LossName::kSmld || loss == LossName::kDdpm) {
    const SdeKind sde = loss == LossName::kSmld ? SdeKind::kVE : SdeKind::kVP;
    SCORCH_CHECK(t.sde == sde, "training.loss=", loss, " needs training.sde=", sde, ", got ",
                 t.sde);
    SCORCH_CHECK(!t.continuous, "training.loss=", loss, " trains a discrete model and needs "
                 "training.continuous=false");
  } else {
    SCORCH_CHECK(t.continuous, "training.loss=", loss,
                 " trains a continuous-time model and needs training.continuous=true");
    SCORCH_CHECK(t.eps > 0.0 && t.eps < 1.0, "training.eps: ", t.eps,
                 " must be in (0, 1) (t ~ U(eps, 1))");
    SCORCH_CHECK(t.timestep_sampler == TimestepSamplerName::kUniform, "training.timestep_sampler=",
                 t.timestep_sampler, " draws discrete levels and applies to training.loss=smld "
                 "or ddpm (training.continuous=false), not training.loss=", loss,
                 "; set training.timestep_sampler=uniform");
  }
}

// The keys of the multistep samplers (dpm_solver_pp, unipc) are errors
// elsewhere rather than silently ignored.
void validate_multistep(const SamplingConfig& s) {
  const bool multistep =
      s.method == SamplingMethod::kDpmSolverPp || s.method == SamplingMethod::kUniPc;
  const SamplingConfig defaults;
  SCORCH_CHECK(s.sde_variant == SdeVariant::kNone || s.method == SamplingMethod::kDpmSolverPp,
               "sampling.sde_variant=", s.sde_variant, " applies to sampling.method=dpm_solver_pp "
               "only (sampling.method=", s.method, " has no SDE variant); set "
               "sampling.sde_variant=none or sampling.method=dpm_solver_pp");
  SCORCH_CHECK(multistep || s.order == defaults.order, "sampling.order=", s.order,
               " applies to sampling.method=dpm_solver_pp or unipc, not ", s.method,
               "; leave sampling.order at ", defaults.order);
  SCORCH_CHECK(multistep || s.step_schedule == defaults.step_schedule,
               "sampling.step_schedule=", s.step_schedule,
               " applies to sampling.method=dpm_solver_pp or unipc, not ", s.method,
               " (edm always uses the Karras schedule); leave sampling.step_schedule at ",
               defaults.step_schedule);
}

void validate_sampling(const Config& c) {
  const auto& s = c.sampling;
  if (s.predictor == Predictor::kAncestral)
    SCORCH_CHECK(c.training.sde != SdeKind::kSubVP && !s.probability_flow,
                 "sampling.predictor=ancestral_sampling needs training.sde vesde or vpsde and "
                 "sampling.probability_flow=false");
  SCORCH_CHECK(s.method != SamplingMethod::kDdim || c.training.sde == SdeKind::kVP,
               "sampling.method=ddim needs training.sde=vpsde, got ", c.training.sde,
               "; use ode or edm for other SDEs");
  validate_multistep(s);
  if (s.method == SamplingMethod::kPc &&
      (s.predictor == Predictor::kReverseDiffusion || s.predictor == Predictor::kAncestral))
    SCORCH_CHECK(s.num_steps == 0 || s.num_steps == c.model.num_scales, "sampling.predictor=",
                 s.predictor, " steps through the model.num_scales=", c.model.num_scales,
                 " discrete levels, so sampling.num_steps must be 0 or ", c.model.num_scales,
                 ", got ", s.num_steps);
}

void validate_eval(const Config& c) {
  if (c.eval.freq == 0) return;
  SCORCH_CHECK(is_image_data(c), "eval.freq=", c.eval.freq,
               " computes FID of images; data.dataset '", c.data.dataset,
               "' is vector data (its snapshots report a sliced Wasserstein distance instead); "
               "set eval.freq=0");
  SCORCH_CHECK(!c.eval.reference.empty() && !c.eval.feature_extractor.empty(), "eval.freq=",
               c.eval.freq, " needs eval.reference (statistics from `scorch stats`) and "
               "eval.feature_extractor (a TorchScript file or a `scorch classifier` checkpoint)");
}

// model.phema_std and its snapshots (EDM2's power-function EMA, train/phema.h).
void validate_phema(const Config& c) {
  const auto& stds = c.model.phema_std;
  for (size_t i = 0; i < stds.size(); ++i) {
    // gamma >= 0 (std_to_exp's root) needs 0 < sigma_rel <= sqrt(1/12).
    SCORCH_CHECK(stds[i] > 0 && stds[i] <= 0.28867513459481287, "model.phema_std: ", stds[i],
                 " is not a power-function EMA's relative standard deviation sigma_rel; use "
                 "values in (0, 0.2886], e.g. [0.05, 0.1] as EDM2");
    SCORCH_CHECK(std::find(stds.begin(), stds.begin() + static_cast<std::ptrdiff_t>(i), stds[i]) ==
                     stds.begin() + static_cast<std::ptrdiff_t>(i),
                 "model.phema_std lists ", stds[i], " twice; list each sigma_rel once");
  }
  const double kimg = c.training.phema_snapshot_kimg;
  SCORCH_CHECK(kimg == 0 || !stds.empty(), "training.phema_snapshot_kimg=", kimg,
               " stores power-function EMA profiles, but model.phema_std is empty; set "
               "model.phema_std=[0.05,0.1] (EDM2's), or training.phema_snapshot_kimg=0");
  SCORCH_CHECK(kimg == 0 || kimg * 1000 >= 1, "training.phema_snapshot_kimg=", kimg,
               " is less than one image; use 0 (off) or a value >= 0.001");
}

}  // namespace

void validate(const Config& c) {
  const auto& m = c.model;
  SCORCH_CHECK(m.sigma_min < m.sigma_max, "model.sigma_min (", m.sigma_min,
               ") must be smaller than model.sigma_max (", m.sigma_max, ")");
  SCORCH_CHECK(m.beta_min < m.beta_max, "model.beta_min (", m.beta_min,
               ") must be smaller than model.beta_max (", m.beta_max, ")");
  SCORCH_CHECK(!m.ch_mult.empty(), "model.ch_mult must list at least one level, e.g. [1, 2, 2, 2]");
  SCORCH_CHECK(!m.edm2_channel_mult.empty(),
               "model.edm2_channel_mult must list at least one level, e.g. [1, 2, 3, 4]");
  SCORCH_CHECK(m.fir_kernel.size() >= 2,
               "model.fir_kernel needs at least two taps, e.g. [1, 3, 3, 1]");
  validate_network_data(c);
  validate_network_options(c);
  preemption_signal_numbers(c);  // throws on an unknown name
  validate_sde(c);
  validate_precond(c);
  validate_loss(c);
  validate_sampling(c);
  validate_eval(c);
  validate_phema(c);
}

LossName resolved_loss(const Config& c) {
  const auto& t = c.training;
  if (t.loss != LossName::kAuto) return t.loss;
  if (t.continuous) return LossName::kDsm;
  return t.sde == SdeKind::kVE ? LossName::kSmld : LossName::kDdpm;
}

bool resolved_zero_nonfinite_grads(const Config& c) {
  const AutoSwitch z = c.training.zero_nonfinite_grads;
  if (z == AutoSwitch::kAuto) return resolved_loss(c) == LossName::kEdm2;
  return z == AutoSwitch::kTrue;
}

double sampling_eps(const Config& c) {
  if (c.sampling.eps > 0) return c.sampling.eps;
  return c.training.sde == SdeKind::kVE ? 1e-5 : 1e-3;
}

namespace {

// sampling.num_steps = 0: each sampling.method's step count, in enumerator
// order; 0 stands for model.num_scales. ode's applies to its fixed-step
// solvers. dpm_solver_pp and unipc: at 20, order 2 misses the MMD noise floor
// of the sub-VP mixture in tests/sampling/sampler_test.cpp (MMD^2 2.8e-3
// against 1.5e-3; 1.2e-3 at 40); order 3 reaches it at 20.
constexpr int64_t kDefaultSamplingSteps[] = {0, 100, 35, 50, 40, 40};
static_assert(std::size(kDefaultSamplingSteps) == choice_count<SamplingMethod>(),
              "one default step count per sampling.method");

}  // namespace

int64_t sampling_steps(const Config& c, SamplingMethod method) {
  if (c.sampling.num_steps > 0) return c.sampling.num_steps;
  const int64_t steps = kDefaultSamplingSteps[static_cast<size_t>(method)];
  return steps > 0 ? steps : c.model.num_scales;
}

int64_t sampling_steps(const Config& c) { return sampling_steps(c, c.sampling.method); }

std::string sampling_steps_defaults() {
  std::string out;
  for (size_t m = 0; m < std::size(kDefaultSamplingSteps); ++m) {
    const int64_t steps = kDefaultSamplingSteps[m];
    out += (out.empty() ? "" : ", ") +
           (steps > 0 ? std::to_string(steps) : std::string("model.num_scales")) + " (" +
           choice_name(static_cast<SamplingMethod>(m)) + ")";
  }
  return out;
}

std::vector<int> preemption_signal_numbers(const Config& c) {
  return parse_signal_list(c.preemption.signals, "preemption.signals");
}

bool is_toy_data(const Config& c) {
  switch (c.data.dataset) {
    case DatasetName::kSwissRoll:
    case DatasetName::kTwoMoons:
    case DatasetName::kEightGaussians:
    case DatasetName::kCheckerboard:
      return true;
    default:
      return false;
  }
}

bool is_image_data(const Config& c) {
  // An hdf5 dataset holds images or vectors; the network says which is meant
  // (the loader checks the manifest agrees).
  if (c.data.dataset == DatasetName::kHdf5)
    return is_unet(c.model.name) ? c.model.name != ModelName::kAdm || c.model.dims == 2
                                 : is_ncsn(c.model.name) || c.model.name == ModelName::kEdm2;
  return !is_toy_data(c);
}

}  // namespace scorch
