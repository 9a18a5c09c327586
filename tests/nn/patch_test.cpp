// Patch-based score models (nn/patch.h): coordinate channels and tiles in
// closed form, crops against direct slicing, world-size invariance of the
// random crops, tiled and whole-image scoring against a pointwise network
// that reads its coordinates, PC sampling through the tiles reproducing a
// position-dependent Gaussian, and an ADM inner network training through the
// patch wrapper.
#include "nn/patch.h"

#include <gtest/gtest.h>

#include <memory>

#include "core/config.h"
#include "core/error.h"
#include "nn/adm.h"
#include "nn/model_factory.h"
#include "nn/score_model.h"
#include "sampling/sampler.h"
#include "sde/sde.h"

namespace scorch {
namespace {

TEST(Patch, CoordinateChannelsAreColumnThenRowOnMinusOneToOne) {
  const auto c = coordinate_channels(5, torch::kDouble);
  ASSERT_EQ(c.sizes(), (std::vector<int64_t>{2, 5, 5}));
  for (int64_t i = 0; i < 5; ++i) {
    for (int64_t j = 0; j < 5; ++j) {
      EXPECT_DOUBLE_EQ(c[0][i][j].item<double>(), -1.0 + 2.0 * j / 4.0);
      EXPECT_DOUBLE_EQ(c[1][i][j].item<double>(), -1.0 + 2.0 * i / 4.0);
    }
  }
}

TEST(Patch, TilesCoverTheImageWithTheLastFlushToTheEdge) {
  EXPECT_EQ(tile_starts(28, 16, 8), (std::vector<int64_t>{0, 8, 12}));
  EXPECT_EQ(tile_starts(32, 16, 8), (std::vector<int64_t>{0, 8, 16}));
  EXPECT_EQ(tile_starts(32, 16, 16), (std::vector<int64_t>{0, 16}));
  EXPECT_EQ(tile_starts(28, 16, 16), (std::vector<int64_t>{0, 12}));
  EXPECT_EQ(tile_starts(16, 16, 5), (std::vector<int64_t>{0}));
  EXPECT_THROW(tile_starts(28, 16, 17), Error);
  EXPECT_THROW(tile_starts(8, 16, 4), Error);
}

TEST(Patch, CropsAreTheSlicesAtTheirOrigins) {
  torch::manual_seed(0);
  const auto images = torch::randn({4, 3, 10, 10});
  const auto origins = torch::tensor({0, 0, 6, 2, 3, 6, 6, 6}, torch::kLong).view({4, 2});
  const auto crops = crop_patches(images, origins, 4);
  for (int64_t b = 0; b < 4; ++b) {
    const int64_t r = origins[b][0].item<int64_t>(), c = origins[b][1].item<int64_t>();
    EXPECT_TRUE(torch::equal(crops[b], images[b].narrow(1, r, 4).narrow(2, c, 4))) << b;
  }
}

// The crops of a global batch do not depend on how it is split over ranks,
// and every origin in [0, S - P] occurs.
TEST(Patch, RandomCropsArePerGlobalSample) {
  torch::manual_seed(1);
  const auto images = torch::randn({64, 1, 12, 12});
  BatchRandom whole(7, 3, 64, 0, 64), first(7, 3, 64, 0, 32), second(7, 3, 64, 32, 32);
  const auto all = random_patches(images, 5, whole);
  const auto a = random_patches(images.narrow(0, 0, 32), 5, first);
  const auto b = random_patches(images.narrow(0, 32, 32), 5, second);
  EXPECT_TRUE(torch::equal(all.origins, torch::cat({a.origins, b.origins})));
  EXPECT_TRUE(torch::equal(all.x, torch::cat({a.x, b.x})));
  EXPECT_EQ(all.origins.min().item<int64_t>(), 0);
  EXPECT_EQ(all.origins.max().item<int64_t>(), 7);
}

// A pointwise network that reads its coordinate channels: the exact score
// (as the VP network output, -std * score) of pixels independent and
// N(mu(column, row), s^2) with mu = 0.5 u - 0.3 v, u, v the coordinates.
class GaussianByPositionImpl : public ScoreNetImpl {
 public:
  GaussianByPositionImpl(std::shared_ptr<const Sde> sde, double s) : sde_(std::move(sde)), s_(s) {}
  torch::Tensor forward(const torch::Tensor& in, const torch::Tensor& time_cond,
                        const torch::Tensor&) override {
    ++calls;
    last_input = in.sizes().vec();
    const auto x = in.narrow(1, 0, 1), u = in.narrow(1, 1, 1), v = in.narrow(1, 2, 1);
    const auto mu = 0.5 * u - 0.3 * v;
    const auto t = time_cond / 999.0;
    const auto m = sde_->marginal_prob(torch::ones({in.size(0)}, in.options()), t);
    const auto a = m.mean.view({-1, 1, 1, 1}), std = m.std.view({-1, 1, 1, 1});
    return std * (x - a * mu) / (a * a * s_ * s_ + std * std);
  }
  int calls = 0;
  std::vector<int64_t> last_input;

