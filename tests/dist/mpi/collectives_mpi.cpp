// Collectives on CPU tensors, run under `mpirun -np 2` and `-np 3` on the
// communicator of SCORCH_TEST_DIST_BACKEND (CTest DistMpi.np2 / np3: mpi;
// Dist.gloo.np2 / np3: c10d's Gloo): every rank checks the results against
// closed forms in its rank r and the world size W.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <numeric>
#include <set>
#include <thread>

#include "core/config.h"
#include "dist/communicator.h"
#include "dist/mpi.h"
#include "dist/param_shards.h"

namespace scorch {
namespace {

struct Mpi : ::testing::Test {
  static void SetUpTestSuite() {
    if (comm) return;  // set up by an earlier suite of this fixture
    ASSERT_TRUE(launched_by_mpi()) << "run under mpirun";
    Config c;
    c.dist.device = DeviceName::kCpu;
    ctx = make_mpi_context(c);
    comm = make_communicator(ctx, backend()).release();
  }
  static BackendName backend() {
    const char* b = std::getenv("SCORCH_TEST_DIST_BACKEND");
    return parse_choice<BackendName>(b && *b ? b : "mpi", "dist.backend");
  }
  static DistContext ctx;
  static Communicator* comm;
};
DistContext Mpi::ctx;
Communicator* Mpi::comm = nullptr;

TEST_F(Mpi, ContextMatchesTheLauncher) {
  EXPECT_EQ(ctx.world_size, std::atoi(std::getenv("OMPI_COMM_WORLD_SIZE")));
  EXPECT_EQ(ctx.rank, std::atoi(std::getenv("OMPI_COMM_WORLD_RANK")));
  EXPECT_EQ(ctx.local_rank, ctx.rank);  // one node
  EXPECT_STREQ(comm->name(), choice_name(backend()));
  EXPECT_EQ(comm->size(), ctx.world_size);
  EXPECT_EQ(comm->rank(), ctx.rank);
}

TEST_F(Mpi, AllReduceSumAndMeanInEveryDtype) {
  const int r = ctx.rank, w = ctx.world_size;
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kLong, torch::kInt, torch::kHalf,
                     torch::kBFloat16}) {
    // Rank r holds (r + 1) * [0, 1, ..., 9]; the sum is W (W + 1) / 2 * [0, ..., 9].
    auto t = (torch::arange(10, torch::kDouble) * (r + 1)).to(dtype);
    comm->all_reduce_sum(t);
    auto expected = torch::arange(10, torch::kDouble) * (w * (w + 1) / 2);
    EXPECT_TRUE(torch::allclose(t.to(torch::kDouble), expected)) << dtype;
  }
  auto m = torch::full({4}, static_cast<float>(r));
  comm->all_reduce_mean(m);
  EXPECT_TRUE(torch::allclose(m, torch::full({4}, (w - 1) / 2.0f)));
}

TEST_F(Mpi, BroadcastFromEveryRoot) {
  for (int root = 0; root < ctx.world_size; ++root) {
    auto t = torch::full({3, 2}, static_cast<double>(ctx.rank * 10 + 1));
    comm->broadcast(t, root);
    EXPECT_TRUE(torch::equal(t, torch::full({3, 2}, static_cast<double>(root * 10 + 1))));
  }
}

TEST_F(Mpi, AllGatherInRankOrder) {
  auto t = torch::full({2, 3}, static_cast<int64_t>(ctx.rank), torch::kLong);
  auto all = comm->all_gather(t);
  ASSERT_EQ(all.size(0), 2 * ctx.world_size);
  for (int q = 0; q < ctx.world_size; ++q)
    EXPECT_TRUE(torch::equal(all.narrow(0, 2 * q, 2), torch::full({2, 3}, q, torch::kLong)));
  comm->barrier();
}

