// NCSN and NCSNv2 (ncsn.h): score_sde_pytorch models/ncsnv2.py classes NCSN,
// NCSNv2, NCSNv2_128 and NCSNv2_256 written as one table-driven network. Each
// level is two residual blocks (the first may downsample, by mean pooling or,
// deeper, by dilation); RefineNet blocks then run deep to shallow, each fusing
// its level with the deeper block's output.
#include "nn/ncsn.h"

#include <cmath>

#include "core/error.h"
#include "nn/checkpoint.h"

namespace scorch {
namespace {

struct LevelSpec {
  const char* stage;   // residual blocks
  const char* refine;  // its RefineNet block
  int64_t mult;        // channels = mult * nf
  Resample resample;   // of the first block
  int64_t dilation;
};

std::vector<LevelSpec> level_specs(NCSNVariant v) {
  switch (v) {
    case NCSNVariant::kV1:
    case NCSNVariant::kV2_64:
      return {{"res1", "refine4", 1, Resample::kNone, 1},
              {"res2", "refine3", 2, Resample::kDown, 1},
              {"res3", "refine2", 2, Resample::kDown, 2},
              {"res4", "refine1", 2, Resample::kDown, 4}};
    case NCSNVariant::kV2_128:
      return {{"res1", "refine5", 1, Resample::kNone, 1},
              {"res2", "refine4", 2, Resample::kDown, 1},
              {"res3", "refine3", 2, Resample::kDown, 1},
              {"res4", "refine2", 4, Resample::kDown, 2},
              {"res5", "refine1", 4, Resample::kDown, 4}};
    case NCSNVariant::kV2_256:
      return {{"res1", "refine5", 1, Resample::kNone, 1},
              {"res2", "refine4", 2, Resample::kDown, 1},
              {"res3", "refine3", 2, Resample::kDown, 1},
              {"res31", "refine31", 2, Resample::kDown, 1},
              {"res4", "refine2", 4, Resample::kDown, 2},
              {"res5", "refine1", 4, Resample::kDown, 4}};
  }
  TORCH_CHECK(false, "unknown NCSNVariant");
}

const char* variant_name(NCSNVariant v) {
  switch (v) {
    case NCSNVariant::kV1:
      return "ncsn";
    case NCSNVariant::kV2_64:
      return "ncsnv2_64";
    case NCSNVariant::kV2_128:
      return "ncsnv2_128";
    case NCSNVariant::kV2_256:
      return "ncsnv2_256";
  }
  return "unknown";
}

}  // namespace

NCSNImpl::NCSNImpl(const NCSNOptions& o) : options_(o) {
  const char* name = variant_name(o.variant());
  const int64_t size = o.image_size();
  int64_t lo = 1, hi = 95;
  if (o.variant() == NCSNVariant::kV2_128) lo = 96, hi = 128;
  if (o.variant() == NCSNVariant::kV2_256) lo = 129, hi = 256;
  const auto specs = level_specs(o.variant());
  int64_t factor = 1;
  for (const auto& s : specs)
    if (s.resample == Resample::kDown && s.dilation == 1) factor *= 2;
  SCORCH_CHECK(size >= lo && size <= hi && size % factor == 0, "model.name=", name,
               " takes data.image_size from ", lo, " to ", hi, " divisible by ", factor,
               ", got ", size,
               " (score_sde: ncsnv2_64 below 96 px, ncsnv2_128 to 128, ncsnv2_256 to 256)");
  SCORCH_CHECK(o.nf() > 0 && o.num_channels() > 0, "model.nf and data.num_channels must be > 0");
  SCORCH_CHECK(o.num_scales() >= 1, "model.num_scales must be >= 1 for ", name);
  SCORCH_CHECK(o.sigma_min() > 0 && o.sigma_max() > o.sigma_min(), "model.sigma_min (",
               o.sigma_min(), ") and model.sigma_max (", o.sigma_max(),
               ") must satisfy 0 < sigma_min < sigma_max");
  const bool v1 = o.variant() == NCSNVariant::kV1;
  num_classes_ = v1 ? o.num_scales() : 0;
  const int64_t nf = o.nf();
  const Activation act = o.nonlinearity();

  begin_conv_ = register_module(
      "begin_conv",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(o.num_channels(), nf, 3).padding(1)));
  // v1: conditional on the level; v2: InstanceNorm2dPlus(nf, bias) unconditional.
  normalizer_ = register_module("normalizer", InstanceNormPlus(nf, num_classes_));
  end_conv_ = register_module(
      "end_conv",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(nf, o.num_channels(), 3).padding(1)));

  int64_t channels = nf;
  for (const auto& s : specs) {
    const int64_t out = s.mult * nf;
    auto list = register_module(s.stage, torch::nn::ModuleList());
    Stage stage;
    stage.name = s.stage;
    stage.first = RefineResidualBlock(channels, out, s.resample, s.dilation, act, num_classes_);
    stage.second = RefineResidualBlock(out, out, Resample::kNone, s.dilation, act, num_classes_);
    list->push_back(stage.first);
    list->push_back(stage.second);
    stages_.push_back(stage);
    channels = out;
  }
  const size_t levels = specs.size();
  refines_.resize(levels, RefineBlock(nullptr));
  // Register deep to shallow, the reference's order (refine1 first).
  for (size_t k = levels; k-- > 0;) {
    const int64_t here = specs[k].mult * nf;
    const int64_t features = specs[k == 0 ? 0 : k - 1].mult * nf;
    const bool start = k + 1 == levels, end = k == 0;
    const std::vector<int64_t> in_planes =
        start ? std::vector<int64_t>{here} : std::vector<int64_t>{here, here};
    refines_[k] = register_module(specs[k].refine,
                                  RefineBlock(in_planes, start ? here : features, act,
                                              num_classes_, start, end));
  }
  if (!v1)
    sigmas_ = register_buffer(
        "sigmas", torch::exp(torch::linspace(std::log(o.sigma_max()), std::log(o.sigma_min()),
                                             o.num_scales(), torch::kDouble)));
}

