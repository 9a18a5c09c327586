// The config's key table (see config_table.h): each key's path, member,
// help text and range or choices.
#include "core/config_table.h"

#include <type_traits>
#include <utility>

namespace scorch::config_table {
namespace {

template <typename S, typename T>
Field make_field(const std::string& path, S Config::*section, T S::*member, char kind,
                 std::string help) {
  Field f;
  f.path = path;
  f.ref = [section, member](Config& c) -> void* { return &((c.*section).*member); };
  f.kind = kind;
  f.help = std::move(help);
  return f;
}

// Builders for each kind; ranges and choices chained after.
struct Table {
  std::vector<Field> fields;
  template <typename S>
  Field& i(const std::string& p, S Config::*s, int64_t S::*m, std::string h, double lo = -kInf,
           double hi = kInf) {
    fields.push_back(make_field(p, s, m, 'i', h));
    fields.back().min = lo;
    fields.back().max = hi;
    return fields.back();
  }
  template <typename S>
  Field& d(const std::string& p, S Config::*s, double S::*m, std::string h, double lo = -kInf,
           double hi = kInf) {
    fields.push_back(make_field(p, s, m, 'd', h));
    fields.back().min = lo;
    fields.back().max = hi;
    return fields.back();
  }
  template <typename S>
  Field& b(const std::string& p, S Config::*s, bool S::*m, std::string h) {
    fields.push_back(make_field(p, s, m, 'b', h));
    return fields.back();
  }
  template <typename S>
  Field& s(const std::string& p, S Config::*s, std::string S::*m, std::string h) {
    fields.push_back(make_field(p, s, m, 's', h));  // free text; a fixed set of values is t.e
    return fields.back();
  }
  template <typename S, typename E>
  Field& e(const std::string& p, S Config::*s, E S::*m, std::string h) {
    static_assert(std::is_same_v<std::underlying_type_t<E>, int>, "choices are int enums");
    fields.push_back(make_field(p, s, m, 'e', h));
    fields.back().choices = choice_names<E>();
    return fields.back();
  }
  template <typename S>
  Field& vi(const std::string& p, S Config::*s, std::vector<int64_t> S::*m, std::string h,
            double lo = -kInf, double hi = kInf) {
    fields.push_back(make_field(p, s, m, 'I', h));
    fields.back().min = lo;
    fields.back().max = hi;
    return fields.back();
  }
  template <typename S>
  Field& vd(const std::string& p, S Config::*s, std::vector<double> S::*m, std::string h,
            double lo = -kInf, double hi = kInf) {
    fields.push_back(make_field(p, s, m, 'D', h));
    fields.back().min = lo;
    fields.back().max = hi;
    return fields.back();
  }
};

}  // namespace

const std::vector<Field>& fields() {
  // #lizard forgives: the key table, one entry per config key
  static const std::vector<Field> table = [] {
    Table t;
    {
      Field f;
      f.path = "seed";
      f.ref = [](Config& c) -> void* { return &c.seed; };
      f.kind = 'i';
      f.help = "seed of every random stream (data order, noise, init)";
      f.min = 0;
      t.fields.push_back(f);
    }
    using C = Config;
    t.e("data.dataset", &C::data, &DataConfig::dataset,
        "swiss_roll | two_moons | eight_gaussians | checkerboard (2-D), synthetic_images, hdf5");
    t.s("data.path", &C::data, &DataConfig::path, "dataset directory (manifest.json + shards)");
    t.i("data.image_size", &C::data, &DataConfig::image_size, "image height = width", 1, 4096);
    t.i("data.num_channels", &C::data, &DataConfig::num_channels, "image channels", 1, 4);
    t.i("data.dim", &C::data, &DataConfig::dim, "dimension of vector data", 1, 1 << 20);
    t.b("data.centered", &C::data, &DataConfig::centered, "data in [-1, 1] (true) or [0, 1]");
    t.b("data.random_flip", &C::data, &DataConfig::random_flip, "random horizontal flips");
    t.b("data.uniform_dequantization", &C::data, &DataConfig::uniform_dequantization,
        "x = (k + u) / 256, u ~ U[0, 1)");
    t.i("data.num_classes", &C::data, &DataConfig::num_classes,
        "classes for conditioning; 0 = unconditional", 0, 1 << 20);
    t.i("data.loader_threads", &C::data, &DataConfig::loader_threads,
        "hdf5: background reader threads per rank (0: read in the training thread)", 0, 64);
    t.i("data.prefetch_batches", &C::data, &DataConfig::prefetch_batches,
        "hdf5: batches read ahead of training", 0, 1024);
    t.i("data.depth", &C::data, &DataConfig::depth,
        "3-D signals (model.dims=3): depth D of [C, D, S, S] samples stored as vectors", 1,
        1 << 16);
    t.b("data.verify_checksums", &C::data, &DataConfig::verify_checksums,
        "hdf5: check every shard's SHA-256 against the manifest at start");

    t.e("model.name", &C::model, &ModelConfig::name,
        "network: mlp | ddpm | ncsnpp (DDPM++ too) | adm (guided-diffusion U-Net) | ncsn | "
        "ncsnv2_64 | ncsnv2_128 | ncsnv2_256 | analytic (exact Gaussian-mixture score) | edm2 "
        "(EDM2's magnitude-preserving U-Net with its preconditioning and logvar head; needs "
        "model.precond=edm; model.nf is its model_channels, the model.edm2_* keys the rest)");
    t.d("model.ema_rate", &C::model, &ModelConfig::ema_rate,
        "EMA rate, decay = min(rate, (1+n)/(10+n))", 0, 1);
    t.vd("model.ema_extra_rates", &C::model, &ModelConfig::ema_extra_rates,
         "further EMA rates kept beside ema_rate", 0, 1);
    t.d("model.ema_halflife_kimg", &C::model, &ModelConfig::ema_halflife_kimg,
        "EDM EMA half-life in thousands of images; 0 = off", 0);
    t.d("model.ema_rampup_ratio", &C::model, &ModelConfig::ema_rampup_ratio,
        "EDM EMA ramp-up ratio; 0 = none", 0);
    t.vd("model.phema_std", &C::model, &ModelConfig::phema_std,
         "EDM2 power-function EMA profiles kept during training (EMAs phema_<std>, in "
         "checkpoints), by relative standard deviation sigma_rel, each in (0, 0.2886] (EDM2 keeps "
         "[0.05, 0.1]); empty = none. `scorch phema` reconstructs other sigma_rel from their "
         "snapshots (training.phema_snapshot_kimg)", 0, 0.2886);
    // sigma^2 and log(sigma_max / sigma_min) must stay finite and non-zero in float32.
    t.d("model.sigma_min", &C::model, &ModelConfig::sigma_min, "VE smallest noise level", 1e-18,
        1e18);
    t.d("model.sigma_max", &C::model, &ModelConfig::sigma_max, "VE largest noise level", 1e-18,
        1e18);
    t.d("model.beta_min", &C::model, &ModelConfig::beta_min, "VP/sub-VP beta(0)", 0);
    t.d("model.beta_max", &C::model, &ModelConfig::beta_max, "VP/sub-VP beta(1)", 0);
    t.i("model.num_scales", &C::model, &ModelConfig::num_scales, "discrete noise levels N", 2,
        1 << 20);
    t.d("model.dropout", &C::model, &ModelConfig::dropout, "dropout probability", 0, 1);
    t.e("model.embedding_type", &C::model, &ModelConfig::embedding_type,
        "time embedding: positional | fourier");
    t.d("model.fourier_scale", &C::model, &ModelConfig::fourier_scale,
        "std of Gaussian Fourier features", 0);
    t.i("model.nf", &C::model, &ModelConfig::nf, "base channel count", 1, 1 << 16);
    t.vi("model.ch_mult", &C::model, &ModelConfig::ch_mult, "channel multiplier per level", 1, 64);
    t.i("model.num_res_blocks", &C::model, &ModelConfig::num_res_blocks,
        "residual blocks per level", 0, 64);
    t.vi("model.attn_resolutions", &C::model, &ModelConfig::attn_resolutions,
         "resolutions with self-attention", 1, 4096);
    t.b("model.resamp_with_conv", &C::model, &ModelConfig::resamp_with_conv,
        "convolution in up/down-sampling");
    t.b("model.conditional", &C::model, &ModelConfig::conditional, "time-conditional network");
    t.b("model.fir", &C::model, &ModelConfig::fir, "FIR up/down-sampling");
    t.vi("model.fir_kernel", &C::model, &ModelConfig::fir_kernel, "FIR kernel taps", -1024, 1024);
    t.b("model.skip_rescale", &C::model, &ModelConfig::skip_rescale,
        "residual output (x+h)/sqrt(2)");
    t.e("model.resblock_type", &C::model, &ModelConfig::resblock_type, "biggan | ddpm");
    t.e("model.progressive", &C::model, &ModelConfig::progressive,
        "output path: none | output_skip | residual");
    t.e("model.progressive_input", &C::model, &ModelConfig::progressive_input,
        "input path: none | input_skip | residual");
    t.e("model.progressive_combine", &C::model, &ModelConfig::progressive_combine, "sum | cat");
    t.d("model.init_scale", &C::model, &ModelConfig::init_scale, "scale of final-layer init", 0);
    t.i("model.conv_size", &C::model, &ModelConfig::conv_size, "convolution kernel size", 1, 15);
    t.b("model.scale_by_sigma", &C::model, &ModelConfig::scale_by_sigma,
        "divide the output by sigma (VE)");
    t.e("model.nonlinearity", &C::model, &ModelConfig::nonlinearity, "swish | relu | lrelu | elu");
    t.e("model.normalization", &C::model, &ModelConfig::normalization,
        "GroupNorm (ddpm, ncsnpp) | InstanceNorm++ (ncsn, ncsnv2_*)");
    t.i("model.mlp_hidden", &C::model, &ModelConfig::mlp_hidden, "MLP width", 1, 1 << 16);
    t.i("model.mlp_layers", &C::model, &ModelConfig::mlp_layers, "MLP hidden layers", 1, 64);
    t.d("model.class_dropout", &C::model, &ModelConfig::class_dropout,
        "probability of the null class in training (classifier-free guidance)", 0, 1);
    t.b("model.channels_last", &C::model, &ModelConfig::channels_last,
        "image networks: NHWC memory format for weights and activations (the same values on "
        "the CPU). Off by default, on CUDA too, until a GPU benchmark says otherwise: NHWC "
        "convolutions are faster there, but GroupNorm on CUDA converts channels-last back to "
        "NCHW");
    t.e("model.checkpointing", &C::model, &ModelConfig::checkpointing,
        "activation checkpointing: none | blocks (every residual and attention block of ddpm, "
        "ncsnpp, adm, ncsn, ncsnv2_* recomputes its activations in backward instead of storing "
        "them) | attention (attention blocks only; ddpm, ncsnpp, adm); same gradients, less "
        "memory, more compute");
    t.e("model.precond", &C::model, &ModelConfig::precond,
        "EDM preconditioning of the network, D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) "
        "(Karras et al. 2022 Table 1): none | vp | ve | edm; needs training.continuous=true and "
        "model.name mlp, ddpm, ncsnpp (positional embedding) or adm; edm2 (EDM2's own, EDM's "
        "edm with model.sigma_data) needs edm");
    t.d("model.sigma_data", &C::model, &ModelConfig::sigma_data,
        "model.precond=edm and training.loss=edm: the data's standard deviation", 1e-12);
    t.i("model.dims", &C::model, &ModelConfig::dims,
        "adm: signal dimensions, 1 ([C, L] = [num_channels, image_size] vectors), 2 (images) or "
        "3 ([C, depth, S, S] vectors)", 1, 3);
    t.i("model.num_heads", &C::model, &ModelConfig::num_heads, "adm: attention heads", 1, 1024);
    t.i("model.num_head_channels", &C::model, &ModelConfig::num_head_channels,
        "adm: channels per attention head (overrides num_heads); -1 = off", -1, 1 << 16);
    t.i("model.num_heads_upsample", &C::model, &ModelConfig::num_heads_upsample,
        "adm: heads in the decoder's attention; -1 = num_heads", -1, 1024);
    t.b("model.use_scale_shift_norm", &C::model, &ModelConfig::use_scale_shift_norm,
        "adm: FiLM conditioning, GroupNorm(h)(1 + scale) + shift");
    t.b("model.resblock_updown", &C::model, &ModelConfig::resblock_updown,
        "adm: residual blocks for up/down-sampling");
    t.b("model.use_new_attention_order", &C::model, &ModelConfig::use_new_attention_order,
        "adm: split q/k/v before heads (QKVAttention) instead of after (legacy)");
    t.vi("model.edm2_channel_mult", &C::model, &ModelConfig::edm2_channel_mult,
         "edm2: channel multiplier per level (channel_mult; model.ch_mult is not read)", 1, 64);
    t.i("model.edm2_channel_mult_noise", &C::model, &ModelConfig::edm2_channel_mult_noise,
        "edm2: noise embedding width as a multiple of model.nf (channel_mult_noise); 0 = the "
        "first level's multiplier", 0, 64);
    t.i("model.edm2_channel_mult_emb", &C::model, &ModelConfig::edm2_channel_mult_emb,
        "edm2: embedding width as a multiple of model.nf (channel_mult_emb); 0 = the largest "
        "multiplier", 0, 64);
    t.i("model.edm2_num_blocks", &C::model, &ModelConfig::edm2_num_blocks,
        "edm2: residual blocks per level (num_blocks; model.num_res_blocks is not read)", 0, 64);
    t.vi("model.edm2_attn_resolutions", &C::model, &ModelConfig::edm2_attn_resolutions,
         "edm2: sizes with self-attention (attn_resolutions; the innermost decoder block always "
         "has it; model.attn_resolutions is not read)", 1, 4096);
    t.i("model.edm2_channels_per_head", &C::model, &ModelConfig::edm2_channels_per_head,
        "edm2: channels per attention head (heads = block width / this, rounded down)", 1,
        1 << 16);
    t.i("model.edm2_logvar_channels", &C::model, &ModelConfig::edm2_logvar_channels,
        "edm2: Fourier features of the uncertainty head logvar(sigma) (logvar_channels)", 1,
        1 << 16);
    t.i("model.patch_size", &C::model, &ModelConfig::patch_size,
        "patch-based training: square patch side (0 = off; ddpm, ncsnpp, adm on images)", 0, 4096);
    t.i("model.patch_stride", &C::model, &ModelConfig::patch_stride,
        "patch-based sampling: stride of the overlapping tiles; 0 = patch_size / 2", 0, 4096);
    t.e("model.patch_sampling", &C::model, &ModelConfig::patch_sampling,
        "patch-based sampling: tiles (average overlapping patches) | full (whole image at once)");
    t.vd("model.analytic_means", &C::model, &ModelConfig::analytic_means,
         "analytic: component means, K*D values (D = data.dim); empty: one component at 0");
    t.vd("model.analytic_weights", &C::model, &ModelConfig::analytic_weights,
         "analytic: K mixture weights (> 0); empty: equal", 0);
    t.d("model.analytic_std", &C::model, &ModelConfig::analytic_std,
        "analytic: isotropic component std when no covariances are given", 0);
    t.vd("model.analytic_covariances", &C::model, &ModelConfig::analytic_covariances,
         "analytic: K*D*D values, each component's covariance (symmetric positive definite)");

    t.e("training.sde", &C::training, &TrainingConfig::sde, "vesde | vpsde | subvpsde");
    t.b("training.continuous", &C::training, &TrainingConfig::continuous,
        "continuous time (true) or discrete N levels");
    t.b("training.reduce_mean", &C::training, &TrainingConfig::reduce_mean,
        "mean over dimensions (true) or half sum");
    t.b("training.likelihood_weighting", &C::training, &TrainingConfig::likelihood_weighting,
        "weight the loss by g(t)^2");
    t.e("training.loss", &C::training, &TrainingConfig::loss,
        "auto (dsm; smld/ddpm when discrete) | dsm | smld | ddpm | ssm | ssm_vr | esm (exact "
        "trace, data of at most 64 dimensions) | edm | edm_vp | edm_ve (EDM's losses on the "
        "denoiser; need model.precond) | edm2 (EDM2's loss with the learned uncertainty "
        "u(sigma), (lambda / e^u) ||D - y||^2 + u per element, sigma as edm; needs "
        "model.name=edm2)");
    t.e("training.ssm_projection", &C::training, &TrainingConfig::ssm_projection,
        "sliced score matching projections: rademacher | gaussian");
    t.i("training.ssm_num_projections", &C::training, &TrainingConfig::ssm_num_projections,
        "projections per sample", 1, 1024);
    t.e("training.timestep_sampler", &C::training, &TrainingConfig::timestep_sampler,
        "discrete levels (smld/ddpm): uniform | loss_second_moment (importance sampling by "
        "the last 10 losses per level, Nichol and Dhariwal 2021)");
    t.d("training.eps", &C::training, &TrainingConfig::eps, "smallest training time", 0, 0.5);
    t.d("training.p_mean", &C::training, &TrainingConfig::p_mean,
        "training.loss=edm or edm2: mean of ln sigma");
    t.d("training.p_std", &C::training, &TrainingConfig::p_std,
        "training.loss=edm or edm2: standard deviation of ln sigma", 1e-12);
    t.i("training.batch_size", &C::training, &TrainingConfig::batch_size,
        "global batch (all ranks together)", 1, 1 << 24);
    t.i("training.n_iters", &C::training, &TrainingConfig::n_iters, "training steps", 1);
    t.i("training.log_freq", &C::training, &TrainingConfig::log_freq, "steps between log lines", 1);
    t.i("training.snapshot_freq", &C::training, &TrainingConfig::snapshot_freq,
        "steps between checkpoints with EMA samples", 1);
    t.i("training.snapshot_freq_for_preemption", &C::training,
        &TrainingConfig::snapshot_freq_for_preemption, "steps between plain checkpoints", 1);
    t.b("training.snapshot_sampling", &C::training, &TrainingConfig::snapshot_sampling,
        "draw EMA samples at each snapshot");
    t.i("training.snapshot_num_samples", &C::training, &TrainingConfig::snapshot_num_samples,
        "samples per snapshot, shared by the ranks; 0 = 64 for images, sampling.batch_size "
        "otherwise", 0);
    t.i("training.keep_checkpoints", &C::training, &TrainingConfig::keep_checkpoints,
        "newest checkpoints kept", 1);
    t.i("training.keep_every", &C::training, &TrainingConfig::keep_every,
        "also keep checkpoints whose step is a multiple of this; 0 = none", 0);
    t.i("training.grad_accum", &C::training, &TrainingConfig::grad_accum,
        "micro-batches per rank per step (batch_size = per-rank micro-batch x ranks x this)", 1,
        1 << 20);
    t.i("training.nonfinite_patience", &C::training, &TrainingConfig::nonfinite_patience,
        "non-finite steps in a row that are skipped before training stops; 0 = stop at the first",
        0);
    t.e("training.zero_nonfinite_grads", &C::training, &TrainingConfig::zero_nonfinite_grads,
        "set NaN and infinite gradient entries to 0 after unscaling, before clipping, and take "
        "the step (EDM2's force_finite) instead of skipping it: auto (true for "
        "training.loss=edm2, else false) | true | false; a non-finite loss, and with "
        "precision.dtype=fp16 a loss-scale overflow, still skip the step");
    t.d("training.phema_snapshot_kimg", &C::training, &TrainingConfig::phema_snapshot_kimg,
        "model.phema_std: store every profile's weights whenever the images seen cross a multiple "
        "of N thousand (workdir/phema/), the input of `scorch phema`; needs model.phema_std; "
        "0 = off", 0);

    t.e("optim.optimizer", &C::optim, &OptimConfig::optimizer, "Adam | AdamW");
    t.d("optim.lr", &C::optim, &OptimConfig::lr, "learning rate after warm-up", 0);
    t.d("optim.beta1", &C::optim, &OptimConfig::beta1, "Adam beta1", 0, 0.999999);
    t.d("optim.beta2", &C::optim, &OptimConfig::beta2, "Adam beta2", 0, 0.999999999);
    t.d("optim.eps", &C::optim, &OptimConfig::eps, "Adam epsilon", 0);
    t.d("optim.weight_decay", &C::optim, &OptimConfig::weight_decay, "weight decay", 0);
    t.i("optim.warmup", &C::optim, &OptimConfig::warmup, "linear warm-up steps; 0 = none", 0);
    t.e("optim.schedule", &C::optim, &OptimConfig::schedule,
        "after warm-up: constant | inverse_sqrt (EDM2: lr / sqrt(max(step / optim.ref_steps, 1)))");
    t.i("optim.ref_steps", &C::optim, &OptimConfig::ref_steps,
        "inverse_sqrt: the step where the decay starts (EDM2's ref_batches)", 1);
    t.d("optim.grad_clip", &C::optim, &OptimConfig::grad_clip,
        "global gradient-norm clip; <= 0 = none");

    t.e("sampling.method", &C::sampling, &SamplingConfig::method,
        "pc (predictor-corrector) | ode (probability flow) | edm (Karras Heun) | ddim (VP) | "
        "dpm_solver_pp (DPM-Solver++ multistep) | unipc (UniPC, bh2)");
    t.e("sampling.predictor", &C::sampling, &SamplingConfig::predictor,
        "euler_maruyama | reverse_diffusion | ancestral_sampling | none");
    t.e("sampling.corrector", &C::sampling, &SamplingConfig::corrector, "none | langevin | ald");
    t.d("sampling.snr", &C::sampling, &SamplingConfig::snr, "corrector signal-to-noise ratio", 0);
    t.i("sampling.n_steps_each", &C::sampling, &SamplingConfig::n_steps_each,
        "corrector steps per noise level", 0, 1000);
    t.b("sampling.noise_removal", &C::sampling, &SamplingConfig::noise_removal,
        "return the noise-free mean of the last step");
    t.b("sampling.probability_flow", &C::sampling, &SamplingConfig::probability_flow,
        "predictor follows the probability-flow ODE");
    t.d("sampling.eps", &C::sampling, &SamplingConfig::eps,
        "last sampling time; 0 = 1e-3 (VP, sub-VP) or 1e-5 (VE)", 0, 0.5);
    t.i("sampling.num_steps", &C::sampling, &SamplingConfig::num_steps,
        "sampler steps (ode: its fixed-step solvers); 0 = the method's default: " +
            sampling_steps_defaults(), 0);
    t.i("sampling.batch_size", &C::sampling, &SamplingConfig::batch_size, "samples per batch", 1);
    t.e("sampling.ode_method", &C::sampling, &SamplingConfig::ode_method,
        "ode: euler | midpoint | heun | rk4 | explicit_adams | implicit_adams (fixed steps) | "
        "heun_euler | bosh3 | dopri5 | dopri8 (adaptive)");
    t.d("sampling.rtol", &C::sampling, &SamplingConfig::rtol,
        "ode: relative tolerance (adaptive methods; implicit_adams: corrector convergence)", 0);
    t.d("sampling.atol", &C::sampling, &SamplingConfig::atol,
        "ode: absolute tolerance (adaptive methods; implicit_adams: corrector convergence)", 0);
    t.d("sampling.edm_rho", &C::sampling, &SamplingConfig::edm_rho,
        "edm, and dpm_solver_pp / unipc with step_schedule=karras: exponent of the Karras sigma "
        "schedule", 0);
    t.d("sampling.edm_churn", &C::sampling, &SamplingConfig::edm_churn,
        "edm: S_churn (0 = deterministic)", 0);
    t.d("sampling.edm_s_tmin", &C::sampling, &SamplingConfig::edm_s_tmin,
        "edm: churn only for sigma >= S_tmin", 0);
    t.d("sampling.edm_s_tmax", &C::sampling, &SamplingConfig::edm_s_tmax,
        "edm: churn only for sigma <= S_tmax (0 = no limit)", 0);
    t.d("sampling.edm_s_noise", &C::sampling, &SamplingConfig::edm_s_noise,
        "edm: S_noise, scale of the churn noise", 0);
    t.d("sampling.ddim_eta", &C::sampling, &SamplingConfig::ddim_eta,
        "ddim: 0 deterministic, 1 the DDPM posterior variance", 0);
    t.i("sampling.order", &C::sampling, &SamplingConfig::order,
        "dpm_solver_pp, unipc: multistep order (unipc: of the predictor; its corrector adds one)",
        1, 3);
    t.e("sampling.sde_variant", &C::sampling, &SamplingConfig::sde_variant,
        "dpm_solver_pp: none (the ODE solver) | sde (DPM-Solver++(2M/3M) SDE, eta 1)");
    t.e("sampling.step_schedule", &C::sampling, &SamplingConfig::step_schedule,
        "dpm_solver_pp, unipc: noise levels from sigma(T) to sigma(eps) uniform in log sigma, "
        "i.e. log-SNR (log_snr), in sigma^(1/edm_rho) (karras) or in SDE time (time)");

    t.i("eval.num_samples", &C::eval, &EvalConfig::num_samples, "samples for metrics", 1);
    t.i("eval.batch_size", &C::eval, &EvalConfig::batch_size, "evaluation batch", 1);
    t.s("eval.feature_extractor", &C::eval, &EvalConfig::feature_extractor,
        "feature extractor: a TorchScript file (Inception convention) or a classifier "
        "checkpoint from `scorch classifier`");
    t.s("eval.reference", &C::eval, &EvalConfig::reference,
        "reference statistics (.npz from scorch stats, pytorch-fid or EDM) for eval.freq and "
        "scorch eval --workdir");
    t.i("eval.freq", &C::eval, &EvalConfig::freq,
        "training: FID/IS/KID of EMA samples every this many steps; 0 = off", 0);
    t.i("eval.freq_num_samples", &C::eval, &EvalConfig::freq_num_samples,
        "training: samples per evaluation at eval.freq", 2);
    t.i("eval.is_splits", &C::eval, &EvalConfig::is_splits,
        "Inception Score splits: 10 as the reference tools, 1 for the single-split convention", 1);

    t.e("dist.device", &C::dist, &DistConfig::device, "auto | cpu | cuda");
    t.e("dist.backend", &C::dist, &DistConfig::backend,
        "collectives: auto (nccl on CUDA, mpi on the CPU) | mpi | gloo (c10d, CPU) | nccl (c10d, CUDA)");
    t.d("dist.bucket_mb", &C::dist, &DistConfig::bucket_mb, "gradient bucket size in MB", 0.001);
    t.d("dist.timeout_s", &C::dist, &DistConfig::timeout_s,
        "seconds a collective may wait for the other ranks before the job is ended", 1);
    t.i("dist.check_every", &C::dist, &DistConfig::check_every,
        "steps between checks that all ranks hold the same parameters; 0 = off", 0);
    t.b("dist.tf32", &C::dist, &DistConfig::tf32,
        "CUDA: TF32 tensor cores for float32 matmuls (and attention), as PyTorch's "
        "torch.backends.cuda.matmul.allow_tf32, off there too (faster, about 10 bits of "
        "mantissa; no effect on the CPU)");
    t.b("dist.cudnn_tf32", &C::dist, &DistConfig::cudnn_tf32,
        "CUDA: TF32 tensor cores for float32 convolutions, as PyTorch's "
        "torch.backends.cudnn.allow_tf32, on there too (score_sde_pytorch's and EDM's "
        "convolutions run this way; no effect on the CPU)");
    t.b("dist.cudnn_benchmark", &C::dist, &DistConfig::cudnn_benchmark,
        "CUDA: let cuDNN time and pick the fastest convolution per shape (no effect on the CPU)");
    t.e("dist.shard_state", &C::dist, &DistConfig::shard_state,
        "ZeRO stage 1: none | optimizer (each rank keeps the Adam moments of 1/W of the "
        "parameters) | optimizer_ema (and the EMA copies); checkpoints stay whole");

    t.e("precision.dtype", &C::precision, &PrecisionConfig::dtype,
        "fp32 | bf16 | fp16 (autocast; weights, optimizer and EMA stay float32)");
    // A scale past float32's range overflows the first steps, which are skipped
    // while the scale backs off (as GradScaler's): a finite double is enough.
    t.d("precision.initial_scale", &C::precision, &PrecisionConfig::initial_scale,
        "fp16: initial dynamic loss scale", 1e-30)
        .float32 = false;
    t.i("precision.growth_interval", &C::precision, &PrecisionConfig::growth_interval,
        "fp16: finite steps in a row before the scale grows", 1);
    t.d("precision.growth_factor", &C::precision, &PrecisionConfig::growth_factor,
        "fp16: scale multiplier after growth_interval finite steps", 1);
    t.d("precision.backoff_factor", &C::precision, &PrecisionConfig::backoff_factor,
        "fp16: scale multiplier on overflow (the step is skipped)", 1e-6, 0.999999);

    t.s("preemption.signals", &C::preemption, &PreemptionConfig::signals,
        "signals that stop training with a snapshot and exit 75 (comma-separated, e.g. "
        "SIGUSR2,SIGTERM; empty: none)");
    t.d("preemption.grace_s", &C::preemption, &PreemptionConfig::grace_s,
        "seconds after the first signal before giving up on the snapshot; 0 = no limit", 0);

    t.b("monitor.enabled", &C::monitor, &MonitorConfig::enabled, "serve Prometheus metrics");
    t.s("monitor.bind", &C::monitor, &MonitorConfig::bind, "metrics bind address");
    t.i("monitor.port", &C::monitor, &MonitorConfig::port, "metrics port (+ local rank)", 1, 65535);
    t.s("monitor.targets_file", &C::monitor, &MonitorConfig::targets_file,
        "Prometheus file_sd JSON that rank 0 writes with every rank's host:port; empty = none");
    t.d("monitor.linger_s", &C::monitor, &MonitorConfig::linger_s,
        "seconds the metrics endpoints stay up after training ends (for a last scrape)", 0, 86400);
    return t.fields;
  }();
  return table;
}

const Field* find_field(const std::string& path) {
  for (const auto& f : fields())
    if (f.path == path) return &f;
  return nullptr;
}

}  // namespace scorch::config_table