// Tensors of 5 + 12 + 24 + 7 + 1 = 49 elements (not a multiple of 2 or 3),
// one of them channels-last, split with 3-element chunks so that gathers take
// several rounds and chunks straddle tensors.
std::vector<torch::Tensor> uneven_tensors() {
  return {torch::zeros({5}), torch::zeros({3, 4}),
          torch::zeros({2, 3, 2, 2}).contiguous(torch::MemoryFormat::ChannelsLast),
          torch::zeros({7}), torch::zeros({1})};
}

TEST_F(Mpi, AllGatherIntoInPlaceAndFromAnotherTensor) {
  const int r = ctx.rank, w = ctx.world_size;
  // In place: each rank's part of `out` is its input.
  auto out = torch::full({3 * w}, -1.0f);
  out.narrow(0, 3 * r, 3).fill_(static_cast<float>(r + 1));
  comm->all_gather_into(out, out.narrow(0, 3 * r, 3));
  auto other = torch::empty({3 * w});
  comm->all_gather_into(other, torch::full({3}, static_cast<float>(10 * r)));
  for (int q = 0; q < w; ++q) {
    EXPECT_TRUE(torch::equal(out.narrow(0, 3 * q, 3), torch::full({3}, static_cast<float>(q + 1))));
    EXPECT_TRUE(torch::equal(other.narrow(0, 3 * q, 3), torch::full({3}, static_cast<float>(10 * q))));
  }
  // The mean started asynchronously.
  auto m = torch::full({5}, static_cast<float>(r));
  comm->all_reduce_mean_async(m)->wait();
  EXPECT_TRUE(torch::allclose(m, torch::full({5}, (w - 1) / 2.0f)));
}

// Both layouts: the tensors where they were (gathered chunk by chunk,
// copied per tensor) and moved into one buffer by flatten() (one in-place
// collective).
class ParamShardsGather : public Mpi, public ::testing::WithParamInterface<bool> {};

TEST_P(ParamShardsGather, EveryRanksPartInPlaceAndOnTheRoot) {
  const int r = ctx.rank, w = ctx.world_size;
  auto tensors = uneven_tensors();
  ParamShards shards(tensors, r, w, /*chunk_bytes=*/12);
  if (GetParam()) {
    for (size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(torch::rand_like(tensors[i]));
    std::vector<torch::Tensor> values;
    for (const auto& t : tensors) values.push_back(t.clone());
    shards.flatten(tensors);
    for (size_t i = 0; i < tensors.size(); ++i) {
      EXPECT_TRUE(tensors[i].storage().is_alias_of(tensors[0].storage())) << "tensor " << i;
      EXPECT_EQ(tensors[i].strides(), values[i].strides()) << "tensor " << i;
      EXPECT_TRUE(torch::equal(tensors[i], values[i])) << "tensor " << i;
    }
  }
  ASSERT_EQ(shards.numel(), 49);
  EXPECT_EQ(shards.shard_size(), (49 + w - 1) / w);
  // Each rank writes 1000 (r + 1) + its global element indices into its part.
  int64_t offset = 0, mine = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto part = shards.local(i, tensors[i]);
    EXPECT_EQ(part.numel(), shards.local_numel(i));
    part.copy_(torch::arange(shards.local_begin(i), shards.local_begin(i) + part.numel()) +
               offset + 1000 * (r + 1));
    offset += tensors[i].numel();
    mine += part.numel();
  }
  EXPECT_EQ(mine, shards.local_total());
  auto all = torch::tensor(mine, torch::kLong).reshape({1});
  comm->all_reduce_sum(all);
  EXPECT_EQ(all.item<int64_t>(), 49);  // every element in exactly one shard
  // Pieces for the root: the same values, as float64 copies.
  std::vector<torch::Tensor> pieces;
  for (size_t i = 0; i < tensors.size(); ++i)
    pieces.push_back(shards.local(i, tensors[i]).to(torch::kDouble));
  shards.all_gather(tensors, *comm);
  const int64_t s = shards.shard_size();
  offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    // In memory order, element e holds e + 1000 (owner + 1).
    const auto flat = tensors[i].as_strided({tensors[i].numel()}, {1});
    const auto index = torch::arange(offset, offset + tensors[i].numel(), torch::kFloat);
    const auto owner = (index / static_cast<double>(s)).floor();
    EXPECT_TRUE(torch::equal(flat, index + 1000 * (owner + 1))) << "tensor " << i << " rank " << r;
    offset += tensors[i].numel();
  }
  const auto whole = shards.gather_to_root(pieces, torch::kDouble, *comm, 0);
  if (r != 0) {
    EXPECT_TRUE(whole.empty());
    return;
  }
  ASSERT_EQ(whole.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(whole[i].sizes(), tensors[i].sizes());
    EXPECT_EQ(whole[i].strides(), tensors[i].strides());
    EXPECT_EQ(whole[i].scalar_type(), torch::kDouble);
    EXPECT_TRUE(torch::equal(whole[i], tensors[i].to(torch::kDouble))) << "tensor " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, ParamShardsGather, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "flattened" : "apart"; });

