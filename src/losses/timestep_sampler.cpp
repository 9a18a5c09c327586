// The loss-second-moment level resampler (Nichol and Dhariwal 2021, sec. 3.3);
// the formulas are in timestep_sampler.h.
#include "losses/timestep_sampler.h"

#include <algorithm>
#include <cmath>

#include "core/config.h"
#include "core/error.h"
#include "sde/sde.h"

namespace scorch {

TimestepSampler::TimestepSampler(int64_t num_levels, int64_t history_per_level,
                                 double uniform_prob)
    : num_levels_(num_levels), history_(history_per_level), uniform_prob_(uniform_prob) {
  TORCH_CHECK(num_levels_ >= 1 && history_ >= 1, "TimestepSampler: need N >= 1 and H >= 1");
  TORCH_CHECK(uniform_prob_ >= 0 && uniform_prob_ <= 1, "TimestepSampler: uniform_prob in [0, 1]");
  history_values_.assign(static_cast<size_t>(num_levels_ * history_), 0.0);
  counts_.assign(static_cast<size_t>(num_levels_), 0);
}

bool TimestepSampler::warmed_up() const {
  return std::all_of(counts_.begin(), counts_.end(), [&](int64_t c) { return c == history_; });
}

torch::Tensor TimestepSampler::probabilities() const {
  const double n = static_cast<double>(num_levels_);
  auto p = torch::full({num_levels_}, 1.0 / n, torch::kFloat64);
  if (!warmed_up()) return p;
  auto acc = p.accessor<double, 1>();
  double total = 0;
  for (int64_t k = 0; k < num_levels_; ++k) {
    double second_moment = 0;
    for (int64_t j = 0; j < history_; ++j) {
      const double l = history_values_[k * history_ + j];
      second_moment += l * l;
    }
    acc[k] = std::sqrt(second_moment / static_cast<double>(history_));
    total += acc[k];
  }
  // All-zero losses leave nothing to prefer: stay uniform.
  if (!(total > 0) || !std::isfinite(total)) return torch::full({num_levels_}, 1.0 / n, torch::kFloat64);
  for (int64_t k = 0; k < num_levels_; ++k)
    acc[k] = acc[k] / total * (1.0 - uniform_prob_) + uniform_prob_ / n;
  return p;
}

std::pair<torch::Tensor, torch::Tensor> TimestepSampler::sample(
    BatchRandom& rng, int64_t rows, const torch::TensorOptions& options) const {
  const auto p = probabilities().to(options.device());
  const auto cdf = torch::cumsum(p, 0);
  const auto u = rng.uniform({rows}, options.dtype(torch::kFloat64));
  // Level k for cdf[k-1] <= u < cdf[k]; the clamp absorbs cdf[N-1] < 1 by rounding.
  auto levels = torch::searchsorted(cdf, u, /*out_int32=*/false, /*right=*/true)
                    .clamp_max(num_levels_ - 1);
  const auto weights = (1.0 / (static_cast<double>(num_levels_) * p.index_select(0, levels)))
                           .to(options.dtype());
  return {levels, weights};
}

void TimestepSampler::update(const torch::Tensor& levels, const torch::Tensor& losses) {
  TORCH_CHECK(levels.numel() == losses.numel(), "TimestepSampler::update: ", levels.numel(),
              " levels but ", losses.numel(), " losses");
  const auto k = levels.detach().to(torch::kCPU, torch::kLong).contiguous();
  const auto l = losses.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const int64_t* kp = k.data_ptr<int64_t>();
  const double* lp = l.data_ptr<double>();
  for (int64_t i = 0; i < k.numel(); ++i) {
    const int64_t level = kp[i];
    TORCH_CHECK(level >= 0 && level < num_levels_, "TimestepSampler::update: level ", level,
                " outside [0, ", num_levels_, ")");
    if (!std::isfinite(lp[i])) continue;
    double* row = history_values_.data() + level * history_;
    int64_t& count = counts_[static_cast<size_t>(level)];
    if (count == history_) {
      std::copy(row + 1, row + history_, row);  // shift out the oldest
      row[history_ - 1] = lp[i];
    } else {
      row[count++] = lp[i];
    }
  }
}

c10::IValue TimestepSampler::state() const {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("history", torch::tensor(history_values_, torch::kFloat64)
                             .reshape({num_levels_, history_})
                             .clone());
  dict.insert("counts", torch::tensor(counts_, torch::kLong).clone());
  return dict;
}

void TimestepSampler::load_state(const c10::IValue& state, const std::string& origin) {
  SCORCH_CHECK(state.isGenericDict(), origin, ": 'timestep_sampler' should be a dict, got ",
               state.tagKind());
  const auto dict = state.toGenericDict();
  const auto h = dict.find("history");
  const auto c = dict.find("counts");
  SCORCH_CHECK(h != dict.end() && h->value().isTensor() && c != dict.end() && c->value().isTensor(),
               origin, ": 'timestep_sampler' needs 'history' and 'counts' tensors");
  const auto history = h->value().toTensor().to(torch::kFloat64).contiguous();
  const auto counts = c->value().toTensor().to(torch::kLong).contiguous();
  SCORCH_CHECK(history.dim() == 2 && history.size(0) == num_levels_ &&
                   history.size(1) == history_ && counts.dim() == 1 &&
                   counts.size(0) == num_levels_,
               origin, ": 'timestep_sampler' holds ", history.sizes(), " losses for ",
               num_levels_, " levels x ", history_,
               " (was training.sde's number of scales changed? set model.num_scales back)");
  SCORCH_CHECK((counts >= 0).all().item<bool>() && (counts <= history_).all().item<bool>(), origin,
               ": 'timestep_sampler' counts must lie in [0, ", history_, "]");
  std::copy(history.data_ptr<double>(), history.data_ptr<double>() + history.numel(),
            history_values_.begin());
  std::copy(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + counts.numel(),
            counts_.begin());
}

std::shared_ptr<TimestepSampler> make_timestep_sampler(const Config& config, const Sde& sde) {
  if (config.training.timestep_sampler == TimestepSamplerName::kUniform) return nullptr;
  return std::make_shared<TimestepSampler>(sde.num_scales());
}

}  // namespace scorch
