// Scorch's typed run configuration: one struct per section, read from YAML
// with `a.b=value` overrides, validated in one place; string choices are
// enums (core/choices.h). Key names follow
// yang-song/score_sde's configs where a key exists there (configs/README.md).
//
//   Config c = load_config("configs/toy/eight_gaussians_vp.yaml", {"training.n_iters=500"});
//   std::cout << to_yaml(c);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/choices.h"

namespace scorch {

struct DataConfig {
  DatasetName dataset = DatasetName::kEightGaussians;  // toy 2-D set, synthetic_images, hdf5
  std::string path;                         // dataset directory (hdf5)
  int64_t image_size = 32;
  int64_t num_channels = 3;
  int64_t dim = 2;        // vector data (toy sets; 1-D / 3-D signals for model.name=adm)
  int64_t depth = 1;      // 3-D signals (model.dims=3): samples are [C, depth, S, S]
  bool centered = false;  // data in [-1, 1] (true) or [0, 1]
  bool random_flip = true;
  bool uniform_dequantization = false;
  int64_t num_classes = 0;  // 0: unconditional
  int64_t loader_threads = 2;     // hdf5: background reader threads (0: read inline)
  int64_t prefetch_batches = 4;   // hdf5: batches read ahead
  bool verify_checksums = true;   // hdf5: SHA-256 of every shard when a run starts
};

struct ModelConfig {
  ModelName name = ModelName::kMlp;
  double ema_rate = 0.9999;             // score_sde warm-up EMA
  std::vector<double> ema_extra_rates;  // further rates kept beside ema_rate
  double ema_halflife_kimg = 0.0;       // EDM EMA (half-life in kimg); 0 = off
  double ema_rampup_ratio = 0.05;       // EDM ramp-up; 0 = none
  // EDM2 power-function EMA profiles (relative std sigma_rel); empty = none.
  std::vector<double> phema_std;
  double sigma_min = 0.01;
  double sigma_max = 50.0;
  double beta_min = 0.1;
  double beta_max = 20.0;
  int64_t num_scales = 1000;
  double dropout = 0.1;
  EmbeddingType embedding_type = EmbeddingType::kPositional;
  double fourier_scale = 16.0;
  int64_t nf = 128;
  std::vector<int64_t> ch_mult = {1, 2, 2, 2};
  int64_t num_res_blocks = 4;
  std::vector<int64_t> attn_resolutions = {16};
  bool resamp_with_conv = true;
  bool conditional = true;  // time-conditional
  bool fir = false;
  std::vector<int64_t> fir_kernel = {1, 3, 3, 1};
  bool skip_rescale = true;
  ResBlockType resblock_type = ResBlockType::kBigGAN;
  ProgressiveOutput progressive = ProgressiveOutput::kNone;
  ProgressiveInput progressive_input = ProgressiveInput::kNone;
  CombineMethod progressive_combine = CombineMethod::kSum;
  double init_scale = 0.0;
  int64_t conv_size = 3;
  bool scale_by_sigma = false;
  Activation nonlinearity = Activation::kSwish;
  Normalization normalization = Normalization::kGroupNorm;  // InstanceNorm++: ncsn, ncsnv2_*
  int64_t mlp_hidden = 128;    // MLP width
  int64_t mlp_layers = 3;      // MLP hidden layers
  double class_dropout = 0.0;  // label dropout (classifier-free guidance)
  bool channels_last = false;  // NHWC weights and activations (faster convolutions on CUDA)
  // Activation checkpointing: recompute residual and attention blocks (or
  // attention blocks only) in backward instead of storing their activations.
  Checkpointing checkpointing = Checkpointing::kNone;
  // EDM preconditioning (nn/precond.h): the network becomes D(x; sigma).
  Precond precond = Precond::kNone;
  double sigma_data = 0.5;  // EDM's sd, the data's standard deviation
  // ADM U-Net (model.name=adm; guided-diffusion's option names).
  int64_t dims = 2;                // 1-D, 2-D or 3-D signals
  int64_t num_heads = 1;
  int64_t num_head_channels = -1;  // > 0: channels per head (overrides num_heads)
  int64_t num_heads_upsample = -1; // -1: num_heads
  bool use_scale_shift_norm = false;
  bool resblock_updown = false;
  bool use_new_attention_order = false;
  // EDM2's U-Net (model.name=edm2; networks_edm2.py UNet's arguments with its
  // defaults; model.nf is model_channels, model.dropout its dropout).
  std::vector<int64_t> edm2_channel_mult = {1, 2, 3, 4};
  int64_t edm2_channel_mult_noise = 0;  // 0: edm2_channel_mult[0]
  int64_t edm2_channel_mult_emb = 0;    // 0: max(edm2_channel_mult)
  int64_t edm2_num_blocks = 3;
  std::vector<int64_t> edm2_attn_resolutions = {16, 8};
  int64_t edm2_channels_per_head = 64;
  int64_t edm2_logvar_channels = 128;
  // Patch-based training (0: off): the network sees patch_size^2 crops with
  // two coordinate channels; sampling assembles data.image_size images.
  int64_t patch_size = 0;
  int64_t patch_stride = 0;                // sampling tiles' stride; 0: patch_size / 2
  PatchSampling patch_sampling = PatchSampling::kTiles;
  // model.name=analytic: the exact score of a Gaussian mixture, no training.
  std::vector<double> analytic_means;        // [K * D] flattened; empty: one component at 0
  std::vector<double> analytic_weights;      // [K]; empty: equal weights
  double analytic_std = 0.5;                 // isotropic std when no covariances are given
  std::vector<double> analytic_covariances;  // [K * D * D] flattened, symmetric positive definite
};

struct TrainingConfig {
  SdeKind sde = SdeKind::kVP;
  bool continuous = true;
  bool reduce_mean = true;
  bool likelihood_weighting = false;
  LossName loss = LossName::kAuto;
  SsmProjection ssm_projection = SsmProjection::kRademacher;
  int64_t ssm_num_projections = 1;
  TimestepSamplerName timestep_sampler = TimestepSamplerName::kUniform;  // smld/ddpm
  double eps = 1e-5;         // t ~ U(eps, 1)
  double p_mean = -1.2;      // training.loss=edm: ln sigma ~ N(p_mean, p_std^2)
  double p_std = 1.2;
  int64_t batch_size = 128;  // global batch
  int64_t n_iters = 1300001;
  int64_t log_freq = 50;
  int64_t snapshot_freq = 50000;                 // checkpoint + EMA samples
  int64_t snapshot_freq_for_preemption = 10000;  // checkpoint only
  bool snapshot_sampling = true;
  int64_t snapshot_num_samples = 0;  // 0: 64 for images, else sampling.batch_size
  int64_t keep_checkpoints = 3;      // newest K kept
  int64_t keep_every = 0;            // every M-th step also kept; 0 = none
  int64_t grad_accum = 1;            // micro-batches per rank per step
  int64_t nonfinite_patience = 20;   // non-finite steps in a row skipped before stopping
  // Non-finite gradients set to 0 (EDM2's force_finite); auto: on for
  // training.loss=edm2 only (resolved_zero_nonfinite_grads(config) resolves it).
  AutoSwitch zero_nonfinite_grads = AutoSwitch::kAuto;
  double phema_snapshot_kimg = 0.0;  // model.phema_std profiles stored every N kimg; 0 = off
};

struct OptimConfig {
  OptimizerName optimizer = OptimizerName::kAdam;
  double lr = 2e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  int64_t warmup = 5000;
  double grad_clip = 1.0;  // <= 0: no clipping
  LrSchedule schedule = LrSchedule::kConstant;
  int64_t ref_steps = 70000;  // inverse_sqrt: decay starts here (EDM2's ref_batches)
};

struct SamplingConfig {
  SamplingMethod method = SamplingMethod::kPc;
  Predictor predictor = Predictor::kEulerMaruyama;
  Corrector corrector = Corrector::kNone;
  double snr = 0.16;
  int64_t n_steps_each = 1;
  bool noise_removal = true;
  bool probability_flow = false;
  double eps = 0.0;       // 0: 1e-3 (VP, sub-VP) or 1e-5 (VE)
  int64_t num_steps = 0;  // 0: the method's default (sampling_steps)
  int64_t batch_size = 1024;
  OdeMethod ode_method = OdeMethod::kDopri5;
  double rtol = 1e-5;                 // adaptive ODE methods
  double atol = 1e-5;
  double edm_rho = 7.0;     // EDM sigma schedule exponent
  double edm_churn = 0.0;   // EDM S_churn (0: deterministic)
  double edm_s_tmin = 0.0;  // EDM churn range [S_tmin, S_tmax] in sigma; S_tmax 0 = no limit
  double edm_s_tmax = 0.0;
  double edm_s_noise = 1.0;
  double ddim_eta = 0.0;    // DDIM: 0 deterministic, 1 DDPM-like
  // dpm_solver_pp, unipc (sampling/dpm_solver.h, sampling/unipc.h)
  int64_t order = 2;                                  // multistep order, 1..3
  SdeVariant sde_variant = SdeVariant::kNone;         // dpm_solver_pp: sde = 2M/3M-SDE (eta 1)
  StepSchedule step_schedule = StepSchedule::kLogSnr; // noise levels (karras: rho = edm_rho)
};

struct EvalConfig {
  int64_t num_samples = 50000;
  int64_t batch_size = 1024;
  std::string feature_extractor;  // TorchScript file or a Scorch classifier checkpoint
  std::string reference;          // reference statistics (.npz) for eval during training / --workdir
  int64_t freq = 0;               // training: evaluate every `freq` steps; 0 = off
  int64_t freq_num_samples = 1000;  // samples per evaluation during training
  int64_t is_splits = 10;         // Inception Score splits: 10 (the reference), 1 (single split)
};

struct DistConfig {
  DeviceName device = DeviceName::kAuto;
  BackendName backend = BackendName::kAuto;
  double bucket_mb = 25.0;
  double timeout_s = 600.0;
  int64_t check_every = 0;  // steps between parameter-agreement checks; 0 = off
  bool tf32 = false;            // CUDA: TF32 tensor cores for float32 matmuls (PyTorch: off)
  bool cudnn_tf32 = true;       // CUDA: TF32 for float32 convolutions (PyTorch: on)
  bool cudnn_benchmark = true;  // CUDA: cuDNN picks the fastest convolution per shape
  // ZeRO-1: each rank keeps optimizer (and EMA) state for 1/W of the parameters.
  ShardState shard_state = ShardState::kNone;
};

struct PrecisionConfig {
  PrecisionDtype dtype = PrecisionDtype::kFp32;  // autocast
  double initial_scale = 1048576.0;      // fp16: dynamic loss scale at start (2^20)
  int64_t growth_interval = 1000;        // fp16: finite steps before the scale grows
  double growth_factor = 2.0;
  double backoff_factor = 0.5;           // fp16: scale multiplier on overflow
};

struct PreemptionConfig {
  std::string signals = "SIGUSR2,SIGTERM";  // comma-separated; "" = none
  double grace_s = 0.0;  // seconds from the first signal to give up on the snapshot; 0 = none
};

struct MonitorConfig {
  bool enabled = false;
  std::string bind = "127.0.0.1";
  int64_t port = 9464;  // + local rank (9400 is dcgm-exporter's default)
  std::string targets_file;  // rank 0 writes a Prometheus file_sd JSON here; "" = none
  double linger_s = 0.0;     // seconds the endpoint stays up after training ends
};

struct Config {
  int64_t seed = 42;
  DataConfig data;
  ModelConfig model;
  TrainingConfig training;
  OptimConfig optim;
  SamplingConfig sampling;
  EvalConfig eval;
  DistConfig dist;
  PrecisionConfig precision;
  PreemptionConfig preemption;
  MonitorConfig monitor;
};

// Reads `path` (YAML), applies `overrides` ("a.b=value", YAML scalars or
// flow sequences "[1,2]"), validates. Throws scorch::Error naming the file,
// key and what would be right (closest valid key for unknown ones).
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Parses YAML text (`origin` names it in errors) with overrides.
Config parse_config(const std::string& yaml_text, const std::string& origin,
                    const std::vector<std::string>& overrides = {});

// Checks ranges, choices and cross-key constraints; throws scorch::Error.
void validate(const Config& config);

// The resolved config as YAML: every key, in section order. parse_config of
// this text gives back an equal config.
std::string to_yaml(const Config& config);

// One line per key: "path (type, default D): help", for `scorch train --help`.
std::string config_reference();

// One key of the table, as documented.
struct ConfigKey {
  std::string path;                  // "training.batch_size"
  std::string type;                  // integer | number | boolean | string | list of ...
  std::string default_value;         // as YAML
  std::string allowed;               // "vesde, vpsde, subvpsde", "[1, 16777216]", ">= 0", ""
  std::string help;
};
std::vector<ConfigKey> config_keys();

// The config reference as Markdown (configs/README.md is this text): every
// key with its type, default, allowed values and meaning, by section.
std::string config_reference_markdown();


// Derived values used across the code.
LossName resolved_loss(const Config& config);  // training.loss, auto resolved (dsm, smld, ddpm)
// training.zero_nonfinite_grads, auto resolved: true for training.loss=edm2.
bool resolved_zero_nonfinite_grads(const Config& config);
double sampling_eps(const Config& config);     // sampling.eps or the SDE default
// sampling.num_steps, or when it is 0 the default of sampling.method (one
// table, in config_validate.cpp; model.num_scales for pc).
int64_t sampling_steps(const Config& config);
// The same for another method (PC trajectories and conditional PC sampling).
int64_t sampling_steps(const Config& config, SamplingMethod method);
// That table as the config reference prints it: "model.num_scales (pc), 100 (ode), ...".
std::string sampling_steps_defaults();
bool is_toy_data(const Config& config);       // a built-in 2-D set (swiss_roll, ...)
bool is_image_data(const Config& config);      // false for toy sets, hdf5 with mlp or adm dims 1/3
// preemption.signals as signal numbers ("SIGUSR2" or "USR2", any case);
// throws scorch::Error naming an unknown one.
std::vector<int> preemption_signal_numbers(const Config& config);

}  // namespace scorch
