// Parameter EMAs: score_sde's ema.py (decay = min(rate, (1+n)/(10+n)),
// s ← s − (1−decay)(s − p)) and EDM's training_loop.py (half-life counted in
// images with a ramp-up, p_ema ← lerp(p, p_ema, beta)) and EDM2's phema.py
// (power-function beta from the images seen), in float32.
#include "train/ema.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/compat.h"
#include "core/error.h"
#include "train/chunks.h"
#include "train/phema.h"

namespace scorch {
namespace {

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

std::string Ema::format_number(double value) {
  char buf[64];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {  // 500, not 5e+02
    std::snprintf(buf, sizeof(buf), "%.0f", value);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

double Ema::warmup_decay(double rate, int64_t n) {
  return std::min(rate, (1.0 + static_cast<double>(n)) / (10.0 + static_cast<double>(n)));
}

double Ema::edm_beta(double halflife_kimg, double rampup_ratio, int64_t batch_size,
                     int64_t images_before) {
  double halflife_nimg = halflife_kimg * 1000.0;
  if (rampup_ratio > 0) {
    halflife_nimg = std::min(halflife_nimg, static_cast<double>(images_before) * rampup_ratio);
  }
  return std::pow(0.5, static_cast<double>(batch_size) / std::max(halflife_nimg, 1e-8));
}

Ema::Ema(const torch::nn::Module& model, const ModelConfig& config)
    : Ema(model, config, nullptr, nullptr) {}

Ema::Ema(const torch::nn::Module& model, const ModelConfig& config,
         std::shared_ptr<const ParamShards> shards, Communicator* comm)
    : halflife_kimg_(config.ema_halflife_kimg),
      rampup_ratio_(config.ema_rampup_ratio),
      shards_(std::move(shards)),
      comm_(comm) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(!shards_ || comm_, "Ema: a sharded EMA needs a communicator");
  std::vector<torch::Tensor> params;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    param_names_.push_back(item.key());
    shape_.push_back(item.value().sizes().vec());
    params.push_back(item.value());
  }
  auto add = [&](const std::string& name, double rate, Kind kind) {
    if (std::find(names_.begin(), names_.end(), name) != names_.end()) return;
    Average avg{name, rate, kind, {}};
    for (size_t i = 0; i < params.size(); ++i) {
      const auto p = mine(i, params[i].detach());
      avg.shadow.push_back(p.to(p.options().dtype(torch::kFloat32), false, true));
    }
    averages_.push_back(std::move(avg));
    names_.push_back(name);
  };
  TORCH_CHECK(!shards_ || shards_->size() == params.size(), "Ema: the split has ",
              shards_ ? shards_->size() : 0, " tensors, the model ", params.size(),
              " trainable parameters");
  num_updates_ = torch::zeros(
      {}, torch::TensorOptions(params.empty() ? torch::Device(torch::kCPU) : params.front().device())
              .dtype(torch::kDouble));
  std::vector<double> rates = {config.ema_rate};
  rates.insert(rates.end(), config.ema_extra_rates.begin(), config.ema_extra_rates.end());
  for (double rate : rates) {
    SCORCH_CHECK(rate >= 0.0 && rate < 1.0, "model.ema_rate / model.ema_extra_rates: ", rate,
                 " is not an EMA rate; use a value in [0, 1), e.g. 0.9999");
    add(format_number(rate), rate, Kind::kWarmup);
  }
  SCORCH_CHECK(halflife_kimg_ >= 0.0, "model.ema_halflife_kimg: ", halflife_kimg_,
               " must be >= 0 (0 turns EDM's EMA off)");
  SCORCH_CHECK(rampup_ratio_ >= 0.0, "model.ema_rampup_ratio: ", rampup_ratio_,
               " must be >= 0 (0 means no ramp-up)");
  if (halflife_kimg_ > 0) add("edm_" + format_number(halflife_kimg_), 0.0, Kind::kEdm);
  for (double sigma : config.phema_std) {
    SCORCH_CHECK(sigma > 0 && sigma <= kPhemaStdMax, "model.phema_std: ", sigma,
                 " is not a power-function EMA's relative standard deviation; use values in "
                 "(0, 0.2886], e.g. [0.05, 0.1]");
    if (std::find(phema_std_.begin(), phema_std_.end(), sigma) != phema_std_.end()) continue;
    phema_std_.push_back(sigma);
    add(phema_name(sigma), sigma, Kind::kPhema);
  }
}

std::vector<std::string> Ema::configured_names(const ModelConfig& config) {
  std::vector<std::string> out;
  const auto add = [&](const std::string& name) {
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  };
  add(format_number(config.ema_rate));
  for (double rate : config.ema_extra_rates) add(format_number(rate));
  if (config.ema_halflife_kimg > 0) add("edm_" + format_number(config.ema_halflife_kimg));
  for (double sigma : config.phema_std) add(phema_name(sigma));
  return out;
}

std::vector<torch::Tensor> Ema::tracked(const torch::nn::Module& model) const {
  std::vector<torch::Tensor> params;
  params.reserve(param_names_.size());
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    TORCH_CHECK(params.size() < param_names_.size() && item.key() == param_names_[params.size()],
                "Ema: model parameter '", item.key(), "' does not match the EMA's parameters");
    params.push_back(item.value());
  }
  TORCH_CHECK(params.size() == param_names_.size(), "Ema: model has ", params.size(),
              " trainable parameters, the EMA tracks ", param_names_.size());
  return params;
}

void Ema::update(const torch::nn::Module& model, int64_t batch_size, int64_t images_before,
                 const torch::Tensor& skipped) {
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> params = tracked(model);
  // 1 for an applied step, 0 for a skipped one, on the device.
  const torch::Tensor applied =
      skipped.defined() ? 1 - skipped.to(torch::kDouble)
                        : torch::ones({}, num_updates_.options());
  num_updates_.add_(applied);
  const double edm_beta_now =
      halflife_kimg_ > 0 ? edm_beta(halflife_kimg_, rampup_ratio_, batch_size, images_before) : 0;
  // float32 views of the parameters (copies if not float32); sharded: of this
  // rank's parts, leaving out parameters with none.
  std::vector<torch::Tensor> p32;
  std::vector<size_t> index;  // p32[k] is parameter index[k]
  p32.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const auto p = mine(i, params[i]);
    if (shards_ && p.numel() == 0) continue;
    p32.push_back(p.scalar_type() == torch::kFloat32 ? p : p.to(torch::kFloat32));
    index.push_back(i);
  }
  if (p32.empty()) return;
  // (1 + n) / (10 + n) in float64 on the device: the host's arithmetic.
  const torch::Tensor warmup = (1.0 + num_updates_) / (10.0 + num_updates_);
  const auto f32 = [](const torch::Tensor& t) { return t.to(torch::kFloat32); };
  for (auto& avg : averages_) {
    std::vector<torch::Tensor> shadows;  // aligned with p32
    shadows.reserve(index.size());
    for (size_t i : index) shadows.push_back(avg.shadow[i]);
    // Every kind in multi-tensor kernels whose scalars are float32 0-dim
    // tensors on the device, the lists' own dtype (CUDA's multi-tensor route
    // takes nothing else). A float64 scalar was rounded to float32 inside
    // the float32 kernels before, so rounding it first gives the same bits.
    if (avg.kind == Kind::kEdm && static_cast<float>(edm_beta_now) < 0.5f) {  // lerp's test
      edm_small_beta(shadows, p32, static_cast<float>(edm_beta_now), f32(applied));
      continue;
    }
    if (avg.kind == Kind::kEdm) {
      edm_large_beta(shadows, p32, static_cast<float>(edm_beta_now), f32(applied));
      continue;
    }
    // s ← s − (s − p)(1 − decay), in three multi-tensor kernels per chunk;
    // a skipped step multiplies by 0 (s − p is finite: p was never stepped
    // to a non-finite value), so s keeps its bits.
    torch::Tensor one_minus_decay;
    if (avg.kind == Kind::kWarmup) {
      one_minus_decay = f32((1.0 - warmup.clamp_max(avg.rate)) * applied);
    } else {
      // Power function: beta = (1 - batch / t_next)^(gamma + 1), t_next the
      // images after this step (a host value: no device read).
      one_minus_decay = f32(applied * (1.0 - phema_beta(avg.rate,
                                                        static_cast<double>(images_before + batch_size),
                                                        static_cast<double>(batch_size))));
    }
    for (const auto& [begin, end] : chunk_ranges(p32, chunk_elements(p32.front().device()))) {
      auto shadow = slice(shadows, begin, end);
      std::vector<torch::Tensor> step = torch::_foreach_sub(shadow, slice(p32, begin, end));
      compat::foreach_mul_(step, one_minus_decay);
      torch::_foreach_sub_(shadow, step);
    }
  }
}

