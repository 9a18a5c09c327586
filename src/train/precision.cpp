// Autocast guard and dynamic loss scaling (see precision.h).
#include "train/precision.h"

#include <cmath>

#include "core/error.h"
#include "train/chunks.h"

namespace scorch {

std::optional<torch::ScalarType> autocast_dtype(const PrecisionConfig& config,
                                                const torch::Device& device) {
  if (config.dtype == PrecisionDtype::kBf16) return torch::kBFloat16;
  if (config.dtype == PrecisionDtype::kFp16 && device.is_cuda()) return torch::kHalf;
  return std::nullopt;
}

AutocastGuard::AutocastGuard(const torch::Device& device, std::optional<torch::ScalarType> dtype)
    : active_(dtype.has_value()), type_(device.type()) {
  if (!active_) return;
  previous_ = compat::get_autocast(type_);
  compat::set_autocast(type_, {true, *dtype});
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  compat::set_autocast(type_, previous_);
  at::autocast::clear_cache();
}

LossScaler::LossScaler(const PrecisionConfig& config, bool enabled, const torch::Device& device)
    : config_(config),
      enabled_(enabled),
      scale_(torch::full({}, enabled ? config.initial_scale : 1.0,
                         torch::TensorOptions(device).dtype(torch::kDouble))),
      growth_tracker_(torch::zeros({}, torch::TensorOptions(device).dtype(torch::kDouble))) {}

double LossScaler::scale() const { return scale_.item<double>(); }

int64_t LossScaler::growth_tracker() const {
  return static_cast<int64_t>(growth_tracker_.item<double>());
}

std::optional<torch::Tensor> LossScaler::scaled(int64_t accum) const {
  if (!enabled_) return std::nullopt;
  return scale_ / static_cast<double>(accum);
}

torch::Tensor LossScaler::unscale(const std::vector<torch::Tensor>& params) const {
  if (!enabled_) return {};
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  auto found_inf = torch::zeros({}, scale_.options().dtype(torch::kFloat32));
  if (grads.empty()) return found_inf;
  // One multi-tensor kernel with the inf check: x · (1/s), 1/s rounded to
  // float32 as the float64 scalar was inside the float32 kernel before (the
  // same bits).
  const torch::Tensor inv_scale = scale_.reciprocal().to(grads.front().scalar_type());
  compat::unscale_and_check_(grads, found_inf, inv_scale);
  return found_inf;
}

void LossScaler::update(const torch::Tensor& skipped) {
  if (!enabled_) return;
  torch::NoGradGuard no_grad;
  // GradScaler's rule, on the device: a skipped step multiplies the scale by
  // backoff_factor and resets the tracker; growth_interval finite steps in a
  // row multiply it by growth_factor (unless that overflows).
  const auto skip = skipped.to(torch::kDouble) > 0;
  const auto tracker = torch::where(skip, torch::zeros_like(growth_tracker_), growth_tracker_ + 1);
  const auto grow = tracker >= static_cast<double>(config_.growth_interval);
  const auto grown = scale_ * config_.growth_factor;
  scale_.copy_(torch::where(skip, scale_ * config_.backoff_factor,
                            torch::where(grow & torch::isfinite(grown), grown, scale_)));
  growth_tracker_.copy_(torch::where(grow, torch::zeros_like(tracker), tracker));
}

void LossScaler::update(bool finite) {
  update(torch::full({}, finite ? 0.0 : 1.0, torch::kDouble));
}

c10::IValue LossScaler::state() const {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("scale", scale());
  dict.insert("growth_tracker", growth_tracker());
  return dict;
}

void LossScaler::load_state(const c10::IValue& state, const std::string& origin) {
  SCORCH_CHECK(state.isGenericDict(), origin, ": 'loss_scaler' should be a dict, got ",
               state.tagKind());
  const auto dict = state.toGenericDict();
  const auto scale = dict.find("scale");
  const auto tracker = dict.find("growth_tracker");
  SCORCH_CHECK(scale != dict.end() && scale->value().isDouble() && tracker != dict.end() &&
                   tracker->value().isInt(),
               origin, ": 'loss_scaler' needs 'scale' (float) and 'growth_tracker' (int)");
  const double s = scale->value().toDouble();
  SCORCH_CHECK(std::isfinite(s) && s > 0, origin, ": loss scale ", s, " is not a positive number");
  if (!enabled_) return;  // a run switched from fp16 to bf16/fp32 has no scale
  scale_.fill_(s);
  growth_tracker_.fill_(static_cast<double>(tracker->value().toInt()));
}

namespace {

// On CUDA the flat copy of a chunk is a transient buffer the size of the
// chunk: 2^28 float32 elements (1 GiB) at most.
constexpr int64_t kCudaZeroChunk = int64_t{1} << 28;

// `g` as a 1-D view of its memory, in memory order (elementwise work does
// not care about the order), or undefined when it is not one dense block
// (overlapping or with gaps).
torch::Tensor memory_view(const torch::Tensor& g) {
  if (g.is_contiguous()) return g.view({-1});
  if (!g.is_non_overlapping_and_dense()) return {};
  for (int64_t s : g.strides())
    if (s < 0) return {};
  return g.as_strided({g.numel()}, {1}, g.storage_offset());  // e.g. channels_last
}

}  // namespace

torch::Tensor zero_nonfinite_grads(const std::vector<torch::Tensor>& params, bool report) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> flat;  // gradients as 1-D views of their memory
  torch::Tensor found;
  for (const auto& p : params) {
    const torch::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (!found.defined()) found = torch::zeros({}, g.options().dtype(torch::kFloat32));
    torch::Tensor v = memory_view(g);
    if (v.defined() && (flat.empty() || v.scalar_type() == flat.front().scalar_type()) &&
        v.numel() > 0) {
      flat.push_back(v);
    } else if (g.numel() > 0) {  // not seen in Scorch's networks: its own kernels
      if (report) found.logical_or_(torch::isfinite(g).logical_not().any());
      g.nan_to_num_(0.0, 0.0, 0.0);
    }
  }
  if (flat.empty()) return report ? found : torch::Tensor();
  // LibTorch 2.x has no _foreach_nan_to_num_, and arithmetic cannot turn a
  // NaN into 0 (every _foreach_ op propagates it), so per chunk: one cat of
  // the gradients into a flat buffer, one nan_to_num_ on it, and one
  // multi-tensor copy back (_foreach_copy_) -- three kernels whatever the
  // number of tensors, plus one reduction for `report`. The copy back
  // rewrites finite entries with their own bits.
  const torch::Device device = flat.front().device();
  const int64_t budget = device.is_cuda() ? kCudaZeroChunk : chunk_elements(device);
  for (const auto& [begin, end] : chunk_ranges(flat, budget)) {
    const auto views = slice(flat, begin, end);
    std::vector<int64_t> sizes;
    for (const auto& v : views) sizes.push_back(v.numel());
    torch::Tensor buffer = torch::cat(views);
    if (report) found.logical_or_(torch::isfinite(buffer).logical_not().any());
    buffer.nan_to_num_(0.0, 0.0, 0.0);
    compat::foreach_copy_(views, buffer.split_with_sizes(sizes));
  }
  return report ? found : torch::Tensor();
}

torch::Tensor nonfinite_gradients(const torch::Tensor& grad_norm, const torch::Tensor& found_inf,
                                  bool zeroed) {
  auto nonfinite = zeroed ? torch::zeros({}, grad_norm.options().dtype(torch::kBool))
                          : torch::isfinite(grad_norm).logical_not();
  if (found_inf.defined()) nonfinite = nonfinite.logical_or(found_inf > 0);
  return nonfinite;
}

std::vector<std::string> nonfinite_tensor_names(
    const std::vector<std::pair<std::string, torch::Tensor>>& named) {
  std::vector<std::string> out;
  for (const auto& [name, t] : named)
    if (t.defined() && !torch::isfinite(t).all().item<bool>()) out.push_back(name);
  return out;
}

}  // namespace scorch
