// score_sde_pytorch checkpoint import (see import_score_sde.h). The file is
// read with load_torch_file; names map by dropping DataParallel's "module.".
#include "nn/import_score_sde.h"

#include <set>
#include <vector>

#include "core/error.h"
#include "nn/torch_load.h"

namespace scorch {
namespace {

const std::string kDataParallelPrefix = "module.";

std::string shape_text(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

c10::IValue dict_entry(const c10::impl::GenericDict& dict, const std::string& key) {
  auto it = dict.find(c10::IValue(key));
  return it == dict.end() ? c10::IValue() : it->value();
}

int64_t as_int(const c10::IValue& v) {
  if (v.isInt()) return v.toInt();
  if (v.isDouble()) return static_cast<int64_t>(v.toDouble());
  if (v.isTensor()) return v.toTensor().item<int64_t>();
  return 0;
}

}  // namespace

ScoreSdeCheckpoint read_score_sde_checkpoint(const std::string& path,
                                             const torch::nn::Module& model) {
  const c10::IValue root = load_torch_file(path);
  SCORCH_CHECK(root.isGenericDict(), "'", path,
               "' is not a score_sde checkpoint (no dict at the top)");
  const auto top = root.toGenericDict();
  const c10::IValue state = dict_entry(top, "model");
  SCORCH_CHECK(state.isGenericDict(), "'", path,
               "' is not a score_sde checkpoint: it has no 'model' state dict");

  const auto params = model.named_parameters(/*recurse=*/true);
  const auto buffers = model.named_buffers(/*recurse=*/true);
  ScoreSdeCheckpoint out;
  // Trainable parameter names in the checkpoint's (= the reference's
  // parameters()) order, for the EMA list.
  std::vector<std::string> trainable_order;
  for (const auto& kv : state.toGenericDict()) {
    SCORCH_CHECK(kv.key().isString() && kv.value().isTensor(), "'", path,
                 "': 'model' holds a non-tensor entry");
    std::string name = kv.key().toStringRef();
    if (name.rfind(kDataParallelPrefix, 0) == 0) name = name.substr(kDataParallelPrefix.size());
    const torch::Tensor value = kv.value().toTensor();
    const torch::Tensor* target = params.find(name);
    const bool is_param = target != nullptr;
    if (!target) target = buffers.find(name);
    SCORCH_CHECK(target != nullptr, "'", path, "': model key '", kv.key().toStringRef(),
                 "' has no counterpart in the Scorch network (is model.* the checkpoint's "
                 "config?)");
    SCORCH_CHECK(target->sizes() == value.sizes(), "'", path, "': model key '",
                 kv.key().toStringRef(), "' has shape ", shape_text(value),
                 " but the Scorch network expects ", shape_text(*target));
    SCORCH_CHECK(out.model.emplace(name, value).second, "'", path, "': model key '", name,
                 "' appears twice");
    if (is_param && target->requires_grad()) trainable_order.push_back(name);
  }
  for (const auto& item : params) {
    SCORCH_CHECK(out.model.count(item.key()), "'", path, "': the checkpoint has no 'module.",
                 item.key(), "' for the Scorch parameter '", item.key(), "'");
  }
  for (const auto& item : buffers) {
    SCORCH_CHECK(out.model.count(item.key()), "'", path, "': the checkpoint has no 'module.",
                 item.key(), "' for the Scorch buffer '", item.key(), "'");
  }

  const c10::IValue ema = dict_entry(top, "ema");
  if (ema.isGenericDict()) {
    const auto e = ema.toGenericDict();
    const c10::IValue shadow = dict_entry(e, "shadow_params");
    SCORCH_CHECK(shadow.isList(), "'", path, "': 'ema' has no 'shadow_params' list");
    const auto list = shadow.toListRef();
    SCORCH_CHECK(list.size() == trainable_order.size(), "'", path, "': 'ema.shadow_params' holds ",
                 list.size(), " tensors but the network has ", trainable_order.size(),
                 " trainable parameters");
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& name = trainable_order[i];
      SCORCH_CHECK(list[i].isTensor(), "'", path, "': ema.shadow_params[", i, "] is not a tensor");
      const torch::Tensor t = list[i].toTensor();
      SCORCH_CHECK(t.sizes() == out.model.at(name).sizes(), "'", path, "': ema.shadow_params[", i,
                   "] (for '", name, "') has shape ", shape_text(t), ", expected ",
                   shape_text(out.model.at(name)));
      out.ema.emplace(name, t);
    }
    const c10::IValue decay = dict_entry(e, "decay");
    out.ema_decay = decay.isDouble() ? decay.toDouble() : static_cast<double>(as_int(decay));
    out.ema_num_updates = as_int(dict_entry(e, "num_updates"));
  }
  out.step = as_int(dict_entry(top, "step"));
  return out;
}

void load_named_tensors(torch::nn::Module& model,
                        const std::map<std::string, torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  auto params = model.named_parameters(true);
  auto buffers = model.named_buffers(true);
  for (const auto& [name, value] : tensors) {
    torch::Tensor* target = params.find(name);
    if (!target) target = buffers.find(name);
    TORCH_CHECK(target != nullptr, "load_named_tensors: no parameter or buffer '", name, "'");
    target->copy_(value);
  }
}

ScoreSdeCheckpoint import_score_sde_checkpoint(const std::string& path, torch::nn::Module& model,
                                               ImportWeights weights) {
  ScoreSdeCheckpoint ckpt = read_score_sde_checkpoint(path, model);
  load_named_tensors(model, ckpt.model);
  if (weights == ImportWeights::kEma) {
    SCORCH_CHECK(!ckpt.ema.empty(), "'", path, "' has no EMA weights ('ema.shadow_params')");
    load_named_tensors(model, ckpt.ema);
  }
  return ckpt;
}

}  // namespace scorch