// EDM's EMA, s ← lerp(p, s, beta), as torch::lerp computes it, in
// multi-tensor kernels. For beta >= 1/2 lerp computes s − (s − p)(1 − beta),
// 1 − beta in float32 (exact for beta in [1/2, 1]), with one rounding after
// the multiply-add (a fused multiply-add on the CPU); s.add_(d, alpha) with
// d = s − p and alpha = −(1 − beta) is the same multiply-add, so the same
// bits. A skipped step zeroes d first (s − p is finite), and s + alpha·0 is
// s.
void Ema::edm_large_beta(std::vector<torch::Tensor>& shadows,
                         const std::vector<torch::Tensor>& p32, float beta,
                         const torch::Tensor& applied) {
  const double alpha = -static_cast<double>(1.0f - beta);
  for (const auto& [begin, end] : chunk_ranges(p32, chunk_elements(p32.front().device()))) {
    auto shadow = slice(shadows, begin, end);
    std::vector<torch::Tensor> d = torch::_foreach_sub(shadow, slice(p32, begin, end));
    compat::foreach_mul_(d, applied);
    torch::_foreach_add_(shadow, d, alpha);
  }
}

// EDM's EMA while beta < 1/2 (its ramp-up's first steps): lerp(p, s, beta)
// computes p + beta (s − p) with one rounding after the multiply-add, as
// p.add(d, beta) does. A skipped step keeps s: next · applied + s ·
// (1 − applied) picks one of the two exactly (both finite; a zero may come
// back as +0).
void Ema::edm_small_beta(std::vector<torch::Tensor>& shadows, const std::vector<torch::Tensor>& p32,
                         float beta, const torch::Tensor& applied) {
  const torch::Tensor kept = 1.0f - applied;
  for (const auto& [begin, end] : chunk_ranges(p32, chunk_elements(p32.front().device()))) {
    auto shadow = slice(shadows, begin, end);
    const auto p = slice(p32, begin, end);
    const std::vector<torch::Tensor> d = torch::_foreach_sub(shadow, p);
    std::vector<torch::Tensor> next = torch::_foreach_add(p, d, static_cast<double>(beta));
    compat::foreach_mul_(next, applied);
    compat::foreach_mul_(shadow, kept);
    torch::_foreach_add_(shadow, next);
  }
}