torch::Tensor NCSNImpl::forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                                const torch::Tensor& class_labels) {
  const auto& o = options_;
  TORCH_CHECK(x.dim() == 4 && x.size(1) == o.num_channels() && x.size(2) == o.image_size() &&
                  x.size(3) == o.image_size(),
              variant_name(o.variant()), " expects x [B, ", o.num_channels(), ", ",
              o.image_size(), ", ", o.image_size(), "], got ", x.sizes());
  TORCH_CHECK(time_cond.dim() == 1 && time_cond.size(0) == x.size(0),
              variant_name(o.variant()), " expects noise-level indices [B], got ",
              time_cond.sizes());
  TORCH_CHECK(!class_labels.defined(), variant_name(o.variant()),
              " is unconditional; class labels are not supported");
  const auto y = time_cond.to(torch::kLong);
  const auto levels = num_classes_ > 0 ? y : torch::Tensor();

  const bool ckpt = is_training() && checkpoint_residual(o.checkpointing());
  const auto residual = [&](const RefineResidualBlock& block, const torch::Tensor& in) {
    return run_block(
        ckpt,
        [impl = block.ptr()](const std::vector<torch::Tensor>& t) {
          return impl->forward(t[0], t[1]);
        },
        {in, levels});
  };
  auto h = begin_conv_->forward(o.centered() ? x : 2 * x - 1.0);
  std::vector<torch::Tensor> layers;
  for (auto& stage : stages_) {
    h = residual(stage.second, residual(stage.first, h));
    layers.push_back(h);
  }
  torch::Tensor ref;
  for (size_t k = layers.size(); k-- > 0;) {
    const auto shape = layers[k].sizes().slice(2).vec();
    auto refine = [block = refines_[k].ptr(), shape](const std::vector<torch::Tensor>& t) {
      // t = {inputs..., levels}
      return block->forward(std::vector<torch::Tensor>(t.begin(), t.end() - 1), t.back(), shape);
    };
    ref = ref.defined() ? run_block(ckpt, refine, {layers[k], ref, levels})
                        : run_block(ckpt, refine, {layers[k], levels});
  }
  auto out = end_conv_->forward(activate(normalizer_->forward(ref, levels), o.nonlinearity()));
  if (sigmas_.defined()) {
    const auto sigma = sigmas_.index({y}).to(out.dtype());
    out = out / sigma.view({-1, 1, 1, 1});
  }
  return out;
}

}  // namespace scorch
