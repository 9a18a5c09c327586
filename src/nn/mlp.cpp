// Time-conditioned MLP score network (see mlp.h).
#include "nn/mlp.h"

#include <cmath>

namespace scorch {

torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim, double max_positions) {
  TORCH_CHECK(t.dim() == 1, "timestep_embedding expects [B], got ", t.sizes());
  const int64_t half = dim / 2;
  const double scale = std::log(max_positions) / static_cast<double>(half - 1);
  auto freq = torch::exp(torch::arange(half, t.options().dtype(torch::kFloat)) * -scale);
  auto arg = t.to(torch::kFloat).unsqueeze(1) * freq.unsqueeze(0);
  auto emb = torch::cat({torch::sin(arg), torch::cos(arg)}, 1);
  if (dim % 2 == 1)
    emb = torch::nn::functional::pad(emb, torch::nn::functional::PadFuncOptions({0, 1}));
  return emb;
}

MLPImpl::MLPImpl(const MLPOptions& options) : options_(options) {
  const int64_t h = options.hidden();
  input_ = register_module("input", torch::nn::Linear(options.dim(), h));
  temb_ = register_module("temb", torch::nn::Linear(options.embedding_dim(), h));
  hidden_ = register_module("hidden", torch::nn::ModuleList());
  for (int64_t k = 0; k < options.layers(); ++k) hidden_->push_back(torch::nn::Linear(h, h));
  output_ = register_module("output", torch::nn::Linear(h, options.dim()));
  if (options.num_classes() > 0)
    class_embedding_ =
        register_module("class_embedding", torch::nn::Embedding(options.num_classes() + 1, h));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                               const torch::Tensor& class_labels) {
  const auto cond = options_.scale_by_sigma() ? 100.0 * torch::log(time_cond) : time_cond;
  auto h = input_(x) + temb_(timestep_embedding(cond, options_.embedding_dim()));
  if (class_embedding_) {
    // Undefined labels mean the null class, as in the U-Nets.
    auto labels = class_labels.defined()
                      ? class_labels
                      : torch::full({x.size(0)}, options_.num_classes(),
                                    torch::TensorOptions().dtype(torch::kLong).device(x.device()));
    h = h + class_embedding_(labels);
  }
  for (const auto& layer : *hidden_) h = layer->as<torch::nn::Linear>()->forward(torch::silu(h));
  auto out = output_(torch::silu(h));
  if (options_.scale_by_sigma()) out = out / time_cond.to(out.dtype()).unsqueeze(1);
  return out;
}

}  // namespace scorch