int64_t Ema::num_updates() const { return static_cast<int64_t>(num_updates_.item<double>()); }

std::map<std::string, torch::Tensor> Ema::shadow(const std::string& ema_name) const {
  for (const auto& avg : averages_) {
    if (avg.name != ema_name) continue;
    std::map<std::string, torch::Tensor> out;
    for (size_t i = 0; i < param_names_.size(); ++i) out[param_names_[i]] = avg.shadow[i];
    return out;
  }
  fail(detail::concat("no EMA named '", ema_name, "'; this run keeps ", join_names(names_)));
}

void Ema::copy_to(torch::nn::Module& model, const std::string& ema_name) const {
  torch::NoGradGuard no_grad;
  const auto it = std::find_if(averages_.begin(), averages_.end(),
                               [&](const Average& a) { return a.name == ema_name; });
  SCORCH_CHECK(it != averages_.end(), "no EMA named '", ema_name, "'; this run keeps ",
               join_names(names_));
  std::vector<torch::Tensor> params = tracked(model);
  for (size_t i = 0; i < params.size(); ++i) mine(i, params[i]).copy_(it->shadow[i]);
  // Sharded: each rank wrote its part; every rank gets every part.
  if (shards_) shards_->all_gather(params, *comm_);
}

int64_t Ema::state_bytes() const {
  int64_t bytes = 0;
  for (const auto& avg : averages_)
    for (const auto& t : avg.shadow) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  return bytes;
}

