// Importance sampling of the discrete training levels from the loss history:
// the loss-second-moment resampler of Nichol and Dhariwal 2021 (Improved DDPM,
// sec. 3.3; guided-diffusion resample.py). Level k is drawn with probability
//   p_k = (1 - u) sqrt(E_k[l^2]) / sum_j sqrt(E_j[l^2]) + u / N,   u = 0.001,
// E_k over the last H = 10 losses seen at level k, and uniform until every level
// has H losses. The batch loss is weighted by w_k = 1 / (N p_k), so that
// E_{k~p}[w_k l_k] = (1/N) sum_k l_k: the uniform objective, with less variance.
//
//   TimestepSampler sampler(N);
//   auto [levels, weights] = sampler.sample(rng, B, x.options());   // in the loss
//   sampler.update(global_levels, global_losses);                   // once per step
//
// Every rank must hold the same state: update() takes the global batch's
// (level, loss) pairs in global row order (the trainer all-gathers them), and
// is deterministic. Not thread-safe for update(); sample() and probabilities()
// are const and may be called concurrently between updates.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/batch_random.h"

namespace scorch {

struct Config;
class Sde;

class TimestepSampler {
 public:
  // REQUIRES: num_levels >= 1, history_per_level >= 1, 0 <= uniform_prob <= 1.
  explicit TimestepSampler(int64_t num_levels, int64_t history_per_level = 10,
                           double uniform_prob = 0.001);

  int64_t num_levels() const { return num_levels_; }
  int64_t history_per_level() const { return history_; }
  // True once every level has history_per_level losses.
  bool warmed_up() const;
  // [N] float64, sums to 1: uniform during warm-up, else the formula above.
  torch::Tensor probabilities() const;

  // Draws `rows` levels by inverting p's CDF at one U[0,1) draw per row from
  // `rng` (so the draws follow the global batch, as BatchRandom's do).
  // Returns levels [rows] int64 and importance weights 1 / (N p_level)
  // [rows] in options' dtype, both on options' device.
  std::pair<torch::Tensor, torch::Tensor> sample(BatchRandom& rng, int64_t rows,
                                                 const torch::TensorOptions& options) const;

  // Appends each loss to its level's history in order, dropping the oldest
  // beyond history_per_level. levels: [M] integers in [0, N); losses: [M].
  // Non-finite losses are skipped (a skipped step must not poison the weights).
  void update(const torch::Tensor& levels, const torch::Tensor& losses);

  // {"history": [N, H] float64, "counts": [N] int64} for checkpoints.
  c10::IValue state() const;
  // Throws scorch::Error naming `origin` when the state does not fit N and H.
  void load_state(const c10::IValue& state, const std::string& origin);

 private:
  int64_t num_levels_, history_;
  double uniform_prob_;
  std::vector<double> history_values_;  // [N, H] row-major, oldest first
  std::vector<int64_t> counts_;         // [N]
};

// training.timestep_sampler: null for uniform, else a sampler over the SDE's
// N = num_scales levels (make_loss then checks that the loss is discrete).
std::shared_ptr<TimestepSampler> make_timestep_sampler(const Config& config, const Sde& sde);

}  // namespace scorch
