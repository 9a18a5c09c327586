// Exponential moving averages of a model's trainable parameters, several at
// once: score_sde's warm-up form (ema.py) for model.ema_rate and each of
// model.ema_extra_rates, plus EDM's half-life-in-images form (Karras et al.
// 2022, training_loop.py) when model.ema_halflife_kimg > 0.
//
//   Ema ema(*model, config.model);            // shadows start as the weights
//   ... optimizer.step(step); ++step;
//   ema.update(*model, batch_size, images_seen_before_this_batch);
//   ema.store(*model); ema.copy_to(*model, ema.default_name()); sample(); ema.restore(*model);
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"  // ModelConfig
#include "dist/communicator.h"
#include "dist/param_shards.h"

namespace scorch {

// Shadows are float32 master copies on the parameters' device, whatever the
// parameters' dtype. Only parameters with requires_grad are tracked (as in
// score_sde); frozen parameters and buffers are left alone by copy_to.
// Parameters are matched by name (module.named_parameters()).
// Not thread-safe: the trainer owns it and calls it from one thread.
class Ema {
 public:
  // Clones the model's trainable parameters into every shadow. Throws
  // scorch::Error if a rate is outside [0, 1), the half-life is negative or
  // a phema std is outside (0, sqrt(1/12)].
  Ema(const torch::nn::Module& model, const ModelConfig& config);
  // dist.shard_state=optimizer_ema (ZeRO stage 1): every shadow holds only
  // this rank's part of the parameters (`shards`, made over the trainable
  // parameters in named_parameters order) and update() averages only that
  // part. copy_to() becomes a collective over `comm` (every rank calls it):
  // it all-gathers the averaged parameters into every rank's model;
  // gather_state_dict(comm) gathers the whole shadows to rank 0;
  // load_state_dict takes whole shadows and keeps this rank's part. `comm`
  // must outlive this object.
  Ema(const torch::nn::Module& model, const ModelConfig& config,
      std::shared_ptr<const ParamShards> shards, Communicator* comm);

  // One update after an optimizer step. `batch_size` is the global batch;
  // `images_before` the images consumed before this batch (EDM's cur_nimg,
  // so the first update has 0 and copies the weights). Increments
  // num_updates first, then for each EMA: s ← s − (1 − decay)(s − p); a
  // power-function profile has decay = phema_beta(std, images_before +
  // batch_size, batch_size), as EDM2's update(cur_nimg, batch_size) after
  // cur_nimg += batch_size (the first update copies the weights).
  // `skipped` (optional, a 0-dim tensor on the parameters' device, 1 when the
  // optimizer skipped the step) leaves every shadow and num_updates as they
  // were, decided on the device: nothing is read on the host.
  // REQUIRES: `model` has the parameter names and shapes given at construction.
  void update(const torch::nn::Module& model, int64_t batch_size, int64_t images_before,
              const torch::Tensor& skipped = {});

  // EMA names, model.ema_rate's first: rates as the shortest decimal that
  // reads back exactly ("0.9999"), then "edm_<halflife_kimg>" ("edm_500"),
  // then "phema_<std>" ("phema_0.05") for each of model.phema_std.
  const std::vector<std::string>& names() const { return names_; }
  const std::string& default_name() const { return names_.front(); }
  // The names an Ema built from `config` has (no validation).
  static std::vector<std::string> configured_names(const ModelConfig& config);
  // model.phema_std as kept here (duplicates dropped), and a profile's name.
  const std::vector<double>& phema_std() const { return phema_std_; }
  static std::string phema_name(double sigma) { return "phema_" + format_number(sigma); }

  // Shadow tensors of one EMA, name -> [param shape] float32 (shared, not
  // copied; sharded: this rank's 1-D parts). Throws scorch::Error for an
  // unknown EMA name.
  std::map<std::string, torch::Tensor> shadow(const std::string& ema_name) const;

  // Writes EMA `ema_name` into the model's trainable parameters (cast to
  // their dtype). Use store() first and restore() after to get them back.
  void copy_to(torch::nn::Module& model, const std::string& ema_name) const;
  // Keeps a copy of the model's trainable parameters; restore() writes it
  // back and drops it. REQUIRES for restore: a store() before it.
  void store(const torch::nn::Module& model);
  void restore(torch::nn::Module& model);

  bool sharded() const { return shards_ != nullptr; }
  // Bytes of the shadow tensors this rank holds.
  int64_t state_bytes() const;

  // Updates applied so far (read on the host: a device sync).
  int64_t num_updates() const;

  // For the checkpoint's `ema` key: EMA name -> parameter name -> tensor
  // (CPU copies) on rank 0 of `comm`, empty on the other ranks. A collective
  // when sharded: every rank of `comm` (the communicator given at
  // construction) calls it; unsharded, the other ranks return at once.
  std::map<std::string, std::map<std::string, torch::Tensor>> gather_state_dict(
      Communicator& comm) const;
  // Restores gather_state_dict() output: shadows and the update count. EMAs
  // of this object that `state` lacks (say, a rate added on resume) are
  // returned by name and restart from `model`'s current weights if given
  // (pass the model after loading its checkpoint weights), else keep their
  // values from construction. EMAs in `state` that are not configured are
  // ignored. Throws scorch::Error
  // naming the EMA and parameter if a tracked parameter is missing or has the
  // wrong shape; nothing is changed then.
  std::vector<std::string> load_state_dict(
      const std::map<std::string, std::map<std::string, torch::Tensor>>& state, int64_t num_updates,
      const torch::nn::Module* model = nullptr);

  // score_sde's decay for update number n (counted from 1):
  // min(rate, (1 + n) / (10 + n)).
  static double warmup_decay(double rate, int64_t n);
  // EDM's beta: half-life h = halflife_kimg·1000 images, h = min(h,
  // images_before·rampup_ratio) if rampup_ratio > 0; beta = 0.5^(batch /
  // max(h, 1e-8)).
  static double edm_beta(double halflife_kimg, double rampup_ratio, int64_t batch_size,
                         int64_t images_before);
  // "0.9999" for 0.9999: the shortest %g form that parses back to `value`.
  static std::string format_number(double value);

 private:
  static void edm_large_beta(std::vector<torch::Tensor>& shadows,
                             const std::vector<torch::Tensor>& p32, float beta,
                             const torch::Tensor& applied);
  static void edm_small_beta(std::vector<torch::Tensor>& shadows,
                             const std::vector<torch::Tensor>& p32, float beta,
                             const torch::Tensor& applied);
  enum class Kind { kWarmup, kEdm, kPhema };
  struct Average {
    std::string name;
    double rate = 0;  // warm-up form: model.ema_rate; power function: sigma_rel
    Kind kind = Kind::kWarmup;
    std::vector<torch::Tensor> shadow;  // aligned with param_names_
  };
  std::vector<torch::Tensor> tracked(const torch::nn::Module& model) const;
  // Parameter i's part that this object averages: all of it, or this rank's.
  torch::Tensor mine(size_t i, const torch::Tensor& t) const {
    return shards_ ? shards_->local(i, t) : t;
  }

  std::vector<std::string> param_names_;
  std::vector<std::vector<int64_t>> shape_;  // of each tracked parameter
  std::vector<Average> averages_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> stored_;
  std::vector<double> phema_std_;
  double halflife_kimg_ = 0;
  double rampup_ratio_ = 0;
  torch::Tensor num_updates_;  // float64 0-dim on the parameters' device
  std::shared_ptr<const ParamShards> shards_;  // null unless sharded
  Communicator* comm_ = nullptr;               // sharded: not owned
};

}  // namespace scorch
