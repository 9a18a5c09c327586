// EDM2 Precond state dicts into EDM2Precond (see import_edm2.h).
#include "nn/import_edm2.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "nn/edm2.h"
#include "nn/torch_load.h"

namespace scorch {
namespace {

std::string shape_string(at::IntArrayRef sizes) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < sizes.size(); ++i) s << (i ? ", " : "") << sizes[i];
  return s.str() + "]";
}

std::string list_string(const std::vector<int64_t>& v) { return shape_string(v); }

// What the network was built as, from its options (the config's keys).
std::string network_string(const EDM2PrecondImpl& net) {
  const EDM2Options& o = net.edm2_options();
  std::ostringstream s;
  s << "EDM2 Precond with data.image_size=" << o.image_size()
    << ", data.num_channels=" << o.img_channels() << ", data.num_classes=" << o.label_dim()
    << ", model.nf=" << o.model_channels()
    << ", model.edm2_channel_mult=" << list_string(o.channel_mult())
    << ", model.edm2_num_blocks=" << o.num_blocks()
    << ", model.edm2_attn_resolutions=" << list_string(o.attn_resolutions());
  return s.str();
}

}  // namespace

bool is_edm2_state_dict_file(const std::string& path) {
  std::string pickle;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord("data.pkl")) return false;
    auto [data, size] = reader.getRecord("data.pkl");
    pickle.assign(static_cast<const char*>(data.get()), size);
  } catch (const std::exception&) {
    return false;  // not a zip archive: the checkpoint loader says what it is
  }
  // A Scorch checkpoint names its format; a state dict saved from Python is
  // a collections.OrderedDict of parameter names. The keys are checked
  // again, exactly, when the file is imported.
  return pickle.find("scorch-checkpoint") == std::string::npos &&
         pickle.find("OrderedDict") != std::string::npos &&
         pickle.find("unet.") != std::string::npos;
}

int64_t import_edm2_state_dict(const std::string& path, EDM2PrecondImpl& net,
                               const std::string& expected) {
  const c10::IValue root = load_torch_file(path);
  SCORCH_CHECK(root.isGenericDict(), "'", path, "' holds a ", root.tagKind(),
               ", not an EDM2 Precond state dict (torch.save(net.state_dict(), path))");
  auto params = net.named_parameters();
  auto buffers = net.named_buffers();
  const std::string against = " (" + expected + " builds an " + network_string(net) +
                              "; use the config of the model's preset, e.g. "
                              "configs/edm2/img512-xs.yaml for edm2-img512-xs)";
  // Check everything first, then copy: a mismatch leaves `net` unchanged.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  std::map<std::string, bool> seen;
  for (const auto& item : root.toGenericDict()) {
    SCORCH_CHECK(item.key().isString(), "'", path, "': a key of kind ", item.key().tagKind(),
                 "; an EDM2 Precond state dict has parameter names");
    const std::string& key = item.key().toStringRef();
    SCORCH_CHECK(item.value().isTensor(), "'", path, "': '", key, "' is a ",
                 item.value().tagKind(), ", not a tensor");
    const torch::Tensor value = item.value().toTensor();
    torch::Tensor* target = params.find(key);
    if (target == nullptr) target = buffers.find(key);
    SCORCH_CHECK(target != nullptr, "EDM2 state dict '", path, "' has '", key, "' ",
                 shape_string(value.sizes()), ", which the network does not", against);
    SCORCH_CHECK(target->sizes() == value.sizes(), "EDM2 state dict '", path, "' does not match: '",
                 key, "' is ", shape_string(value.sizes()), " in the file and ",
                 shape_string(target->sizes()), " in the network", against);
    SCORCH_CHECK(value.is_floating_point(), "'", path, "': '", key, "' has dtype ",
                 value.scalar_type(), ", not floating point");
    copies.emplace_back(*target, value);
    seen[key] = true;
  }
  for (const auto* named : {&params, &buffers})
    for (const auto& item : *named)
      SCORCH_CHECK(seen.count(item.key()), "EDM2 state dict '", path, "' lacks '", item.key(),
                   "' ", shape_string(item.value().sizes()), against);
  torch::NoGradGuard no_grad;
  for (auto& [target, value] : copies) target.copy_(value);
  return static_cast<int64_t>(copies.size());
}

}  // namespace scorch
