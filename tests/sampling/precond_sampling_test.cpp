// The samplers that step in sigma (edm, dpm_solver_pp, unipc) on an
// EDM-preconditioned network use its denoiser D directly
// (make_precond_denoiser), as EDM's sampler uses its network: with the exact
// denoiser of Gaussian data and a score function that returns NaN, they still
// land on the closed-form end of the probability-flow ODE; the other samplers
// read the score.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/config.h"
#include "core/error.h"
#include "nn/precond.h"
#include "nn/score_model.h"
#include "sampling/conditional.h"
#include "sampling/edm_sampler.h"
#include "sampling/sampler.h"
#include "testing/gaussian_precond_net.h"
#include "testing/sdes.h"

namespace scorch {
namespace {

// The probability-flow ODE of N(0, s^2 I) data in x_hat = x / m: x_hat(sigma)
// = x_hat(sigma_max) sqrt((s^2 + sigma^2) / (s^2 + sigma_max^2)), from
// x_hat = sigma_max z; the samplers end with D(x_hat; sigma_min) =
// s^2 / (s^2 + sigma_min^2) x_hat.
TEST(PrecondSampling, SigmaSamplersUseTheNetworksDenoiser) {
  const double s = 0.5;
  for (auto sde_kind : {SdeKind::kVP, SdeKind::kVE}) {
    PrecondOptions o;
    o.kind = Precond::kEDM;
    auto sde = testing::make_test_sde(sde_kind);
    ScoreNet net(
        make_precond_score_net(o, sde, std::make_shared<testing::GaussianPrecondNet>(o, s)));
    const auto denoiser = make_precond_denoiser(net);
    ASSERT_TRUE(static_cast<bool>(denoiser));
    const ScoreFn nan_score = [](const torch::Tensor& x, const torch::Tensor&) {
      return torch::full_like(x, std::numeric_limits<double>::quiet_NaN());
    };
    const double sigma_max = edm_sigma_of_time(*sde, sde->T());
    for (const char* method : {"edm", "dpm_solver_pp", "unipc"}) {
      const Config c = parse_config(
          "", "x", {std::string("sampling.method=") + method, "sampling.num_steps=64"});
      torch::manual_seed(4);
      const auto r =
          sample_from_config(c, *sde, nan_score, {256, 2}, torch::TensorOptions(), {}, denoiser);
      torch::manual_seed(4);
      const auto z = torch::randn({256, 2}).to(torch::kDouble);  // as sample_randn draws
      // The flow down to sigma_min = sigma(eps), then D(x; sigma_min) (the last step).
      const double lo = edm_sigma_of_time(*sde, sampling_eps(c));
      const auto want =
          z * (sigma_max * s * s / std::sqrt((s * s + lo * lo) * (s * s + sigma_max * sigma_max)));
      ASSERT_TRUE(torch::isfinite(r.x).all().item<bool>()) << method;
      const double err = (r.x.to(torch::kDouble) - want).abs().max().item<double>();
      std::printf("[ precond ] %-13s %-5s max |x - closed form| %.2e, NFE %lld\n", method,
                  testing::sde_label(sde_kind), err, static_cast<long long>(r.nfe));
      EXPECT_LT(err, 1e-2) << method;  // discretisation at 64 levels (|x| up to ~2)
      // The same sampler through the score (D derived from it) steps alike.
      torch::manual_seed(4);
      const auto via_score = sample_from_config(c, *sde, make_score_fn(net, sde, true), {256, 2},
                                                torch::TensorOptions());
      EXPECT_EQ(via_score.nfe, r.nfe) << method;
      EXPECT_LT((via_score.x.to(torch::kDouble) - r.x.to(torch::kDouble)).abs().max().item<double>(),
                1e-4)
          << method;
    }
    // The PC sampler reads the score.
    const Config pc = parse_config("", "x", {"sampling.method=pc", "sampling.num_steps=4"});
    const auto r = sample_from_config(pc, *sde, nan_score, {4, 2}, torch::TensorOptions(), {},
                                      denoiser);
    EXPECT_FALSE(torch::isfinite(r.x).all().item<bool>());
  }
}

// Guidance on the denoiser: D_w = (1 + w) D(x, y) - w D(x, null), labels
// checked as for the guided score; a network without precond has none.
TEST(PrecondSampling, GuidedDenoiserCombinesConditionalAndNull) {
  Config c = parse_config("", "x",
                          {"data.dataset=synthetic_images", "data.image_size=8",
                           "data.num_channels=1", "data.num_classes=3", "model.name=ncsnpp",
                           "model.nf=16", "model.ch_mult=[1,2]", "model.num_res_blocks=1",
                           "model.attn_resolutions=[4]", "model.init_scale=1.0",
                           "model.dropout=0", "model.precond=edm"});
  torch::manual_seed(0);
  ScoreNet net = make_score_net(c);
  net->eval();
  auto* precond = dynamic_cast<PrecondScoreNetImpl*>(net.get());
  ASSERT_NE(precond, nullptr);
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 1, 8, 8}, torch::kDouble) * 3.0;
  const auto labels = torch::tensor({0, 2});
  const double sigma = 2.5, w = 1.5;
  const auto sig = torch::full({2}, sigma);
  const auto cond = precond->denoise(x.to(torch::kFloat), sig, labels).to(torch::kDouble);
  const auto null =
      precond->denoise(x.to(torch::kFloat), sig, torch::tensor({3, 3})).to(torch::kDouble);
  const auto guided = make_precond_denoiser(net, labels, 3, w)(x, sigma);
  EXPECT_TRUE(torch::allclose(guided, (1 + w) * cond - w * null, 1e-5, 1e-5));
  EXPECT_GT((cond - null).abs().max().item<double>(), 1e-4);  // the labels matter
  EXPECT_TRUE(torch::allclose(make_precond_denoiser(net, labels)(x, sigma), cond, 1e-6, 1e-6));
  EXPECT_THROW(make_precond_denoiser(net, torch::tensor({0, 3}), 3, w), Error);
  EXPECT_THROW(make_precond_denoiser(net, labels, 3, w)(torch::randn({3, 1, 8, 8}), sigma), Error);
  c.model.precond = Precond::kNone;
  EXPECT_FALSE(static_cast<bool>(make_precond_denoiser(make_score_net(c))));
}

}  // namespace
}  // namespace scorch
