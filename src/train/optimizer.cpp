// Adam / AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019) through LibTorch's
// torch::optim, wrapped in score_sde's optimize_fn: lr = lr·min(step/warmup, 1)
// and clip_grad_norm_ (losses.py; reference score-sde.md §2).
#include "train/optimizer.h"

#include <algorithm>
#include <sstream>
#include <type_traits>

#include "core/error.h"

namespace scorch {
namespace {

// torch::optim keys per-parameter state by the parameter's TensorImpl: as a
// string of its address in LibTorch 1.x, as the void* itself in 2.x. The map's
// key type tells which, so no version test is needed.
template <typename StateMap>
typename StateMap::key_type state_key(const StateMap&, const torch::Tensor& p) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream out;  // what c10::guts::to_string(TensorImpl*) writes
    out << p.unsafeGetTensorImpl();
    return out.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

// Reads (step, exp_avg, exp_avg_sq) of one parameter; false if it has none.
template <typename ParamState>
bool read_state(const torch::optim::Optimizer& opt, const torch::Tensor& p, int64_t* step,
                torch::Tensor* exp_avg, torch::Tensor* exp_avg_sq) {
  const auto& state = opt.state();
  auto it = state.find(state_key(state, p));
  if (it == state.end()) return false;
  const auto& s = static_cast<const ParamState&>(*it->second);
  *step = s.step();
  *exp_avg = s.exp_avg();
  *exp_avg_sq = s.exp_avg_sq();
  return true;
}

template <typename ParamState>
void write_state(torch::optim::Optimizer& opt, const torch::Tensor& p, int64_t step,
                 const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq) {
  auto s = std::make_unique<ParamState>();
  s->step(step);
  s->exp_avg(exp_avg);
  s->exp_avg_sq(exp_avg_sq);
  auto& state = opt.state();
  state[state_key(state, p)] = std::move(s);
}

}  // namespace

Optimizer::Optimizer(const torch::OrderedDict<std::string, torch::Tensor>& named_params,
                     const OptimConfig& config)
    : config_(config) {
  for (const auto& item : named_params) {
    if (!item.value().requires_grad()) continue;
    names_.push_back(item.key());
    params_.push_back(item.value());
  }
  const auto betas = std::make_tuple(config.beta1, config.beta2);
  if (config.optimizer == OptimizerName::kAdam) {
    // Adam's weight_decay is an L2 term added to the gradient, as in PyTorch.
    impl_ = std::make_unique<torch::optim::Adam>(params_, torch::optim::AdamOptions(config.lr)
                                                              .betas(betas)
                                                              .eps(config.eps)
                                                              .weight_decay(config.weight_decay));
  } else {
    // AdamW decays decoupled from the gradient: p ← p·(1 − lr·wd) first.
    impl_ = std::make_unique<torch::optim::AdamW>(params_, torch::optim::AdamWOptions(config.lr)
                                                               .betas(betas)
                                                               .eps(config.eps)
                                                               .weight_decay(config.weight_decay));
  }
}

Optimizer::~Optimizer() = default;

double Optimizer::lr_at(int64_t step) const {
  if (config_.warmup <= 0) return config_.lr;
  return config_.lr *
         std::min(static_cast<double>(step) / static_cast<double>(config_.warmup), 1.0);
}

double Optimizer::clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return 0.0;
  // As clip_grad_norm_: the norm of the per-tensor norms, in the grads' dtype.
  std::vector<torch::Tensor> norms;
  norms.reserve(grads.size());
  for (const auto& g : grads) norms.push_back(g.norm(2));
  const torch::Tensor total = torch::stack(norms).norm(2);
  const double total_norm = total.item<double>();
  if (max_norm > 0) {
    const torch::Tensor coef = max_norm / (total + 1e-6);
    if (coef.item<double>() < 1.0) {
      for (auto& g : grads) g.mul_(coef.to(g.device()));
    }
  }
  return total_norm;
}

double Optimizer::step(int64_t step) {
  const double grad_norm = clip_gradients();
  apply(step);
  return grad_norm;
}

double Optimizer::clip_gradients() { return clip_grad_norm(params_, config_.grad_clip); }

void Optimizer::apply(int64_t step) {
  for (auto& group : impl_->param_groups()) group.options().set_lr(lr_at(step));
  impl_->step();
}

void Optimizer::zero_grad() {
  for (auto& p : params_) {
    if (p.grad().defined()) {
      p.mutable_grad().detach_();
      p.mutable_grad().zero_();
    }
  }
}

std::map<std::string, torch::Tensor> Optimizer::state_dict() const {
  std::map<std::string, torch::Tensor> out;
  const bool adamw = config_.optimizer == OptimizerName::kAdamW;
  for (size_t i = 0; i < params_.size(); ++i) {
    int64_t step = 0;
    torch::Tensor exp_avg, exp_avg_sq;
    const bool has = adamw ? read_state<torch::optim::AdamWParamState>(*impl_, params_[i], &step,
                                                                       &exp_avg, &exp_avg_sq)
                           : read_state<torch::optim::AdamParamState>(*impl_, params_[i], &step,
                                                                      &exp_avg, &exp_avg_sq);
    if (!has) continue;
    out[names_[i] + ".exp_avg"] =
        exp_avg.detach().to(torch::TensorOptions(torch::kCPU), false, /*copy=*/true);
    out[names_[i] + ".exp_avg_sq"] =
        exp_avg_sq.detach().to(torch::TensorOptions(torch::kCPU), false, /*copy=*/true);
    out[names_[i] + ".step"] = torch::tensor(step, torch::kInt64);
  }
  return out;
}

void Optimizer::load_state_dict(const std::map<std::string, torch::Tensor>& state) {
  static const char* const kSuffixes[] = {".exp_avg", ".exp_avg_sq", ".step"};
  size_t used = 0;
  const bool adamw = config_.optimizer == OptimizerName::kAdamW;
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
      impl_->state().erase(state_key(impl_->state(), p));
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
    const int64_t step = entries[2].item<int64_t>();
    const auto opts = p.options().requires_grad(false);
    // A copy, so the optimizer never aliases the caller's tensors.
    torch::Tensor exp_avg = entries[0].detach().to(opts, false, /*copy=*/true);
    torch::Tensor exp_avg_sq = entries[1].detach().to(opts, false, /*copy=*/true);
    if (adamw) {
      write_state<torch::optim::AdamWParamState>(*impl_, p, step, exp_avg, exp_avg_sq);
    } else {
      write_state<torch::optim::AdamParamState>(*impl_, p, step, exp_avg, exp_avg_sq);
    }
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
