// FIR and naive resampling, and the Upsample / Downsample modules (see
// resample.h). Pad arithmetic follows StyleGAN2's upfirdn_2d.py as ported by
// score_sde_pytorch models/up_or_down_sampling.py.
#include "nn/resample.h"

#include <map>
#include <mutex>
#include <sstream>
#include <string>

#include "core/error.h"
#include "nn/layers.h"

namespace scorch {
namespace {

namespace F = torch::nn::functional;

// Python's floor division: the pad formulas use it with possibly negative p.
int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

void check_image(const torch::Tensor& x, const char* what) {
  TORCH_CHECK(x.dim() == 4, what, " expects [B, C, H, W], got ", x.sizes());
}

// make_fir_kernel's kernel for (taps, gain, device), built once: forward
// passes ask for it at every resampling layer.
torch::Tensor fir_kernel(const std::vector<int64_t>& taps, double gain, const torch::Device& device) {
  static std::mutex mutex;
  static std::map<std::string, torch::Tensor> cache;
  std::ostringstream key;
  for (int64_t t : taps) key << t << ',';
  key << std::hexfloat << gain << '@' << device;
  const std::lock_guard<std::mutex> lock(mutex);
  auto& kernel = cache[key.str()];
  if (!kernel.defined()) kernel = make_fir_kernel(taps, gain, device);
  return kernel;
}

}  // namespace

torch::Tensor make_fir_kernel(const std::vector<int64_t>& taps, double gain,
                              const torch::Device& device) {
  SCORCH_CHECK(!taps.empty(), "model.fir_kernel must list at least one tap");
  std::vector<float> values(taps.begin(), taps.end());
  auto k1 = torch::tensor(values, torch::kFloat);
  auto k = torch::outer(k1, k1);
  const double sum = k.sum().item<double>();
  SCORCH_CHECK(sum != 0.0, "model.fir_kernel taps must not sum to zero");
  k = k / static_cast<float>(sum);
  if (gain != 1.0) k = k * gain;
  return k.to(device);
}

torch::Tensor upfirdn2d(const torch::Tensor& x, const torch::Tensor& kernel, int64_t up,
                        int64_t down, int64_t pad0, int64_t pad1) {
  check_image(x, "upfirdn2d");
  TORCH_CHECK(kernel.dim() == 2 && kernel.size(0) == kernel.size(1),
              "upfirdn2d expects a square [K, K] kernel, got ", kernel.sizes());
  TORCH_CHECK(up >= 1 && down >= 1, "upfirdn2d: up and down must be >= 1");
  const int64_t batch = x.size(0), channels = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t k = kernel.size(0);

  // 1. Zero insertion: every pixel followed by up-1 zeros along H and W.
  auto y = x.reshape({batch * channels, 1, h, 1, w, 1});
  if (up > 1) y = F::pad(y, F::PadFuncOptions({0, up - 1, 0, 0, 0, up - 1}));
  y = y.reshape({batch * channels, 1, h * up, w * up});
  // 2. Pad (negative values crop).
  y = torch::constant_pad_nd(y, {pad0, pad1, pad0, pad1});
  // 3.-4. Convolution (conv2d correlates, so flip the kernel), then decimation
  // through the stride.
  const auto weight = torch::flip(kernel, {0, 1}).to(y.options()).view({1, 1, k, k});
  y = F::conv2d(y, weight, F::Conv2dFuncOptions().stride(down));
  return y.reshape({batch, channels, y.size(2), y.size(3)});
}

torch::Tensor upsample_2d(const torch::Tensor& x, const std::vector<int64_t>& taps, int64_t factor,
                          double gain) {
  const auto kernel = fir_kernel(taps, gain * factor * factor, x.device());
  const int64_t p = kernel.size(0) - factor;
  return upfirdn2d(x, kernel, factor, 1, floor_div(p + 1, 2) + factor - 1, floor_div(p, 2));
}

torch::Tensor downsample_2d(const torch::Tensor& x, const std::vector<int64_t>& taps,
                            int64_t factor, double gain) {
  const auto kernel = fir_kernel(taps, gain, x.device());
  const int64_t p = kernel.size(0) - factor;
  return upfirdn2d(x, kernel, 1, factor, floor_div(p + 1, 2), floor_div(p, 2));
}

torch::Tensor upsample_conv_2d(const torch::Tensor& x, const torch::Tensor& w,
                               const std::vector<int64_t>& taps, int64_t factor, double gain) {
  check_image(x, "upsample_conv_2d");
  TORCH_CHECK(w.dim() == 4 && w.size(2) == w.size(3), "upsample_conv_2d: square kernel expected");
  const int64_t conv_k = w.size(3);
  const auto kernel = fir_kernel(taps, gain * factor * factor, x.device());
  const int64_t p = (kernel.size(0) - factor) - (conv_k - 1);
  // Transposed convolution with the spatially flipped kernel, in/out swapped:
  // [out, in, k, k] -> [in, out, k, k]. Output (H-1)*factor + k.
  const auto wt = torch::flip(w, {2, 3}).transpose(0, 1);
  auto y = F::conv_transpose2d(x, wt, F::ConvTranspose2dFuncOptions().stride(factor));
  return upfirdn2d(y, kernel, 1, 1, floor_div(p + 1, 2) + factor - 1, floor_div(p, 2) + 1);
}

torch::Tensor conv_downsample_2d(const torch::Tensor& x, const torch::Tensor& w,
                                 const std::vector<int64_t>& taps, int64_t factor, double gain) {
  check_image(x, "conv_downsample_2d");
  TORCH_CHECK(w.dim() == 4 && w.size(2) == w.size(3), "conv_downsample_2d: square kernel expected");
  const int64_t conv_k = w.size(3);
  const auto kernel = fir_kernel(taps, gain, x.device());
  const int64_t p = (kernel.size(0) - factor) + (conv_k - 1);
  auto y = upfirdn2d(x, kernel, 1, 1, floor_div(p + 1, 2), floor_div(p, 2));
  return F::conv2d(y, w, F::Conv2dFuncOptions().stride(factor));
}

torch::Tensor naive_upsample_2d(const torch::Tensor& x, int64_t factor) {
  check_image(x, "naive_upsample_2d");
  const int64_t c = x.size(1), h = x.size(2), w = x.size(3);
  auto y = x.reshape({-1, c, h, 1, w, 1}).repeat({1, 1, 1, factor, 1, factor});
  return y.reshape({-1, c, h * factor, w * factor});
}

torch::Tensor naive_downsample_2d(const torch::Tensor& x, int64_t factor) {
  check_image(x, "naive_downsample_2d");
  const int64_t c = x.size(1), h = x.size(2), w = x.size(3);
  return x.reshape({-1, c, h / factor, factor, w / factor, factor}).mean({3, 5});
}

// ---------------------------------------------------------------------------
FirConv2dImpl::FirConv2dImpl(const FirConv2dOptions& options) : options_(options) {
  TORCH_CHECK(!(options.up() && options.down()), "FirConv2d: up and down are exclusive");
  TORCH_CHECK(options.kernel() >= 1 && options.kernel() % 2 == 1, "FirConv2d: odd kernel expected");
  auto w = torch::empty({options.out_ch(), options.in_ch(), options.kernel(), options.kernel()});
  default_init_(w);
  weight_ = register_parameter("weight", w);
  bias_ = register_parameter("bias", torch::zeros({options.out_ch()}));
}

torch::Tensor FirConv2dImpl::forward(const torch::Tensor& x) {
  torch::Tensor y;
  if (options_.up()) {
    y = upsample_conv_2d(x, weight_, options_.resample_kernel());
  } else if (options_.down()) {
    y = conv_downsample_2d(x, weight_, options_.resample_kernel());
  } else {
    y = F::conv2d(x, weight_, F::Conv2dFuncOptions().padding(options_.kernel() / 2));
  }
  return y + bias_.reshape({1, -1, 1, 1});
}

UpsampleImpl::UpsampleImpl(const ResampleOptions& options) : options_(options) {
  if (!options.with_conv()) return;
  if (options.fir()) {
    fir_conv_ =
        register_module("Conv2d_0", FirConv2d(FirConv2dOptions(options.in_ch(), options.out_ch(), 3)
                                                  .up(true)
                                                  .resample_kernel(options.fir_kernel())));
  } else {
    conv_ = register_module("Conv_0", conv3x3(options.in_ch(), options.out_ch()));
  }
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x) {
  check_image(x, "Upsample");
  if (options_.fir()) {
    return options_.with_conv() ? fir_conv_(x) : upsample_2d(x, options_.fir_kernel(), 2);
  }
  auto h = F::interpolate(x, F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{x.size(2) * 2, x.size(3) * 2})
                                 .mode(torch::kNearest));
  return options_.with_conv() ? conv_(h) : h;
}

DownsampleImpl::DownsampleImpl(const ResampleOptions& options) : options_(options) {
  if (!options.with_conv()) return;
  if (options.fir()) {
    fir_conv_ =
        register_module("Conv2d_0", FirConv2d(FirConv2dOptions(options.in_ch(), options.out_ch(), 3)
                                                  .down(true)
                                                  .resample_kernel(options.fir_kernel())));
  } else {
    conv_ = register_module("Conv_0", make_conv(options.in_ch(), options.out_ch(), 3, 1.0,
                                                /*stride=*/2, /*padding=*/0));
  }
}

torch::Tensor DownsampleImpl::forward(const torch::Tensor& x) {
  check_image(x, "Downsample");
  if (options_.fir()) {
    return options_.with_conv() ? fir_conv_(x) : downsample_2d(x, options_.fir_kernel(), 2);
  }
  if (!options_.with_conv()) return F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2));
  // TensorFlow's "SAME" padding for a stride-2 3x3 conv: one extra row/column
  // at the bottom/right.
  return conv_(F::pad(x, F::PadFuncOptions({0, 1, 0, 1})));
}

}  // namespace scorch
