// Adam / AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019) as LibTorch's
// torch::optim takes them, in multi-tensor (_foreach_*) kernels, wrapped in
// score_sde's optimize_fn: lr = lr·min(step/warmup, 1) and clip_grad_norm_
// (losses.py).
#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/compat.h"
#include "core/error.h"
#include "core/host_read.h"
#include "train/chunks.h"

namespace scorch {

Optimizer::Optimizer(const torch::OrderedDict<std::string, torch::Tensor>& named_params,
                     const OptimConfig& config, bool fused)
    : config_(config), fused_(fused) {
  for (const auto& item : named_params) {
    if (!item.value().requires_grad()) continue;
    names_.push_back(item.key());
    params_.push_back(item.value());
  }

  state_.resize(params_.size());
}

Optimizer::~Optimizer() = default;

double Optimizer::lr_at(int64_t step) const {
  double lr = config_.lr;
  if (config_.warmup > 0)
    lr *= std::min(static_cast<double>(step) / static_cast<double>(config_.warmup), 1.0);
  if (config_.schedule == LrSchedule::kInverseSqrt)  // EDM2's learning_rate_schedule
    lr /= std::sqrt(std::max(static_cast<double>(step) / static_cast<double>(config_.ref_steps), 1.0));
  return lr;
}

torch::Tensor Optimizer::clip_grad_norm_tensor(const std::vector<torch::Tensor>& params,
                                               double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty())  // on the parameters' device, as the norm would be
    return torch::zeros({}, torch::TensorOptions(params.empty() ? torch::Device(torch::kCPU)
                                                                : params.front().device())
                                .dtype(torch::kDouble));
  // As clip_grad_norm_: the norm of the per-tensor norms, in the grads' dtype.
  // min(coef, 1) scales every gradient on the device, without reading coef
  // on the host: x · 1 is x exactly, so unclipped gradients keep their bits.
  const torch::Tensor total = torch::stack(torch::_foreach_norm(grads, 2)).norm(2);
  if (max_norm > 0) {
    const torch::Tensor coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
    for (const auto& [begin, end] : chunk_ranges(grads, chunk_elements(grads.front().device()))) {
      auto chunk = slice(grads, begin, end);
      compat::foreach_mul_(chunk, coef);
    }
  }
  return total;
}

double Optimizer::clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  return clip_grad_norm_tensor(params, max_norm).item<double>();
}

double Optimizer::step(int64_t step) {
  const double grad_norm = clip_gradients();
  apply(step);
  return grad_norm;
}

double Optimizer::clip_gradients() { return clip_gradients_tensor().item<double>(); }

torch::Tensor Optimizer::clip_gradients_tensor() {
  return clip_grad_norm_tensor(params_, config_.grad_clip);
}

// One Adam(W) step with the operations, in the order, that LibTorch's
// torch::optim::Adam / AdamW apply per parameter (so the same bits on the
// CPU), over all parameters at once. Parameters are grouped by their step
// count (one group unless some parameter missed a gradient).
bool Optimizer::fused_on_device() const {
  return fused_ && compat::has_fused_adam() && !params_.empty() && params_.front().is_cuda();
}

int64_t Optimizer::step_count(const State& s) const {
  return s.device_step.defined() ? static_cast<int64_t>(s.device_step.item<float>()) : s.step;
}

Optimizer::State& Optimizer::moments(size_t i) {
  State& s = state_[i];
  if (!s.exp_avg.defined()) {
    const torch::Tensor p = mine(i, params_[i]);  // sharded: a 1-D part
    s.exp_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
    s.exp_avg_sq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
  }
  return s;
}

// LibTorch's fused kernel over every parameter with a gradient (the same
// update up to rounding order; tests/gpu checks it against the foreach path):
// step counts on the device, incremented before and taken back after when
// the step is skipped, as torch.optim does with GradScaler.
void Optimizer::apply_fused(double lr, const torch::Tensor& skipped) {
  // Sharded: every stepped parameter counts the step (the checkpoint holds
  // every count), but the kernel sees only this rank's parts.
  std::vector<torch::Tensor> p, g, m, v, steps, local_steps;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].grad().defined()) continue;
    State& s = state_[i];
    if (!s.device_step.defined())
      s.device_step = torch::full({}, static_cast<float>(s.step),
                                  params_[i].options().dtype(torch::kFloat32));
    steps.push_back(s.device_step);
    s.stepped = true;
    if (!local(i)) continue;
    moments(i);
    p.push_back(mine(i, params_[i]));
    g.push_back(mine(i, params_[i].grad()));
    m.push_back(s.exp_avg);
    v.push_back(s.exp_avg_sq);
    local_steps.push_back(s.device_step);
  }
  if (steps.empty()) return;
  torch::_foreach_add_(steps, 1.0);
  const torch::Tensor found = skipped.defined() ? skipped.to(torch::kFloat32) : torch::Tensor();
  if (!p.empty())
    compat::fused_adam_(p, g, m, v, local_steps, lr, config_.beta1, config_.beta2,
                        config_.weight_decay, config_.eps, config_.optimizer == OptimizerName::kAdamW,
                        found);
  if (found.defined()) torch::_foreach_sub_(steps, std::vector<torch::Tensor>(steps.size(), found));
}

