// Noise-level and class embeddings (see embeddings.h); the Fourier projection
// is layerspp.GaussianFourierProjection of score_sde_pytorch.
#include "nn/embeddings.h"

#include <cmath>

namespace scorch {

GaussianFourierProjectionImpl::GaussianFourierProjectionImpl(int64_t embedding_size, double scale) {
  w_ = register_parameter("W", torch::randn({embedding_size}) * scale, /*requires_grad=*/false);
}

torch::Tensor GaussianFourierProjectionImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 1, "GaussianFourierProjection expects [B], got ", x.sizes());
  // Same operation order as the reference (x W) 2 pi, so float32 rounding
  // matches for large arguments.
  const auto proj = x.unsqueeze(1) * w_.unsqueeze(0) * 2 * M_PI;
  return torch::cat({torch::sin(proj), torch::cos(proj)}, -1);
}

torch::Tensor embed_class_labels(torch::nn::Embedding& embedding, const torch::Tensor& labels,
                                 int64_t batch, const torch::Device& device) {
  const int64_t null_class = embedding->options.num_embeddings() - 1;
  if (!labels.defined()) {
    return embedding(torch::full({batch}, null_class, torch::dtype(torch::kLong).device(device)));
  }
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == batch,
              "class labels must be [B] with B = ", batch, ", got ", labels.sizes());
  return embedding(labels.to(device, torch::kLong));
}

}  // namespace scorch
