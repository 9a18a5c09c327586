// Adam / AdamW with score_sde's optimize_fn around them: linear learning-rate
// warm-up and global-norm gradient clipping (score_sde losses.py), with state
// that a checkpoint can save and restore exactly.
//
//   Optimizer opt(model->named_parameters(), config.optim);
//   opt.zero_grad(); loss.backward(); // (+ gradient all-reduce)
//   double grad_norm = opt.step(step);  // step: value before the increment
//   checkpoint.optimizer = opt.gather_state_dict(comm);   // rank 0
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"  // OptimConfig
#include "dist/communicator.h"
#include "dist/param_shards.h"

namespace scorch {

// Not thread-safe: one owner (the trainer) calls it from one thread.
class Optimizer {
 public:
  // Optimises the parameters of `named_params` (module->named_parameters())
  // that require grad; frozen ones (e.g. a Gaussian Fourier W) are left out.
  // The tensors are shared with the model, not copied; they must outlive this
  // object and keep their shapes and devices.
  // `fused`: on CUDA, LibTorch 2.x's fused Adam(W) kernel instead of the
  // multi-tensor one (false: the same foreach kernels as on the CPU).
  // Multi-tensor calls cover cache-sized chunks on the CPU, all parameters
  // at once on CUDA (train/chunks.h).
  Optimizer(const torch::OrderedDict<std::string, torch::Tensor>& named_params,
            const OptimConfig& config, bool fused = true);
  ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One optimize_fn call: sets lr = lr_at(step), clips gradients to a global
  // L2 norm of optim.grad_clip (if > 0), then takes an Adam(W) step. The
  // Adam(W) arithmetic is torch::optim::Adam / AdamW's, operation for
  // operation, in multi-tensor _foreach_* kernels (about ten per step for
  // any number of parameters; the same bits as the per-tensor loop).
  // `step` is the training step before its increment (score_sde: step 0 has
  // lr 0). Parameters without a gradient are skipped. Returns the global L2
  // norm of the gradients before clipping (one device sync).
  double step(int64_t step);
  // The two halves of step(), for callers that decide in between whether to
  // take the step (mixed precision, non-finite gradients): clip_gradients()
  // clips and returns the pre-clip norm; apply(step) sets the learning rate
  // and takes the Adam(W) step.
  double clip_gradients();
  // clip_gradients without the host read: the pre-clip norm stays a 0-dim
  // tensor on the gradients' device.
  torch::Tensor clip_gradients_tensor();
  // `skipped` (optional, a 0-dim tensor, 1 to skip): a skipped step changes
  // no parameter, moment or step count. With the fused kernel (CUDA,
  // LibTorch 2.x) the skip is decided on the device, as GradScaler does, and
  // nothing is read on the host; the multi-tensor path reads the flag (a
  // memory read on the CPU, a device sync on a GPU without the fused kernel).
  void apply(int64_t step, const torch::Tensor& skipped = {});

  // Drops every gradient (set to none, PyTorch's default): the next backward
  // writes fresh ones instead of adding to zeros.
  void zero_grad();

  // lr * min(step / warmup, 1) (warmup <= 0: no warm-up), divided for
  // optim.schedule=inverse_sqrt by sqrt(max(step / ref_steps, 1)): EDM2's
  // learning_rate_schedule with t / t_ref counted in steps (images / batch
  // size on both sides).
  double lr_at(int64_t step) const;

  // Global-norm clipping exactly as torch.nn.utils.clip_grad_norm_(params,
  // max_norm): total = ||(||g_1||, ..., ||g_n||)||_2 over defined gradients,
  // coef = max_norm / (total + 1e-6), gradients scaled by coef only when
  // coef < 1 (max_norm <= 0: never). Returns the pre-clip total norm.
  static double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);
  // The same, leaving the norm on the gradients' device (a 0-dim tensor; no
  // host sync): the gradients are scaled by min(coef, 1) on the device.
  static torch::Tensor clip_grad_norm_tensor(const std::vector<torch::Tensor>& params,
                                             double max_norm);

  // Adam state per parameter name, for the checkpoint's `optimizer` key, on
  // rank 0 of `comm` (empty on the other ranks; sharded, a collective that
  // every rank of the sharding's communicator calls): "<name>.exp_avg",
  // "<name>.exp_avg_sq" (shape and dtype of the parameter) and "<name>.step"
  // (int64 scalar). Parameters that have not
  // been stepped yet have no entries. Tensors are CPU copies.
  std::map<std::string, torch::Tensor> gather_state_dict(Communicator& comm) const;

  // Restores gather_state_dict() output so that training continues
  // bit-identically. Entries go to each parameter's device and dtype. Throws scorch::Error
  // naming the key if an entry names an unknown parameter, has the wrong
  // shape, or a parameter has only some of its three entries.
  void load_state_dict(const std::map<std::string, torch::Tensor>& state);

  // dist.shard_state (ZeRO stage 1): from now on this rank keeps Adam moments
  // only for its shard of the parameters (`shards`, made over params()), and
  // apply() updates only that shard, then all-gathers the parameters over
  // `comm`, so every rank ends the step with every updated parameter. Clipping
  // still sees the whole (all-reduced) gradient, so the global norm and the
  // update are the unsharded ones. gather_state_dict(comm) becomes a
  // collective that gathers the whole state to rank 0; load_state_dict()
  // takes whole state, as saved by any world size, and keeps this rank's part.
  // REQUIRES: before the first step; `comm` outlives this object.
  void shard(std::shared_ptr<const ParamShards> shards, Communicator* comm);
  bool sharded() const { return shards_ != nullptr; }
  // Bytes of the moment tensors this rank holds now.
  int64_t state_bytes() const;

  // Parameter names in optimisation order.
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<torch::Tensor>& params() const { return params_; }

 private:
  OptimConfig config_;
  bool fused_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> params_;
  struct State {  // one parameter's Adam moments; undefined until its first step
    torch::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
    torch::Tensor device_step;  // fused kernel: the step count, float32 0-dim on the device
    bool stepped = false;       // has state: a step reached it (even skipped, fused) or a load
  };
  std::vector<State> state_;  // parallel to params_; sharded: moments of this rank's part only
  std::shared_ptr<const ParamShards> shards_;  // null unless sharded
  Communicator* comm_ = nullptr;               // sharded: not owned
  bool local(size_t i) const { return !shards_ || shards_->local_numel(i) > 0; }
  // Parameter i (or its gradient), or its part in this rank's shard.
  torch::Tensor mine(size_t i, const torch::Tensor& t) const {
    return shards_ ? shards_->local(i, t) : t;
  }
  void apply_foreach(double lr);
  bool fused_on_device() const;
  State& moments(size_t i);  // parameter i's state, its moments allocated
  void apply_fused(double lr, const torch::Tensor& skipped);
  int64_t step_count(const State& s) const;
};

}  // namespace scorch