void Ema::store(const torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  stored_.clear();
  for (const auto& p : tracked(model)) stored_.push_back(p.detach().clone());
}

void Ema::restore(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(!stored_.empty() || param_names_.empty(), "Ema::restore without store");
  std::vector<torch::Tensor> params = tracked(model);
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(stored_[i]);
  stored_.clear();
}

std::map<std::string, std::map<std::string, torch::Tensor>> Ema::gather_state_dict(
    Communicator& comm) const {
  std::map<std::string, std::map<std::string, torch::Tensor>> out;
  if (shards_) {  // every rank's parts to rank 0
    TORCH_CHECK(&comm == comm_, "Ema::gather_state_dict: not the sharding's communicator");
    for (const auto& avg : averages_) {
      const auto whole = shards_->gather_to_root(avg.shadow, torch::kFloat32, comm);
      if (whole.empty()) continue;  // not rank 0
      auto& tensors = out[avg.name];
      for (size_t i = 0; i < param_names_.size(); ++i) tensors[param_names_[i]] = whole[i];
    }
    return out;
  }
  if (comm.rank() != 0) return out;
  for (const auto& avg : averages_) {
    auto& tensors = out[avg.name];
    for (size_t i = 0; i < param_names_.size(); ++i) {
      tensors[param_names_[i]] =
          avg.shadow[i].detach().to(torch::TensorOptions(torch::kCPU), false, true);
    }
  }
  return out;
}

std::vector<std::string> Ema::load_state_dict(
    const std::map<std::string, std::map<std::string, torch::Tensor>>& state, int64_t num_updates,
    const torch::nn::Module* model) {
  torch::NoGradGuard no_grad;
  SCORCH_CHECK(num_updates >= 0, "ema_num_updates: ", num_updates, " must be >= 0");
  std::vector<std::string> missing;
  // Check everything before changing anything, so a bad state leaves us intact.
  for (const auto& avg : averages_) {
    const auto it = state.find(avg.name);
    if (it == state.end()) {
      missing.push_back(avg.name);
      continue;
    }
    for (size_t i = 0; i < param_names_.size(); ++i) {
      const auto t = it->second.find(param_names_[i]);
      SCORCH_CHECK(t != it->second.end(), "EMA '", avg.name, "' has no tensor for parameter '",
                   param_names_[i], "'");
      const auto expected = shards_ ? shape_[i] : avg.shadow[i].sizes().vec();
      SCORCH_CHECK(t->second.sizes() == c10::IntArrayRef(expected), "EMA '", avg.name,
                   "' parameter '", param_names_[i], "' has shape ", t->second.sizes(),
                   " but the model's is ", c10::IntArrayRef(expected));
    }
  }
  const std::vector<torch::Tensor> params = model ? tracked(*model) : std::vector<torch::Tensor>{};
  for (auto& avg : averages_) {
    const auto it = state.find(avg.name);
    for (size_t i = 0; i < param_names_.size(); ++i) {
      if (it != state.end()) {
        const auto& whole = it->second.at(param_names_[i]);
        avg.shadow[i].copy_(shards_ ? shards_->local_of(i, whole) : whole);
      } else if (model) {
        avg.shadow[i].copy_(mine(i, params[i]));
      }
    }
  }
  num_updates_.fill_(static_cast<double>(num_updates));
  return missing;
}

}  // namespace scorch
