// The update half of a training step as Scorch took it before its
// multi-tensor kernels, one operation per parameter tensor: gradients zeroed
// in place, loss-scale unscaling per gradient, clip_grad_norm_ with a norm per
// gradient and two host reads, LibTorch's own torch::optim::Adam / AdamW, and
// score_sde's EMA per tensor. The multi-tensor step (train/optimizer.h,
// train/ema.h) must give the same bits (tests/train/multi_tensor_step_test.cpp);
// bench_step counts the operators of both.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "train/ema.h"

namespace scorch::testing {

class PerTensorStep {
 public:
  PerTensorStep(const torch::OrderedDict<std::string, torch::Tensor>& named, const OptimConfig& c,
                double ema_rate)
      : config_(c), ema_rate_(ema_rate) {
    torch::NoGradGuard no_grad;
    for (const auto& item : named) {
      if (!item.value().requires_grad()) continue;
      params_.push_back(item.value());
      shadow_.push_back(item.value().detach().clone());
    }
    const auto betas = std::make_tuple(c.beta1, c.beta2);
    if (c.optimizer == OptimizerName::kAdam) {
      adam_ = std::make_unique<torch::optim::Adam>(
          params_, torch::optim::AdamOptions(c.lr).betas(betas).eps(c.eps).weight_decay(c.weight_decay));
    } else {
      adam_ = std::make_unique<torch::optim::AdamW>(
          params_, torch::optim::AdamWOptions(c.lr).betas(betas).eps(c.eps).weight_decay(c.weight_decay));
    }
  }

  void zero_grad() {
    for (auto& p : params_) {
      if (p.grad().defined()) {
        p.mutable_grad().detach_();
        p.mutable_grad().zero_();
      }
    }
  }

  void unscale(double scale) {
    if (scale == 1.0) return;
    torch::NoGradGuard no_grad;
    for (const auto& p : params_)
      if (p.grad().defined()) p.grad().mul_(1.0 / scale);
  }

  // clip_grad_norm_ as it was: the coefficient read on the host.
  double clip() {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> grads, norms;
    for (const auto& p : params_)
      if (p.grad().defined()) grads.push_back(p.grad());
    if (grads.empty()) return 0.0;
    for (const auto& g : grads) norms.push_back(g.norm(2));
    const torch::Tensor total = torch::stack(norms).norm(2);
    const double total_norm = total.item<double>();
    if (config_.grad_clip > 0) {
      const torch::Tensor coef = config_.grad_clip / (total + 1e-6);
      if (coef.item<double>() < 1.0) {
        for (auto& g : grads) g.mul_(coef.to(g.device()));
      }
    }
    return total_norm;
  }

  void adam(int64_t step) {
    const double lr = config_.warmup <= 0
                          ? config_.lr
                          : config_.lr * std::min(static_cast<double>(step) / config_.warmup, 1.0);
    for (auto& group : adam_->param_groups()) group.options().set_lr(lr);
    adam_->step();
  }

  void ema() {
    torch::NoGradGuard no_grad;
    ++updates_;
    const double one_minus_decay = 1.0 - Ema::warmup_decay(ema_rate_, updates_);
    for (size_t i = 0; i < params_.size(); ++i) {
      const torch::Tensor p = params_[i].detach().to(torch::kFloat32);
      shadow_[i].sub_((shadow_[i] - p).mul_(one_minus_decay));
    }
  }

  const std::vector<torch::Tensor>& shadow() const { return shadow_; }
  const std::vector<torch::Tensor>& params() const { return params_; }

 private:
  OptimConfig config_;
  double ema_rate_;
  int64_t updates_ = 0;
  std::vector<torch::Tensor> params_, shadow_;
  std::unique_ptr<torch::optim::Optimizer> adam_;
};

}  // namespace scorch::testing
