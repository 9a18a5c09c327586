// RefineNet blocks of NCSN / NCSNv2 (refinenet.h), following score_sde_pytorch
// models/layers.py and models/normalization.py module by module (names,
// shapes, PyTorch's default convolution initialisation) with the NCSN
// repositories' padding for dilated convolutions.
#include "nn/refinenet.h"

#include <string>

namespace scorch {
namespace {

namespace F = torch::nn::functional;

// ncsn_conv3x3: PyTorch's default initialisation, padding = dilation.
torch::nn::Conv2d ncsn_conv3x3(int64_t in, int64_t out, bool bias = true, int64_t dilation = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3)
                               .padding(dilation)
                               .dilation(dilation)
                               .bias(bias));
}

torch::nn::Conv2d ncsn_conv1x1(int64_t in, int64_t out) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1));
}

}  // namespace

InstanceNormPlusImpl::InstanceNormPlusImpl(int64_t features, int64_t num_classes)
    : features_(features) {
  TORCH_CHECK(features > 0 && num_classes >= 0, "InstanceNormPlus: bad sizes");
  torch::NoGradGuard no_grad;
  if (num_classes > 0) {
    embed_ = register_module("embed", torch::nn::Embedding(num_classes, 3 * features));
    embed_->weight.slice(1, 0, 2 * features).normal_(1.0, 0.02);
    embed_->weight.slice(1, 2 * features).zero_();
  } else {
    alpha_ = register_parameter("alpha", torch::empty({features}).normal_(1.0, 0.02));
    gamma_ = register_parameter("gamma", torch::empty({features}).normal_(1.0, 0.02));
    beta_ = register_parameter("beta", torch::zeros({features}));
  }
}

torch::Tensor InstanceNormPlusImpl::forward(const torch::Tensor& x, const torch::Tensor& y) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == features_, "InstanceNormPlus: expected [B, ",
              features_, ", H, W], got ", x.sizes());
  auto means = x.mean({2, 3});                                     // [B, C]
  const auto m = means.mean(-1, /*keepdim=*/true);                  // [B, 1]
  const auto v = means.var(at::IntArrayRef{1}, /*unbiased=*/true, /*keepdim=*/true);  // [B, 1]
  means = (means - m) / torch::sqrt(v + 1e-5);
  const auto h = F::instance_norm(x, F::InstanceNormFuncOptions().eps(1e-5));
  torch::Tensor gamma, alpha, beta;
  if (embed_) {
    TORCH_CHECK(y.defined() && y.dim() == 1 && y.size(0) == x.size(0),
                "conditional InstanceNormPlus needs levels y [B]");
    const auto e = embed_->forward(y.to(torch::kLong)).chunk(3, -1);
    gamma = e[0], alpha = e[1], beta = e[2];
  } else {
    gamma = gamma_.unsqueeze(0), alpha = alpha_.unsqueeze(0), beta = beta_.unsqueeze(0);
  }
  auto view = [](const torch::Tensor& p) { return p.unsqueeze(-1).unsqueeze(-1); };
  return view(gamma) * (h + view(means) * view(alpha)) + view(beta);
}

ConvMeanPoolImpl::ConvMeanPoolImpl(int64_t in, int64_t out, int64_t kernel_size) {
  conv_ = register_module(
      "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel_size)
                                    .padding(kernel_size / 2)));
}

torch::Tensor ConvMeanPoolImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.size(2) % 2 == 0 && x.size(3) % 2 == 0,
              "ConvMeanPool: height and width must be even, got ", x.sizes());
  // The mean of the four strided sub-grids, i.e. 2x2 average pooling.
  return F::avg_pool2d(conv_->forward(x), F::AvgPool2dFuncOptions(2));
}

RefineResidualBlockImpl::RefineResidualBlockImpl(int64_t in, int64_t out, Resample resample,
                                                 int64_t dilation, Activation act,
                                                 int64_t num_classes)
    : act_(act), identity_shortcut_(in == out && resample == Resample::kNone) {
  TORCH_CHECK(dilation >= 1, "RefineResidualBlock: dilation must be >= 1");
  normalize1_ = register_module("normalize1", InstanceNormPlus(in, num_classes));
  if (resample == Resample::kDown) {
    conv1_ = register_module("conv1", ncsn_conv3x3(in, in, true, dilation));
    normalize2_ = register_module("normalize2", InstanceNormPlus(in, num_classes));
    if (dilation > 1) {
      conv2_ = register_module("conv2", ncsn_conv3x3(in, out, true, dilation));
      shortcut_ = register_module("shortcut", ncsn_conv3x3(in, out, true, dilation));
    } else {
      conv2_pool_ = register_module("conv2", ConvMeanPool(in, out, 3));
      shortcut_pool_ = register_module("shortcut", ConvMeanPool(in, out, 1));
    }
  } else {
    conv1_ = register_module("conv1", ncsn_conv3x3(in, out, true, dilation));
    normalize2_ = register_module("normalize2", InstanceNormPlus(out, num_classes));
    conv2_ = register_module("conv2", ncsn_conv3x3(out, out, true, dilation));
    if (!identity_shortcut_)
      shortcut_ = register_module(
          "shortcut", dilation > 1 ? ncsn_conv3x3(in, out, true, dilation) : ncsn_conv1x1(in, out));
  }
}

torch::Tensor RefineResidualBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& y) {
  auto h = conv1_->forward(activate(normalize1_->forward(x, y), act_));
  h = activate(normalize2_->forward(h, y), act_);
  h = conv2_ ? conv2_->forward(h) : conv2_pool_->forward(h);
  if (identity_shortcut_) return x + h;
  return (shortcut_ ? shortcut_->forward(x) : shortcut_pool_->forward(x)) + h;
}

