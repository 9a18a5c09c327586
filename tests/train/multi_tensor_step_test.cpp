// The multi-tensor update (Optimizer's _foreach_* Adam/AdamW and clipping,
// Ema's _foreach_* update, gradients set to none) against the per-tensor
// update that came before it, with LibTorch's own torch::optim::Adam / AdamW
// as the reference (testing/per_tensor_step.h): two copies of a network
// trained 50 steps on the same batches and noise must hold the same bits:
// parameters, every EMA shadow and every gradient norm. On the toy MLP and on
// a small DDPM++ (NCSN++ code path with 100+ parameter tensors), with
// clipping on every step and on none, Adam with L2 decay and AdamW, in one
// multi-tensor chunk and in many (train/chunks.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/batch_random.h"
#include "core/config.h"
#include "losses/loss.h"
#include "nn/model_factory.h"
#include "sde/sde.h"
#include "testing/local_comm.h"
#include "testing/per_tensor_step.h"
#include "train/chunks.h"
#include "train/ema.h"
#include "train/optimizer.h"

namespace scorch::testing {
namespace {

const std::string kToy = "{}";  // the embedded defaults: 2-D data, MLP, VP SDE
const std::string kDdpmpp =
    "{model: {name: ncsnpp, nf: 16, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [4], "
    "dropout: 0.0}, data: {dataset: synthetic_images, image_size: 8, num_channels: 3}, "
    "training: {sde: vpsde, continuous: true}}";

struct Outcome {
  int clipped_steps = 0;
};

// Trains two copies of the config's network for `steps` steps, one with each
// update, checking on the way that every gradient norm agrees.
Outcome train_both(const std::string& yaml, const std::vector<std::string>& overrides,
                   int steps, int64_t batch) {
  Config c = parse_config(yaml, "test", overrides);
  c.model.ema_rate = 0.99;  // fast warm-up: the shadow moves visibly within 50 steps
  auto sde = make_sde(c);
  auto loss = make_loss(c, sde);
  torch::manual_seed(1);
  ScoreNet a = make_score_net(c);
  torch::manual_seed(1);
  ScoreNet b = make_score_net(c);
  a->train();
  b->train();
  PerTensorStep reference(a->named_parameters(), c.optim, c.model.ema_rate);
  Optimizer optimizer(b->named_parameters(), c.optim);
  Ema ema(*b, c.model);
  std::vector<int64_t> shape = c.model.name == ModelName::kMlp
                                   ? std::vector<int64_t>{batch, 2}
                                   : std::vector<int64_t>{batch, 3, 8, 8};
  Outcome out;
  for (int s = 0; s < steps; ++s) {
    torch::manual_seed(100 + s);
    const torch::Tensor x = torch::randn(shape);
    BatchRandom noise_a(c.seed, s, batch, 0, batch), noise_b(c.seed, s, batch, 0, batch);

    reference.zero_grad();
    (*loss)(*a, x, {}, &noise_a).loss.backward();
    reference.unscale(1.0);
    const double norm_a = reference.clip();
    reference.adam(s);
    reference.ema();

    optimizer.zero_grad();
    (*loss)(*b, x, {}, &noise_b).loss.backward();
    const double norm_b = optimizer.clip_gradients();
    optimizer.apply(s);
    ema.update(*b, batch, s * batch);

    EXPECT_EQ(norm_a, norm_b) << "step " << s;
    if (c.optim.grad_clip > 0 && norm_a > c.optim.grad_clip) ++out.clipped_steps;
  }
  const auto names = optimizer.names();
  const auto shadow_b = ema.shadow(ema.names().front());
  EXPECT_EQ(names.size(), reference.params().size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_TRUE(torch::equal(reference.params()[i], optimizer.params()[i])) << names[i];
    EXPECT_TRUE(torch::equal(reference.shadow()[i], shadow_b.at(names[i]))) << names[i];
  }
  EXPECT_FALSE(torch::equal(reference.params().front(), reference.shadow().front()))
      << "the EMA never moved away from the weights";
  return out;
}

TEST(MultiTensorStep, ToyMatchesThePerTensorStepBitwise) {
  // Clipping on every step (a tiny bound), then on none (no bound).
  EXPECT_EQ(train_both(kToy, {"optim.grad_clip=1e-4", "optim.warmup=10"}, 50, 64).clipped_steps, 50);
  EXPECT_EQ(train_both(kToy, {"optim.grad_clip=0", "optim.warmup=0"}, 50, 64).clipped_steps, 0);
  train_both(kToy, {"optim.weight_decay=0.01", "optim.lr=1e-2"}, 50, 64);
  train_both(kToy, {"optim.optimizer=AdamW", "optim.weight_decay=0.1", "optim.lr=1e-2"}, 50, 64);
}

TEST(MultiTensorStep, DdpmppMatchesThePerTensorStepBitwise) {
  EXPECT_EQ(train_both(kDdpmpp, {"optim.grad_clip=1e-3", "optim.warmup=5"}, 50, 4).clipped_steps, 50);
  train_both(kDdpmpp, {"optim.optimizer=AdamW", "optim.weight_decay=0.01", "optim.grad_clip=0"}, 50, 4);
  // Cut into many chunks (a few thousand elements each): the same bits.
  ChunkElementsScope cut(3000);
  ASSERT_GT(chunk_ranges(make_score_net(parse_config(kDdpmpp, "test"))->parameters(), 3000).size(), 10u);
  train_both(kDdpmpp, {"optim.grad_clip=1e-3", "optim.weight_decay=0.01"}, 20, 4);
}

TEST(MultiTensorStep, ZeroGradSetsGradientsToNone) {
  torch::Tensor w = torch::ones({3}).requires_grad_(true);
  torch::OrderedDict<std::string, torch::Tensor> named;
  named.insert("w", w);
  Optimizer optimizer(named, OptimConfig{});
  (w * w).sum().backward();
  ASSERT_TRUE(w.grad().defined());
  optimizer.zero_grad();
  EXPECT_FALSE(w.grad().defined());
  optimizer.apply(1);  // no gradient: no step, no state
  EXPECT_TRUE(optimizer.gather_state_dict(local_comm()).empty());
  EXPECT_TRUE(torch::equal(w, torch::ones({3})));
}

}  // namespace
}  // namespace scorch::testing
