// guided-diffusion model files into the ADM U-Net (see import_guided_diffusion.h).
#include "nn/import_guided_diffusion.h"

#include <map>
#include <set>

#include "core/error.h"
#include "nn/adm.h"
#include "nn/torch_load.h"

namespace scorch {
namespace {
constexpr const char* kHint =
    "compare model.nf (model_channels), model.ch_mult, model.num_res_blocks, "
    "model.attn_resolutions, model.resblock_updown, model.use_scale_shift_norm, "
    "model.num_head_channels, data.num_channels and data.num_classes with the model's flags";
}  // namespace

GuidedDiffusionImport import_guided_diffusion_model(const std::string& path, ADMImpl& net) {
  const auto loaded = load_torch_file(path);
  SCORCH_CHECK(loaded.isGenericDict(), "'", path,
               "' is not a guided-diffusion model file (a state dict of tensor names); it holds ",
               loaded.tagKind());
  const auto& o = net.options();
  auto params = net.named_parameters();
  std::map<std::string, torch::Tensor> values;  // checked before anything is copied
  std::set<std::string> seen;
  GuidedDiffusionImport result;
  for (const auto& item : loaded.toGenericDict()) {
    SCORCH_CHECK(item.key().isString() && item.value().isTensor(), "'", path,
                 "' is not a guided-diffusion state dict: an entry is not a named tensor");
    const auto key = item.key().toStringRef();
    auto value = item.value().toTensor();
    const torch::Tensor* target = params.find(key);
    SCORCH_CHECK(target != nullptr, "'", path, "' has '", key,
                 "', which Scorch's ADM with this config does not: ", kHint);
    if (key == "label_emb.weight" && value.dim() == 2 && value.size(0) + 1 == target->size(0)) {
      result.num_classes = value.size(0);
      value = torch::cat({value.to(target->dtype()), target->detach().narrow(0, value.size(0), 1)});
    }
    if ((key == "out.2.weight" || key == "out.2.bias") && value.size(0) == 2 * o.out_channels()) {
      result.learned_sigma = true;
      value = value.narrow(0, 0, o.out_channels());  // [eps, variance] -> eps
    }
    SCORCH_CHECK(value.sizes() == target->sizes(), "'", path, "': '", key, "' has shape ",
                 value.sizes(), " but the config's ADM has ", target->sizes(), ": ", kHint);
    values[key] = value;
    seen.insert(key);
  }
  for (const auto& item : params)
    SCORCH_CHECK(seen.count(item.key()), "'", path, "' has no '", item.key(),
                 "': the config's ADM is not the file's architecture; ", kHint);
  torch::NoGradGuard no_grad;
  for (auto& item : params) item.value().copy_(values.at(item.key()));
  result.tensors = static_cast<int64_t>(values.size());
  return result;
}

}  // namespace scorch