RCUBlockImpl::RCUBlockImpl(int64_t features, int64_t n_blocks, int64_t n_stages, Activation act,
                           int64_t num_classes)
    : n_blocks_(n_blocks), n_stages_(n_stages), act_(act) {
  for (int64_t i = 0; i < n_blocks; ++i) {
    for (int64_t j = 0; j < n_stages; ++j) {
      const std::string prefix = std::to_string(i + 1) + "_" + std::to_string(j + 1);
      if (num_classes > 0)
        norms_.push_back(
            register_module(prefix + "_norm", InstanceNormPlus(features, num_classes)));
      convs_.push_back(register_module(prefix + "_conv", ncsn_conv3x3(features, features, false)));
    }
  }
}

torch::Tensor RCUBlockImpl::forward(torch::Tensor x, const torch::Tensor& y) {
  for (int64_t i = 0; i < n_blocks_; ++i) {
    const auto residual = x;
    for (int64_t j = 0; j < n_stages_; ++j) {
      const auto k = static_cast<size_t>(i * n_stages_ + j);
      if (!norms_.empty()) x = norms_[k]->forward(x, y);
      x = convs_[k]->forward(activate(x, act_));
    }
    x = x + residual;
  }
  return x;
}

MSFBlockImpl::MSFBlockImpl(const std::vector<int64_t>& in_planes, int64_t features,
                           int64_t num_classes)
    : features_(features) {
  convs_ = register_module("convs", torch::nn::ModuleList());
  if (num_classes > 0) norms_ = register_module("norms", torch::nn::ModuleList());
  for (int64_t planes : in_planes) {
    convs_->push_back(ncsn_conv3x3(planes, features, true));
    if (num_classes > 0) norms_->push_back(InstanceNormPlus(planes, num_classes));
  }
}

torch::Tensor MSFBlockImpl::forward(const std::vector<torch::Tensor>& xs, const torch::Tensor& y,
                                    at::IntArrayRef shape) {
  TORCH_CHECK(xs.size() == convs_->size(), "MSFBlock: expected ", convs_->size(), " inputs");
  torch::Tensor sum;
  for (size_t i = 0; i < xs.size(); ++i) {
    auto h = norms_ ? norms_->at<InstanceNormPlusImpl>(i).forward(xs[i], y) : xs[i];
    h = convs_->at<torch::nn::Conv2dImpl>(i).forward(h);
    h = F::interpolate(h, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>(shape.begin(), shape.end()))
                              .mode(torch::kBilinear)
                              .align_corners(true));
    sum = sum.defined() ? sum + h : h;
  }
  return sum;
}

CRPBlockImpl::CRPBlockImpl(int64_t features, int64_t n_stages, Activation act,
                           int64_t num_classes)
    : act_(act), conditional_(num_classes > 0) {
  convs_ = register_module("convs", torch::nn::ModuleList());
  if (conditional_) norms_ = register_module("norms", torch::nn::ModuleList());
  for (int64_t i = 0; i < n_stages; ++i) {
    if (conditional_) norms_->push_back(InstanceNormPlus(features, num_classes));
    convs_->push_back(ncsn_conv3x3(features, features, false));
  }
}

torch::Tensor CRPBlockImpl::forward(const torch::Tensor& x_in, const torch::Tensor& y) {
  auto x = activate(x_in, act_);
  auto path = x;
  for (size_t i = 0; i < convs_->size(); ++i) {
    if (conditional_) path = norms_->at<InstanceNormPlusImpl>(i).forward(path, y);
    path = conditional_
               ? F::avg_pool2d(path, F::AvgPool2dFuncOptions(5).stride(1).padding(2))
               : F::max_pool2d(path, F::MaxPool2dFuncOptions(5).stride(1).padding(2));
    path = convs_->at<torch::nn::Conv2dImpl>(i).forward(path);
    x = path + x;
  }
  return x;
}

RefineBlockImpl::RefineBlockImpl(const std::vector<int64_t>& in_planes, int64_t features,
                                 Activation act, int64_t num_classes, bool start, bool end) {
  TORCH_CHECK(!in_planes.empty(), "RefineBlock: no inputs");
  adapt_convs_ = register_module("adapt_convs", torch::nn::ModuleList());
  for (int64_t planes : in_planes) adapt_convs_->push_back(RCUBlock(planes, 2, 2, act, num_classes));
  output_convs_ =
      register_module("output_convs", RCUBlock(features, end ? 3 : 1, 2, act, num_classes));
  if (!start) msf_ = register_module("msf", MSFBlock(in_planes, features, num_classes));
  crp_ = register_module("crp", CRPBlock(features, 2, act, num_classes));
}

torch::Tensor RefineBlockImpl::forward(const std::vector<torch::Tensor>& xs,
                                       const torch::Tensor& y, at::IntArrayRef shape) {
  TORCH_CHECK(xs.size() == adapt_convs_->size(), "RefineBlock: expected ", adapt_convs_->size(),
              " inputs, got ", xs.size());
  std::vector<torch::Tensor> hs;
  for (size_t i = 0; i < xs.size(); ++i) hs.push_back(adapt_convs_->at<RCUBlockImpl>(i).forward(xs[i], y));
  TORCH_CHECK(hs.size() == 1 || msf_, "RefineBlock: a start block takes one input");
  auto h = hs.size() > 1 ? msf_->forward(hs, y, shape) : hs[0];
  return output_convs_->forward(crp_->forward(h, y), y);
}

}  // namespace scorch