 private:
  std::shared_ptr<const Sde> sde_;
  double s_;
};

Config vp_config() {
  Config c;
  c.training.sde = SdeKind::kVP;
  c.training.continuous = true;
  c.sampling.method = SamplingMethod::kPc;
  c.sampling.predictor = Predictor::kEulerMaruyama;
  c.sampling.corrector = Corrector::kNone;
  c.sampling.num_steps = 200;
  return c;
}

TEST(Patch, TilesAndWholeImageGiveThePointwiseScore) {
  torch::manual_seed(2);
  std::shared_ptr<const Sde> sde = make_sde(vp_config());
  auto inner = std::make_shared<GaussianByPositionImpl>(sde, 0.1);
  auto opts = PatchOptions().patch_size(8).image_size(14).stride(4);
  PatchScoreNetImpl tiles(inner, opts);
  PatchScoreNetImpl full(inner, PatchOptions(opts).sampling(PatchSampling::kFull));
  const auto x = torch::randn({3, 1, 14, 14}, torch::kDouble);
  const auto tc = torch::tensor({10.0, 500.0, 990.0}, torch::kDouble);

  inner->calls = 0;
  const auto by_tiles = tiles.forward(x, tc);
  EXPECT_EQ(inner->calls, 1);  // all 9 tiles of all 3 images in one batch
  EXPECT_EQ(inner->last_input, (std::vector<int64_t>{27, 3, 8, 8}));
  const auto whole = full.forward(x, tc);
  EXPECT_EQ(inner->last_input, (std::vector<int64_t>{3, 3, 14, 14}));
  EXPECT_LT((by_tiles - whole).abs().max().item<double>(), 1e-12);

  // Training form: patches at their origins score like the same pixels of the whole image.
  const auto origins = torch::tensor({0, 6, 3, 1, 6, 6}, torch::kLong).view({3, 2});
  const auto patches = crop_patches(x, origins, 8);
  {
    PatchOriginsScope scope(tiles, origins);
    const auto out = tiles.forward(patches, tc);
    EXPECT_LT((out - crop_patches(whole, origins, 8)).abs().max().item<double>(), 1e-12);
    // A loss that tiles its batch twice (sliced score matching) reuses the origins.
    const auto twice = tiles.forward(patches.repeat({2, 1, 1, 1}), tc.repeat({2}));
    EXPECT_LT((twice - out.repeat({2, 1, 1, 1})).abs().max().item<double>(), 1e-12);
    EXPECT_THROW(tiles.forward(x, tc), c10::Error);  // whole images while origins are set
  }
  EXPECT_FALSE(tiles.patch_origins().defined());
}

// Returns its input's coordinate channels: what the inner network is fed.
class EchoCoordinatesImpl : public ScoreNetImpl {
 public:
  torch::Tensor forward(const torch::Tensor& in, const torch::Tensor&,
                        const torch::Tensor&) override {
    return in.narrow(1, in.size(1) - 2, 2);  // x has 2 channels here, so shapes agree
  }
};

// Tiles put every patch back where it came from: the assembled output of a
// network echoing its coordinates is the whole image's coordinate map. For
// uncentered data the coordinates come in [0, 1], as the data do.
TEST(Patch, TilesAssembleTheCoordinateMapInTheDataConvention) {
  auto echo = std::make_shared<EchoCoordinatesImpl>();
  const auto x = torch::zeros({2, 2, 28, 28});
  const auto t = torch::tensor({1.0, 2.0});
  const auto map = coordinate_channels(28, torch::kFloat).unsqueeze(0).expand({2, 2, 28, 28});
  PatchScoreNetImpl centered(echo, PatchOptions().patch_size(16).image_size(28).stride(8));
  EXPECT_LT((centered.forward(x, t) - map).abs().max().item<double>(), 1e-6);
  PatchScoreNetImpl unit(echo, PatchOptions().patch_size(16).image_size(28).stride(5).centered(false));
  EXPECT_LT((unit.forward(x, t) - (map + 1) / 2).abs().max().item<double>(), 1e-6);
}

// PC sampling of 14x14 images through 8x8 tiles: every pixel's mean and
// std are the position-dependent Gaussian's.
TEST(Patch, SamplingThroughTilesReproducesAPositionDependentGaussian) {
  torch::manual_seed(3);
  const Config c = vp_config();
  std::shared_ptr<const Sde> sde = make_sde(c);
  const double s = 0.1;
  auto net = std::make_shared<PatchScoreNetImpl>(std::make_shared<GaussianByPositionImpl>(sde, s),
                                                 PatchOptions().patch_size(8).image_size(14).stride(4));
  torch::NoGradGuard no_grad;
  const auto score = make_score_fn(net, sde, /*continuous=*/true);
  const auto out = sample_from_config(c, *sde, score, {2000, 1, 14, 14}, torch::kDouble).x;
  const auto coords = coordinate_channels(14, torch::kDouble);
  const auto mu = 0.5 * coords[0] - 0.3 * coords[1];
  const auto mean_err = (out.mean(0)[0] - mu).abs().max().item<double>();
  const auto std_err = (out.std(0)[0] / s - 1).abs().max().item<double>();
  std::printf("[ patch ] max |mean - mu| %.4f, max |std / s - 1| %.3f over 196 pixels\n",
              mean_err, std_err);
  EXPECT_LT(mean_err, 0.02);  // mu spans [-0.8, 0.8]; sampling error ~ s / sqrt(2000) = 0.002
  EXPECT_LT(std_err, 0.15);
}

// The config path: an ADM that takes C + 2 channels inside the wrapper,
// trained by a loss on patches with origins, gradients reaching every tensor.
TEST(Patch, ConfigBuildsAnAdmOnPatchesThatTrains) {
  torch::manual_seed(4);
  const Config c = load_config(std::string(SCORCH_SOURCE_DIR) + "/configs/fashion_mnist/patch16.yaml",
                               {"model.nf=32", "model.ch_mult=[1,2]", "model.num_res_blocks=1"});
  ScoreNet net = make_score_net(c);
  auto* patch = dynamic_cast<PatchScoreNetImpl*>(net.get());
  ASSERT_NE(patch, nullptr);
  auto* adm = dynamic_cast<ADMImpl*>(patch->inner().get());
  ASSERT_NE(adm, nullptr);
  EXPECT_EQ(adm->options().in_channels(), 3);
  EXPECT_EQ(adm->options().out_channels(), 1);
  EXPECT_EQ(adm->options().image_size(), 16);
  EXPECT_EQ(adm->options().attention_ds(), (std::vector<int64_t>{2}));
  EXPECT_EQ(patch->options().stride(), 8);

  // Move the zero-initialised output layers so the input matters.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.add_(0.01 * torch::randn_like(p));
  }
  const auto images = torch::rand({4, 1, 28, 28});
  BatchRandom rng(1, 0, 4, 0, 4);
  const auto p = random_patches(images, 16, rng);
  std::shared_ptr<const Sde> sde = make_sde(c);
  const auto t = torch::rand({4}) * 0.9 + 0.05;
  torch::Tensor loss;
  {
    PatchOriginsScope scope(*net, p.origins);
    const auto z = torch::randn_like(p.x);
    const auto m = sde->marginal_prob(p.x, t);
    const auto s = score_fn(*net, *sde, true, m.mean + m.std.view({-1, 1, 1, 1}) * z, t);
    loss = (s * m.std.view({-1, 1, 1, 1}) + z).square().mean();
  }
  loss.backward();
  for (const auto& item : net->named_parameters())
    EXPECT_TRUE(item.value().grad().defined() && item.value().grad().abs().sum().item<double>() > 0)
        << item.key();
  // Coordinates matter: the same patch placed elsewhere scores differently.
  torch::NoGradGuard no_grad;
  net->eval();
  const auto x = p.x.narrow(0, 0, 1), tc = torch::tensor({500.0});
  PatchScoreNetImpl& pn = *patch;
  pn.set_patch_origins(torch::tensor({{0, 0}}, torch::kLong));
  const auto a = pn.forward(x, tc);
  pn.set_patch_origins(torch::tensor({{12, 12}}, torch::kLong));
  const auto b = pn.forward(x, tc);
  pn.set_patch_origins({});
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-6);
  EXPECT_EQ(pn.forward(images.narrow(0, 0, 2), torch::tensor({500.0, 500.0})).sizes(),
            (std::vector<int64_t>{2, 1, 28, 28}));
}