// One Adam(W) step with the operations, in the order, that LibTorch's
// torch::optim::Adam / AdamW apply per parameter (so the same bits on the
// CPU), over all parameters at once. Parameters are grouped by their step
// count (one group unless some parameter missed a gradient).
void Optimizer::apply(int64_t step, const torch::Tensor& skipped) {
  torch::NoGradGuard no_grad;
  const double lr = lr_at(step);
  if (fused_on_device()) {
    apply_fused(lr, skipped);
  } else {
    // Every rank reads the same flag: a skipped step changes nothing anywhere,
    // so there is nothing to gather either.
    if (skipped.defined() && read_scalar(skipped) != 0) return;
    apply_foreach(lr);
  }
  // Sharded: each rank updated its part; now every rank gets every part.
  if (shards_) shards_->all_gather(params_, *comm_);
}

void Optimizer::apply_foreach(double lr) {
  const double beta1 = config_.beta1, beta2 = config_.beta2;
  const double wd = config_.weight_decay;
  const bool adamw = config_.optimizer == OptimizerName::kAdamW;
  std::map<int64_t, std::vector<size_t>> by_count;  // step count after this step -> parameters
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].grad().defined()) continue;
    const int64_t count = ++state_[i].step;  // sharded: counted for every parameter
    state_[i].stepped = true;
    if (!local(i)) continue;
    moments(i);
    by_count[count].push_back(i);
  }
  for (const auto& [count, members] : by_count) {
    std::vector<torch::Tensor> p, g, m, v;
    for (size_t i : members) {
      p.push_back(mine(i, params_[i]));
      g.push_back(mine(i, params_[i].grad()));
      m.push_back(state_[i].exp_avg);
      v.push_back(state_[i].exp_avg_sq);
    }
    const double bias_correction1 = 1 - std::pow(beta1, count);
    const double bias_correction2 = 1 - std::pow(beta2, count);
    for (const auto& [begin, end] : chunk_ranges(p, chunk_elements(p.front().device()))) {
      auto pc = slice(p, begin, end), gc = slice(g, begin, end);
      auto mc = slice(m, begin, end), vc = slice(v, begin, end);
      if (adamw && wd != 0) torch::_foreach_mul_(pc, 1 - lr * wd);  // decoupled decay
      if (!adamw && wd != 0) gc = torch::_foreach_add(gc, pc, wd);  // L2 term in the gradient
      torch::_foreach_mul_(mc, beta1);
      torch::_foreach_add_(mc, gc, 1 - beta1);
      torch::_foreach_mul_(vc, beta2);
      torch::_foreach_addcmul_(vc, gc, gc, 1 - beta2);
      std::vector<torch::Tensor> denom = torch::_foreach_sqrt(vc);
      torch::_foreach_div_(denom, std::sqrt(bias_correction2));
      torch::_foreach_add_(denom, config_.eps);
      torch::_foreach_addcdiv_(pc, mc, denom, -lr / bias_correction1);
    }
  }
}

void Optimizer::zero_grad() {
  for (auto& p : params_) p.mutable_grad().reset();
}

void Optimizer::shard(std::shared_ptr<const ParamShards> shards, Communicator* comm) {
  TORCH_CHECK(shards && comm, "Optimizer::shard needs a split and a communicator");
  TORCH_CHECK(shards->size() == params_.size(), "Optimizer::shard: the split has ",
              shards->size(), " tensors, the optimizer ", params_.size());
  for (const auto& s : state_)
    TORCH_CHECK(!s.exp_avg.defined() && s.step == 0, "Optimizer::shard after a step");
  shards_ = std::move(shards);
  comm_ = comm;
}

int64_t Optimizer::state_bytes() const {
  int64_t bytes = 0;
  for (const auto& s : state_)
    if (s.exp_avg.defined())
      bytes += (s.exp_avg.numel() + s.exp_avg_sq.numel()) * static_cast<int64_t>(s.exp_avg.element_size());
  return bytes;
}

