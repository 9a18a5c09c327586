// EDM2's loss (losses.h Edm2Loss) on a tiny EDM2 Precond (nn/edm2.h): the
// batch loss and per-sample losses against their closed form
//   l = (lambda / e^u) ||D(y + sigma z; sigma) - y||^2 + N u,
// lambda = (sigma^2 + sd^2) / (sigma sd)^2, with sigma, z drawn as the loss
// draws them and D, u from the network itself; the gradient reaching the
// logvar head against the chain rule with dl/du = N - (lambda / e^u) ||D - y||^2
// (N times the elementwise 1 - lambda (D - y)^2 e^{-u} averaged); and the
// config: training.loss=edm2 needs model.name=edm2, and
// training.zero_nonfinite_grads=auto is on for edm2 only.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>

#include "core/batch_random.h"
#include "core/config.h"
#include "losses/loss.h"
#include "losses/losses.h"
#include "nn/edm2.h"
#include "testing/edm2_tiny.h"
#include "testing/expect_error.h"
#include "testing/sdes.h"

namespace scorch {
namespace {

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  const auto ref = b.to(torch::kDouble);
  return (a.to(torch::kDouble) - ref).abs().max().item<double>() /
         ref.abs().max().item<double>();
}

TEST(Edm2Loss, EqualsItsClosedFormAndItsLogvarGradient) {
  torch::manual_seed(3);
  EDM2Precond net(testing::tiny_edm2_options(), testing::make_test_sde(SdeKind::kVE, 80.0));
  net->eval();  // no forced normalization: every forward sees the same weights
  {
    torch::NoGradGuard no_grad;  // a non-zero output gain, so that D depends on the U-Net
    for (auto& item : net->named_parameters())
      if (item.key() == "unet.out_gain") item.value().fill_(0.7);
  }
  const int64_t batch = 6;
  const auto x = torch::randn({batch, 3, 16, 16}) * 0.5;
  const auto labels = torch::tensor({0, 2, 1, 3, 0, 3}, torch::kLong);  // 3: the null class
  Edm2LossOptions o;
  o.p_mean = -0.4;
  o.p_std = 1.4;
  o.sigma_data = 0.5;
  const Edm2Loss loss(o);
  BatchRandom rng(11, 5, batch, 0, batch);
  const LossOutput out = loss(*net, x, labels, &rng);

  // The same draws, in the loss's order: ln sigma first, then z.
  BatchRandom same(11, 5, batch, 0, batch);
  const auto v = same.normal({batch}, x.options());
  const auto sigma = torch::exp(v * o.p_std + o.p_mean);
  const auto z = same.normal(x.sizes(), x.options());
  torch::Tensor d, u;
  {
    torch::NoGradGuard no_grad;
    const auto r = net->denoise_with_logvar(x + z * sigma.view({-1, 1, 1, 1}), sigma, labels);
    d = r.denoised.to(torch::kDouble);
    u = r.logvar.to(torch::kDouble);
  }
  const auto s = sigma.to(torch::kDouble);
  const double sd = o.sigma_data, n = 3 * 16 * 16;
  const auto lambda = (s * s + sd * sd) / (s * s * sd * sd);
  const auto err = (d - x.to(torch::kDouble)).pow(2).flatten(1).sum(1);
  const auto want = lambda * torch::exp(-u) * err + n * u;
  EXPECT_GT(u.abs().min().item<double>(), 1e-3);  // a logvar that matters
  EXPECT_LE(relative_error(out.per_sample, want), 1e-5);
  EXPECT_NEAR(out.loss.item<double>(), want.mean().item<double>(),
              1e-5 * want.abs().max().item<double>());
  // Reported t: the CDF of ln sigma's draw.
  EXPECT_LE(relative_error(out.t, 0.5 * (1 + torch::erf(v.to(torch::kDouble) / std::sqrt(2.0)))),
            1e-6);

  // d(batch loss)/du_b = (N - (lambda / e^u) ||D - y||^2) / B, through the
  // logvar head u = logvar_linear(logvar_fourier(c_noise)) to its weight.
  out.loss.backward();
  torch::Tensor weight;
  for (auto& item : net->named_parameters())
    if (item.key() == "logvar_linear.weight") weight = item.value();
  ASSERT_TRUE(weight.defined() && weight.grad().defined());
  const auto dl_du = ((n - lambda * torch::exp(-u) * err) / batch).to(torch::kFloat);
  const auto head = net->logvar(sigma);
  const auto want_grad = torch::autograd::grad({head}, {weight}, {dl_du})[0];
  EXPECT_LE(relative_error(weight.grad(), want_grad), 1e-4);
  std::printf("[ edm2 loss ] per-sample rel err %.3g, logvar-head gradient rel err %.3g\n",
              relative_error(out.per_sample, want), relative_error(weight.grad(), want_grad));
}

// The loss needs EDM2's network (its logvar head).
TEST(Edm2Loss, RefusesOtherNetworks) {
  const std::string path = std::string(SCORCH_SOURCE_DIR) + "/configs/edm2/img64-xs.yaml";
  const Config c = load_config(path);
  EXPECT_EQ(resolved_loss(c), LossName::kEdm2);
  testing::expect_error(
      [&] {
        load_config(path, {"model.name=ncsnpp", "model.embedding_type=positional"});
      },
      {"training.loss=edm2", "model.name=edm2", "ncsnpp"});
}

TEST(Edm2Loss, ZeroNonfiniteGradsIsOnByDefaultForEdm2Only) {
  const std::string edm2 = std::string(SCORCH_SOURCE_DIR) + "/configs/edm2/img64-xs.yaml";
  EXPECT_EQ(load_config(edm2).training.zero_nonfinite_grads, AutoSwitch::kAuto);
  EXPECT_TRUE(resolved_zero_nonfinite_grads(load_config(edm2)));
  EXPECT_FALSE(resolved_zero_nonfinite_grads(load_config(edm2, {"training.loss=edm"})));
  EXPECT_FALSE(
      resolved_zero_nonfinite_grads(load_config(edm2, {"training.zero_nonfinite_grads=false"})));
  EXPECT_TRUE(resolved_zero_nonfinite_grads(
      load_config(edm2, {"training.loss=edm", "training.zero_nonfinite_grads=true"})));
  EXPECT_FALSE(resolved_zero_nonfinite_grads(Config{}));  // every other loss: off
}

}  // namespace
}  // namespace scorch