// score_sde's U-Nets take the coordinates too: DDPM, and NCSN++ with its
// residual input pyramid (which downsamples the coordinates with the image).
class PatchUNets : public ::testing::TestWithParam<const char*> {};

TEST_P(PatchUNets, TrainOnPatchesAndScoreWholeImages) {
  torch::manual_seed(5);
  const Config c = load_config(
      std::string(SCORCH_SOURCE_DIR) + "/configs/" + GetParam() + ".yaml",
      {"model.nf=32", "model.ch_mult=[1,2]", "model.num_res_blocks=1",
       "model.attn_resolutions=[8]", "model.patch_size=16"});
  ScoreNet net = make_score_net(c);
  auto* patch = dynamic_cast<PatchScoreNetImpl*>(net.get());
  ASSERT_NE(patch, nullptr) << GetParam();
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.add_(0.01 * torch::randn_like(p));
  }
  const auto images = torch::rand({2, 3, 32, 32});
  const auto origins = torch::tensor({{0, 16}, {7, 3}}, torch::kLong);
  const auto tc = torch::tensor({0.5, 20.0});
  torch::Tensor out;
  {
    PatchOriginsScope scope(*net, origins);
    out = net->forward(crop_patches(images, origins, 16), tc);
  }
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 16, 16}));
  out.square().mean().backward();
  int64_t with_grad = 0;
  for (const auto& p : net->parameters())
    with_grad += p.grad().defined() && p.grad().abs().sum().item<double>() > 0;
  EXPECT_GT(with_grad, static_cast<int64_t>(net->parameters().size()) * 9 / 10) << GetParam();
  torch::NoGradGuard no_grad;
  net->eval();
  EXPECT_EQ(net->forward(images, tc).sizes(), images.sizes());
}