std::map<std::string, torch::Tensor> Optimizer::gather_state_dict(Communicator& comm) const {
  std::map<std::string, torch::Tensor> out;
  if (shards_) {
    TORCH_CHECK(&comm == comm_, "Optimizer::gather_state_dict: not the sharding's communicator");
    // Every rank's parts to rank 0. A parameter is stepped on every rank
    // alike (the gradients are all-reduced), so step counts agree.
    std::vector<torch::Tensor> m, v;
    for (const auto& s : state_) {
      m.push_back(s.exp_avg);
      v.push_back(s.exp_avg_sq);
    }
    const auto dtype = params_.empty() ? torch::kFloat : params_.front().scalar_type();
    const auto whole_m = shards_->gather_to_root(m, dtype, comm);
    const auto whole_v = shards_->gather_to_root(v, dtype, comm);
    if (whole_m.empty()) return out;  // not rank 0
    for (size_t i = 0; i < params_.size(); ++i) {
      if (!state_[i].stepped) continue;
      out[names_[i] + ".exp_avg"] = whole_m[i];
      out[names_[i] + ".exp_avg_sq"] = whole_v[i];
      out[names_[i] + ".step"] = torch::tensor(step_count(state_[i]), torch::kInt64);
    }
    return out;
  }
  if (comm.rank() != 0) return out;
  for (size_t i = 0; i < params_.size(); ++i) {
    const State& s = state_[i];
    if (!s.exp_avg.defined()) continue;
    out[names_[i] + ".exp_avg"] =
        s.exp_avg.detach().to(torch::TensorOptions(torch::kCPU), false, /*copy=*/true);
    out[names_[i] + ".exp_avg_sq"] =
        s.exp_avg_sq.detach().to(torch::TensorOptions(torch::kCPU), false, /*copy=*/true);
    out[names_[i] + ".step"] = torch::tensor(step_count(s), torch::kInt64);
  }
  return out;
}

void Optimizer::load_state_dict(const std::map<std::string, torch::Tensor>& state) {
  static const char* const kSuffixes[] = {".exp_avg", ".exp_avg_sq", ".step"};
  size_t used = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = names_[i];
    const torch::Tensor& p = params_[i];
    torch::Tensor entries[3];
    int found = 0;
    for (int k = 0; k < 3; ++k) {
      auto it = state.find(name + kSuffixes[k]);
      if (it != state.end()) {
        entries[k] = it->second;
        ++found;
      }
    }
    if (found == 0) {
      state_[i] = State{};
      continue;
    }
    SCORCH_CHECK(found == 3, "optimizer state of parameter '", name,
                 "' is incomplete: it needs exp_avg, exp_avg_sq and step");
    for (int k = 0; k < 2; ++k) {
      SCORCH_CHECK(entries[k].sizes() == p.sizes(), "optimizer state '", name, kSuffixes[k],
                   "' has shape ", entries[k].sizes(), " but the parameter has ", p.sizes());
    }
    SCORCH_CHECK(entries[2].numel() == 1, "optimizer state '", name,
                 ".step' must be a scalar, got shape ", entries[2].sizes());
    // Copies in the parameter's device, dtype and layout, so the optimizer
    // never aliases the caller's tensors.
    const auto opts = p.options().requires_grad(false);
    State& s = state_[i];
    s.step = entries[2].item<int64_t>();
    s.device_step = torch::Tensor();  // rebuilt from s.step by the next fused step
    s.stepped = true;
    if (shards_) {  // this rank's part of the whole tensors
      s.exp_avg = local(i) ? shards_->local_of(i, entries[0]).to(opts, false, /*copy=*/true)
                           : torch::Tensor();
      s.exp_avg_sq = local(i) ? shards_->local_of(i, entries[1]).to(opts, false, /*copy=*/true)
                              : torch::Tensor();
      used += 3;
      continue;
    }
    s.exp_avg = torch::empty_like(p, opts, torch::MemoryFormat::Preserve).copy_(entries[0]);
    s.exp_avg_sq = torch::empty_like(p, opts, torch::MemoryFormat::Preserve).copy_(entries[1]);
    used += 3;
  }
  if (used != state.size()) {
    for (const auto& item : state) {
      bool known = false;
      for (const auto& name : names_) {
        for (const char* suffix : kSuffixes) known = known || item.first == name + suffix;
      }
      SCORCH_CHECK(known, "optimizer state '", item.first,
                   "' names no trainable parameter of this model");
    }
  }
}

}  // namespace scorch
