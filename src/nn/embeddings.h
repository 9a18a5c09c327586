// Noise-level embeddings of the score networks: the Gaussian Fourier
// projection of NCSN++ (score_sde_pytorch models/layerspp.py; Tancik et al.
// 2020, Song et al. 2021 App. H.2) and the sinusoidal embedding of DDPM
// (timestep_embedding in nn/mlp.h), plus the class embedding Scorch adds for
// class-conditional models.
#pragma once

#include "core/choices.h"
#include <torch/torch.h>

#include <cstdint>

namespace scorch {

// Which embedding turns time_cond into features (config model.embedding_type).

// emb = [sin(2 pi x W), cos(2 pi x W)] with W ~ N(0, scale^2) of size
// embedding_size, a *frozen* parameter "W" (requires_grad false, so it is in
// the state dict but not trained and not tracked by EMA).
class GaussianFourierProjectionImpl : public torch::nn::Module {
 public:
  GaussianFourierProjectionImpl(int64_t embedding_size, double scale);
  // x [B] (NCSN++ feeds ln sigma) -> [B, 2 embedding_size]
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor w_;
};
TORCH_MODULE(GaussianFourierProjection);

// Class conditioning for classifier-free guidance (Ho & Salimans 2022): an
// nn.Embedding "class_embedding" of num_classes + 1 rows, the last being the
// null class, whose output [B, dim] is added to the time embedding. A Scorch
// extension: score_sde has no class-conditional U-Net. Labels undefined ->
// the null class for every sample.
// labels [B] int64 in [0, num_classes] -> [B, dim].
torch::Tensor embed_class_labels(torch::nn::Embedding& embedding, const torch::Tensor& labels,
                                 int64_t batch, const torch::Device& device);

}  // namespace scorch
