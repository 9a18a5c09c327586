// GradSync with one rank: buckets respect the size cap, every parameter is
// reduced exactly once per step, and the gradients are left as backward made them.
#include <gtest/gtest.h>

#include <numeric>
#include <set>

#include "dist/communicator.h"
#include "dist/grad_sync.h"

namespace scorch {
namespace {

TEST(GradSync, BucketsAndOneRankGradients) {
  torch::manual_seed(0);
  torch::nn::Sequential net(torch::nn::Linear(8, 64), torch::nn::Tanh(), torch::nn::Linear(64, 64),
                            torch::nn::Tanh(), torch::nn::Linear(64, 1));
  auto comm = make_local_communicator();
  // 64*64*4 bytes = 16 KiB: a 10 KiB cap splits the parameters into three buckets.
  GradSync sync(net->named_parameters(), *comm, {10.0 / 1024});
  EXPECT_GT(sync.num_buckets(), 2);
  std::set<std::string> names;
  for (int64_t b = 0; b < sync.num_buckets(); ++b)
    for (const auto& n : sync.bucket_names(b)) EXPECT_TRUE(names.insert(n).second) << n;
  EXPECT_EQ(names.size(), net->named_parameters().size());
  EXPECT_EQ(sync.bucket_names(0).front(), "4.bias");  // reverse order: the last layer first

  auto x = torch::randn({16, 8});
  auto loss = net->forward(x).pow(2).mean();
  loss.backward();
  std::vector<torch::Tensor> expected;
  for (auto& p : net->parameters()) expected.push_back(p.grad().clone());
  sync.finish();
  auto params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i].grad(), expected[i]));
  std::vector<int64_t> order(sync.num_buckets());
  std::iota(order.begin(), order.end(), 0);
  EXPECT_EQ(sync.last_launch_order(), order);
}

// The one gradient set: through backward, before finish(), every .grad is a
// view of a bucket (as many storages as buckets, their bytes the
// parameters'), accumulation adds in place over micro-batches, the first
// backward after finish() starts from zero, and an optimizer's zero_grad
// (which resets .grad) changes none of this.
TEST(GradSync, GradientsLiveInTheBucketsThroughBackward) {
  torch::manual_seed(3);
  torch::nn::Sequential net(torch::nn::Linear(6, 32), torch::nn::SiLU(), torch::nn::Linear(32, 32),
                            torch::nn::SiLU(), torch::nn::Linear(32, 2));
  torch::nn::Sequential twin(torch::nn::Linear(6, 32), torch::nn::SiLU(), torch::nn::Linear(32, 32),
                             torch::nn::SiLU(), torch::nn::Linear(32, 2));
  {
    torch::NoGradGuard no_grad;
    auto a = net->parameters(), b = twin->parameters();
    for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  }
  auto comm = make_local_communicator();
  GradSync sync(net->named_parameters(), *comm, {2.0 / 1024});
  ASSERT_GT(sync.num_buckets(), 1);
  int64_t param_bytes = 0;
  for (const auto& p : net->parameters()) param_bytes += p.numel() * static_cast<int64_t>(p.element_size());
  EXPECT_EQ(sync.bucket_bytes(), param_bytes);
  const auto x = torch::randn({8, 6});
  const auto loss = [&](torch::nn::Sequential& m, int64_t part) {
    return m->forward(x.narrow(0, 4 * part, 4)).pow(2).mean();
  };
  for (int step = 0; step < 3; ++step) {
    if (step == 2)
      for (auto& p : net->parameters()) p.mutable_grad().reset();  // zero_grad's way
    // Two micro-batches: the first with syncing off, the second on.
    sync.set_enabled(false);
    loss(net, 0).backward();
    sync.set_enabled(true, /*add_accumulated=*/true);
    loss(net, 1).backward();
    std::set<const void*> storages;
    for (const auto& p : net->parameters()) {
      ASSERT_TRUE(p.grad().defined());
      storages.insert(p.grad().storage().unsafeGetStorageImpl());
    }
    EXPECT_EQ(static_cast<int64_t>(storages.size()), sync.num_buckets()) << "step " << step;
    sync.finish();
    // The reference: plain autograd on the twin, fresh gradients each step.
    for (auto& p : twin->parameters()) p.mutable_grad().reset();
    loss(twin, 0).backward();
    loss(twin, 1).backward();
    auto got = net->parameters(), want = twin->parameters();
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_TRUE(torch::equal(got[i].grad(), want[i].grad())) << "step " << step << " param " << i;
  }
}

}  // namespace
}  // namespace scorch