// Rank 0 joins 0.3 s late: the others wait past their spin into the sleeping
// backoff (well within the timeout) and still get the sum; progress() never
// blocks, and a Work dropped without wait() completes in its destructor.
TEST_F(Mpi, ALateRankWithinTheTimeoutIsWaitedFor) {
  const int r = ctx.rank, w = ctx.world_size;
  auto late = make_communicator(ctx, backend(), /*timeout_s=*/30);
  if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto t = torch::full({1000}, static_cast<float>(r + 1));
  auto work = late->all_reduce_sum_async(t);
  late->progress();
  work->wait();
  EXPECT_TRUE(torch::equal(t, torch::full({1000}, w * (w + 1) / 2.0f)));
  late->barrier();
  auto u = torch::ones({10});
  late->all_reduce_sum_async(u);  // dropped at once
  EXPECT_TRUE(torch::equal(u, torch::full({10}, static_cast<float>(w))));
  late->progress();  // nothing in flight
}

TEST_F(Mpi, NonCpuOrNonContiguousIsRejected) {
  auto t = torch::zeros({4, 4}).t();  // not contiguous: rejected on every rank alike
  EXPECT_THROW(comm->all_reduce_sum(t), c10::Error);
}

}  // namespace
}  // namespace scorch

#include "dist/grad_sync.h"

