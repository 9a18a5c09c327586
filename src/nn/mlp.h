// A time-conditioned MLP score network for low-dimensional data: the input
// and a sinusoidal embedding of the noise conditioning (score_sde's
// get_timestep_embedding) feed `layers` hidden SiLU layers of width `hidden`.
#pragma once

#include "nn/score_net.h"

namespace scorch {

struct MLPOptions {
  MLPOptions(int64_t dim) : dim_(dim) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, hidden) = 128;
  TORCH_ARG(int64_t, layers) = 3;
  TORCH_ARG(int64_t, embedding_dim) = 64;
  // 0: unconditional; else an embedding of num_classes + 1 rows, the last
  // the null class (classifier-free guidance), used when labels are undefined.
  TORCH_ARG(int64_t, num_classes) = 0;
  // VE: time_cond is sigma; embed 100 ln(sigma) and return output / sigma
  // (score_sde's scale_by_sigma), so the net predicts -z at every level.
  TORCH_ARG(bool, scale_by_sigma) = false;
};

class MLPImpl : public ScoreNetImpl {
 public:
  explicit MLPImpl(const MLPOptions& options);
  // x [B, D], time_cond [B] -> [B, D].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                        const torch::Tensor& class_labels = {}) override;

 private:
  MLPOptions options_;
  torch::nn::Linear input_{nullptr}, temb_{nullptr}, output_{nullptr};
  torch::nn::ModuleList hidden_;
  torch::nn::Embedding class_embedding_{nullptr};
};

// Sinusoidal embedding of score_sde layers.get_timestep_embedding:
// half = dim/2, freq_k = exp(-k ln(10000)/(half-1)), [sin(t freq), cos(t freq)].
// t [B] -> [B, dim], float32.
torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim, double max_positions = 10000);

}  // namespace scorch
