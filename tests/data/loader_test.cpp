// The loader: each sample once per epoch across ranks, a cursor that resumes
// the same stream on any number of ranks, the transforms against their
// definitions, and prefetching that never changes what is read.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "data/loader.h"
#include "data/shard_writer.h"
#include "testing/temp_dir.h"  // defines: TempDir

namespace scorch {
namespace {

using testing::TempDir;

// n images of 2x3x1 whose first two pixels encode the index (i mod 256, i div 256).
std::shared_ptr<const ShardedDataset> indexed_dataset(const std::string& dir, int64_t n,
                                                      int64_t shard_size = 7) {
  ShardWriterOptions o;
  o.sample_shape = {2, 3, 1};
  o.has_labels = true;
  o.num_classes = 5;
  o.shard_size = shard_size;
  ShardWriter w(dir, o);
  for (int64_t i = 0; i < n; ++i) {
    uint8_t px[6] = {static_cast<uint8_t>(i % 256), static_cast<uint8_t>(i / 256), 10, 20, 30, 40};
    w.add(px, i % 5);
  }
  w.finish();
  return std::make_shared<const ShardedDataset>(dir);
}

// Dataset index of every sample of an un-transformed batch (x = k / 255).
std::vector<int64_t> decode(const Batch& b) {
  std::vector<int64_t> out;
  auto x = (b.x * 255).round().to(torch::kLong);
  for (int64_t k = 0; k < x.size(0); ++k) {
    const int64_t i = x[k][0][0][0].item<int64_t>() + 256 * x[k][0][0][1].item<int64_t>();
    EXPECT_EQ(b.labels[k].item<int64_t>(), i % 5);
    out.push_back(i);
  }
  return out;
}

LoaderOptions plain(int rank, int world, int threads = 0) {
  LoaderOptions o;
  o.seed = 17;
  o.rank = rank;
  o.world_size = world;
  o.threads = threads;
  return o;
}

TEST(Loader, EverySampleOncePerEpochAcrossRanks) {
  TempDir tmp("loader_epoch");
  const int64_t n = 31, batch = 6;  // batches straddle epoch ends
  auto data = indexed_dataset((tmp.path / "ds").string(), n);
  std::vector<int64_t> reference;
  for (int world : {1, 2, 3}) {
    std::vector<std::unique_ptr<ShardedLoader>> ranks;
    for (int r = 0; r < world; ++r)
      ranks.push_back(std::make_unique<ShardedLoader>(data, plain(r, world, r % 2)));
    // The global stream: each global batch is the ranks' shares in rank order.
    std::vector<int64_t> stream;
    for (int step = 0; step < 16; ++step)  // 96 positions: three full epochs
      for (auto& l : ranks) {
        const auto ids = decode(l->next(batch));
        EXPECT_EQ(static_cast<int64_t>(ids.size()), batch / world);
        stream.insert(stream.end(), ids.begin(), ids.end());
      }
    for (int64_t e = 0; e < 3; ++e) {
      std::set<int64_t> seen(stream.begin() + e * n, stream.begin() + (e + 1) * n);
      EXPECT_EQ(seen.size(), static_cast<size_t>(n)) << "epoch " << e << " world " << world;
      EXPECT_EQ(*seen.begin(), 0);
      EXPECT_EQ(*seen.rbegin(), n - 1);
    }
    // Epochs are shuffled differently.
    EXPECT_FALSE(std::equal(stream.begin(), stream.begin() + n, stream.begin() + n));
    // The same stream whatever the number of ranks.
    if (world == 1)
      reference = stream;
    else
      EXPECT_EQ(stream, reference) << "world " << world;
  }
}

TEST(Loader, GlobalBatchMustSplitEvenly) {
  TempDir tmp("loader_split");
  auto data = indexed_dataset((tmp.path / "ds").string(), 10);
  ShardedLoader l(data, plain(0, 3));
  EXPECT_THROW(l.next(8), Error);
  EXPECT_EQ(l.next(9).x.size(0), 3);
}

TEST(Loader, CursorResumesAcrossWorldSizes) {
  TempDir tmp("loader_resume");
  auto data = indexed_dataset((tmp.path / "ds").string(), 29, 5);
  auto options = [](int r, int w, int threads) {
    LoaderOptions o = plain(r, w, threads);
    o.random_flip = o.uniform_dequantization = o.centered = true;
    return o;
  };
  // Uninterrupted, one rank.
  ShardedLoader single(data, options(0, 1, 2));
  std::vector<torch::Tensor> expected;
  for (int step = 0; step < 8; ++step) expected.push_back(single.next(12).x);
  // Two ranks for three steps, then "resume" on three ranks from the cursor.
  int64_t cursor = 0;
  {
    std::vector<std::unique_ptr<ShardedLoader>> two;
    for (int r = 0; r < 2; ++r) two.push_back(std::make_unique<ShardedLoader>(data, options(r, 2, 1)));
    for (int step = 0; step < 3; ++step) {
      auto x = torch::cat({two[0]->next(12).x, two[1]->next(12).x});
      EXPECT_TRUE(torch::equal(x, expected[step])) << "step " << step;
    }
    cursor = two[0]->cursor();
  }
  EXPECT_EQ(cursor, 36);
  std::vector<std::unique_ptr<ShardedLoader>> three;
  for (int r = 0; r < 3; ++r) {
    three.push_back(std::make_unique<ShardedLoader>(data, options(r, 3, r)));
    three.back()->seek(cursor);
  }
  for (int step = 3; step < 8; ++step) {
    auto x = torch::cat({three[0]->next(12).x, three[1]->next(12).x, three[2]->next(12).x});
    EXPECT_TRUE(torch::equal(x, expected[step])) << "step " << step;
  }
}

TEST(Loader, PrefetchAndThreadsNeverChangeTheStream) {
  TempDir tmp("loader_threads");
  auto data = indexed_dataset((tmp.path / "ds").string(), 50);
  ShardedLoader inline_loader(data, plain(0, 1, 0));
  std::vector<torch::Tensor> expected;
  for (int step = 0; step < 12; ++step) expected.push_back(inline_loader.next(8).x);
  for (int threads : {1, 4}) {
    LoaderOptions o = plain(0, 1, threads);
    o.prefetch = 3;
    ShardedLoader l(data, o);
    for (int step = 0; step < 5; ++step) EXPECT_TRUE(torch::equal(l.next(8).x, expected[step]));
    l.seek(9 * 8);  // jump ahead past prefetched batches
    for (int step = 9; step < 12; ++step) EXPECT_TRUE(torch::equal(l.next(8).x, expected[step]));
    l.seek(2 * 8);  // and back
    EXPECT_TRUE(torch::equal(l.next(8).x, expected[2]));
  }
}

TEST(Loader, TransformsMatchTheirDefinitions) {
  TempDir tmp("loader_transforms");
  // One 1x4x3 image repeated: pixel (x, c) = 60 x + c, so flips are visible.
  ShardWriterOptions wo;
  wo.sample_shape = {1, 4, 3};
  const auto dir = (tmp.path / "ds").string();
  {
    ShardWriter w(dir, wo);
    uint8_t px[12];
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) px[x * 3 + c] = static_cast<uint8_t>(60 * x + c);
    for (int i = 0; i < 4000; ++i) w.add(px);
    w.finish();
  }
  auto data = std::make_shared<const ShardedDataset>(dir);
  auto k = torch::empty({1, 3, 1, 4});  // the image's values k, CHW
  for (int x = 0; x < 4; ++x)
    for (int c = 0; c < 3; ++c) k[0][c][0][x] = 60 * x + c;