namespace scorch {
namespace {

// Each rank backpropagates its own slice of a batch; after finish() every
// rank holds the gradient of the whole batch's mean loss, as one process
// computing it directly does, and buckets ran once each, in index order.
TEST_F(Mpi, GradSyncGivesTheWholeBatchGradient) {
  const int w = ctx.world_size, r = ctx.rank;
  torch::manual_seed(0);  // the same model and data on every rank
  torch::nn::Sequential net(torch::nn::Linear(4, 32), torch::nn::Tanh(), torch::nn::Linear(32, 3));
  auto x = torch::randn({6 * w, 4});
  auto y = torch::randn({6 * w, 3});
  // The reference: the whole batch in one process.
  (net->forward(x) - y).pow(2).mean().backward();
  std::vector<torch::Tensor> whole;
  for (auto& p : net->parameters()) whole.push_back(p.grad().clone()), p.mutable_grad().zero_();

  GradSync sync(net->named_parameters(), *comm, {1.0 / 1024});  // 1 KiB buckets: several
  for (int step = 0; step < 3; ++step) {
    for (auto& p : net->parameters()) p.mutable_grad().zero_();
    (net->forward(x.narrow(0, 6 * r, 6)) - y.narrow(0, 6 * r, 6)).pow(2).mean().backward();
    sync.finish();
    auto params = net->parameters();
    for (size_t i = 0; i < params.size(); ++i)
      EXPECT_TRUE(torch::allclose(params[i].grad(), whole[i], 1e-5, 1e-7)) << "param " << i;
    std::vector<int64_t> order(sync.num_buckets());
    std::iota(order.begin(), order.end(), 0);
    EXPECT_EQ(sync.last_launch_order(), order);
  }
  // Accumulation: two local micro-batches, one reduction.
  for (auto& p : net->parameters()) p.mutable_grad().zero_();
  sync.set_enabled(false);
  for (int half = 0; half < 2; ++half)
    (0.5 * (net->forward(x.narrow(0, 6 * r + 3 * half, 3)) - y.narrow(0, 6 * r + 3 * half, 3))
               .pow(2)
               .mean())
        .backward();
  sync.reduce_accumulated();
  sync.set_enabled(true);
  auto params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(torch::allclose(params[i].grad(), whole[i], 1e-5, 1e-7)) << "accumulated " << i;
}

// Accumulation as the trainer runs it: hooks off for the first micro-batch,
// on for the last, whose hooks add the accumulated .grad to the buckets.
// Every parameter lies in exactly one bucket, and the buckets start once
// each, in the same order on every rank.
TEST_F(Mpi, OverlappedAccumulationReducesEachParameterOnceInOneOrder) {
  const int w = ctx.world_size, r = ctx.rank;
  torch::manual_seed(1);
  torch::nn::Sequential net(torch::nn::Linear(5, 16), torch::nn::SiLU(), torch::nn::Linear(16, 16),
                            torch::nn::SiLU(), torch::nn::Linear(16, 2));
  auto x = torch::randn({4 * w, 5});
  auto y = torch::randn({4 * w, 2});
  (net->forward(x) - y).pow(2).mean().backward();
  std::vector<torch::Tensor> whole;
  for (auto& p : net->parameters()) whole.push_back(p.grad().clone()), p.mutable_grad().zero_();

  GradSync sync(net->named_parameters(), *comm, {0.5 / 1024});
  std::map<std::string, int> seen;
  for (int64_t b = 0; b < sync.num_buckets(); ++b)
    for (const auto& name : sync.bucket_names(b)) seen[name] += 1;
  EXPECT_EQ(seen.size(), net->parameters().size());
  for (const auto& [name, count] : seen) EXPECT_EQ(count, 1) << name;

  for (int step = 0; step < 2; ++step) {
    for (auto& p : net->parameters()) p.mutable_grad().zero_();
    for (int half = 0; half < 2; ++half) {
      sync.set_enabled(half == 1, /*add_accumulated=*/true);
      const auto rows = x.narrow(0, 4 * r + 2 * half, 2);
      (0.5 * (net->forward(rows) - y.narrow(0, 4 * r + 2 * half, 2)).pow(2).mean()).backward();
    }
    sync.finish();
    auto params = net->parameters();
    for (size_t i = 0; i < params.size(); ++i)
      EXPECT_TRUE(torch::allclose(params[i].grad(), whole[i], 1e-5, 1e-7)) << "param " << i;
    // The launch order, gathered from every rank: identical, each bucket once.
    const auto& order = sync.last_launch_order();
    ASSERT_EQ(static_cast<int64_t>(order.size()), sync.num_buckets());
    auto mine = torch::tensor(order, torch::kLong).unsqueeze(0).contiguous();
    auto all = comm->all_gather(mine);
    for (int k = 0; k < w; ++k) EXPECT_TRUE(torch::equal(all[k], all[0])) << "rank " << k;
    std::set<int64_t> unique(order.begin(), order.end());
    EXPECT_EQ(static_cast<int64_t>(unique.size()), sync.num_buckets());
  }
}

// An overflow on one rank only (its loss scaled past float32's range)
// reaches every rank through the mean, so all ranks skip the step alike.
TEST_F(Mpi, AnOverflowOnOneRankIsSeenByAll) {
  torch::manual_seed(2);
  torch::nn::Linear net(3, 2);
  GradSync sync(net->named_parameters(), *comm);
  const auto x = torch::randn({4, 3});
  const double scale = ctx.rank == ctx.world_size - 1 ? 1e39 : 1.0;
  (net->forward(x).pow(2).mean().to(torch::kFloat) * scale).backward();
  sync.finish();
  bool finite = true;
  for (const auto& p : net->parameters()) finite &= torch::isfinite(p.grad()).all().item<bool>();
  EXPECT_FALSE(finite) << "rank " << ctx.rank << " missed another rank's overflow";
}

}  // namespace
}  // namespace scorch