INSTANTIATE_TEST_SUITE_P(ScoreSde, PatchUNets,
                         ::testing::Values("vp/cifar10_ddpm", "ve/cifar10_ncsnpp_continuous"),
                         [](const auto& info) {
                           const std::string name = info.param;
                           return name.find("ddpm") != std::string::npos ? "ddpm" : "ncsnpp";
                         });

TEST(Patch, ConfigErrorsNameTheKey) {
  const std::string path = std::string(SCORCH_SOURCE_DIR) + "/configs/fashion_mnist/patch16.yaml";
  auto error_of = [&](const std::vector<std::string>& overrides) {
    try {
      make_score_net(load_config(path, overrides));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of({"model.patch_size=28"}).find("model.patch_size"), std::string::npos);
  EXPECT_NE(error_of({"model.patch_size=14"}).find("model.patch_size"), std::string::npos);
  EXPECT_NE(error_of({"model.patch_stride=17"}).find("model.patch_stride"), std::string::npos);
  EXPECT_NE(error_of({"model.name=ncsn", "model.normalization=InstanceNorm++"})
                .find("model.patch_size"),
            std::string::npos);
  EXPECT_NE(error_of({"model.attn_resolutions=[14]"}).find("model.patch_size"), std::string::npos);
}

}  // namespace
}  // namespace scorch