  // No transform: k / 255; centred: 2 k / 255 - 1.
  LoaderOptions o = plain(0, 1);
  EXPECT_TRUE(torch::allclose(ShardedLoader(data, o).next(4).x, (k / 255).expand({4, 3, 1, 4})));
  o.centered = true;
  EXPECT_TRUE(
      torch::allclose(ShardedLoader(data, o).next(4).x, (2 * k / 255 - 1).expand({4, 3, 1, 4})));

  // Flip: each image is the original or its mirror, about half each.
  o = plain(0, 1);
  o.random_flip = true;
  auto x = ShardedLoader(data, o).next(4000).x;
  auto same = (x - k / 255).abs().amax({1, 2, 3}) < 1e-6;
  auto mirrored = (x - k.flip({3}) / 255).abs().amax({1, 2, 3}) < 1e-6;
  EXPECT_TRUE((same | mirrored).all().item<bool>());
  const double frac = mirrored.to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(frac, 0.5, 4 * 0.5 / std::sqrt(4000.0));

  // Dequantization: x = (k + u) / 256, u ~ U[0, 1): x*256 - k in [0, 1) with mean 1/2, var 1/12.
  o = plain(0, 1);
  o.uniform_dequantization = true;
  x = ShardedLoader(data, o).next(4000).x;
  auto u = x * 256 - k;
  EXPECT_GE(u.min().item<float>(), 0.0f);
  EXPECT_LT(u.max().item<float>(), 1.0f);
  const double se = std::sqrt(1.0 / 12 / u.numel());
  EXPECT_NEAR(u.mean().item<double>(), 0.5, 4 * se);
  EXPECT_NEAR(u.var().item<double>(), 1.0 / 12, 0.01);
  // Noise differs between pixels and between samples.
  EXPECT_GT(u[0].std().item<double>(), 0.1);
  EXPECT_GT(u.select(1, 0).select(1, 0).select(1, 0).std().item<double>(), 0.1);
}

TEST(Loader, ConfigMustAgreeWithTheDataset) {
  TempDir tmp("loader_config");
  const auto dir = (tmp.path / "ds").string();
  indexed_dataset(dir, 12);  // 2x3x1 images: not square
  Config c;
  c.data.dataset = DatasetName::kHdf5;
  c.data.path = dir;
  c.model.name = ModelName::kDdpm;
  auto message = [&] {
    try {
      make_data_source(c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message().find("square"), std::string::npos) << message();
  c.model.name = ModelName::kMlp;
  EXPECT_NE(message().find("model.name=mlp is for vector data"), std::string::npos) << message();

  const auto sq = (tmp.path / "square").string();
  ShardWriterOptions o;
  o.sample_shape = {4, 4, 1};
  {
    ShardWriter w(sq, o);
    uint8_t px[16] = {};
    for (int i = 0; i < 8; ++i) w.add(px);
    w.finish();
  }
  c.data.path = sq;
  c.model.name = ModelName::kDdpm;
  EXPECT_NE(message().find("set data.image_size=4 data.num_channels=1"), std::string::npos)
      << message();
  c.data.image_size = 4;
  c.data.num_channels = 1;
  c.data.num_classes = 3;
  EXPECT_NE(message().find("without labels"), std::string::npos) << message();
  c.data.num_classes = 0;
  c.training.batch_size = 4;
  auto source = make_data_source(c);
  auto b = source->next(4);
  EXPECT_EQ(b.x.sizes(), (std::vector<int64_t>{4, 1, 4, 4}));
  EXPECT_FALSE(b.labels.defined());
  c.data.path = (tmp.path / "missing").string();
  EXPECT_NE(message().find("does not exist"), std::string::npos) << message();
}

TEST(SampleOrder, PermutationsAreUniform) {
  // Where element 0 lands over many epochs: uniform over 8 places (chi-square, 7 dof).
  const int64_t n = 8, epochs = 8000;
  std::vector<int64_t> count(n, 0);
  for (int64_t e = 0; e < epochs; ++e) {
    const auto p = epoch_permutation(n, 3, e);
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i);
    count[std::find(p.begin(), p.end(), 0) - p.begin()] += 1;
  }
  double chi2 = 0;
  for (auto c : count) chi2 += std::pow(c - epochs / double(n), 2) / (epochs / double(n));
  EXPECT_LT(chi2, 24.3);  // p = 0.001 for 7 degrees of freedom
  EXPECT_NE(epoch_permutation(100, 3, 0), epoch_permutation(100, 4, 0));
}

TEST(SampleOrder, BoundedDrawsAreUnbiased) {
  SplitMix64 rng(99);
  std::vector<int64_t> count(3, 0);
  for (int i = 0; i < 30000; ++i) count[rng.below(3)] += 1;
  for (auto c : count) EXPECT_NEAR(c, 10000, 4 * std::sqrt(30000 * (1.0 / 3) * (2.0 / 3)));
}

}  // namespace
}  // namespace scorch
