// The ZeRO-1 split (dist/param_shards.h) seen from every rank of a world, in
// one process: the parts tile every tensor exactly once, in rank order, in
// memory order; one rank's collectives are copies. The collectives across
// ranks run under mpirun in tests/dist/mpi/collectives_mpi.cpp.
#include <gtest/gtest.h>

#include "core/error.h"
#include "dist/communicator.h"
#include "dist/param_shards.h"

namespace scorch {
namespace {

std::vector<torch::Tensor> tensors() {
  return {torch::zeros({5}), torch::zeros({3, 4}),
          torch::zeros({2, 3, 2, 2}).contiguous(torch::MemoryFormat::ChannelsLast),
          torch::zeros({7}), torch::zeros({1})};
}

TEST(ParamShards, PartsTileEveryTensorOnceInRankOrder) {
  auto ts = tensors();
  for (int world : {1, 2, 3, 4, 7, 50, 64}) {
    std::vector<int64_t> covered(ts.size(), 0);
    int64_t next = 0;  // the next flat element a rank must start at
    for (int rank = 0; rank < world; ++rank) {
      ParamShards s(ts, rank, world);
      EXPECT_EQ(s.numel(), 49);
      EXPECT_EQ(s.shard_size(), (49 + world - 1) / world);
      EXPECT_EQ(s.shard_begin(), next) << world << " ranks, rank " << rank;
      EXPECT_LE(s.local_total(), s.shard_size());
      int64_t total = 0;
      for (size_t i = 0; i < ts.size(); ++i) {
        if (s.local_numel(i) > 0) {
          EXPECT_EQ(s.local_begin(i), covered[i]) << i;
        }
        covered[i] += s.local_numel(i);
        total += s.local_numel(i);
      }
      EXPECT_EQ(total, s.local_total());
      next = s.shard_end();
    }
    EXPECT_EQ(next, 49);
    for (size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(covered[i], ts[i].numel()) << i;
  }
}

TEST(ParamShards, LocalViewsFollowMemoryOrderAndWriteThrough) {
  auto ts = tensors();
  ParamShards s(ts, 1, 3);  // elements [17, 34): the first 17 of tensor 2
  auto& t = ts[2];          // channels-last [2, 3, 2, 2], elements 17..40
  auto part = s.local(2, t);
  ASSERT_EQ(s.local_begin(2), 0);
  ASSERT_EQ(part.numel(), 34 - 17);
  part.copy_(torch::arange(part.numel()));
  // Memory order of a channels-last tensor: n, h, w, c.
  const auto memory = t.permute({0, 2, 3, 1}).reshape({-1});
  EXPECT_TRUE(torch::equal(memory.narrow(0, 0, part.numel()), torch::arange(part.numel(), torch::kFloat)));
  // A contiguous copy of the same values gives the same part.
  EXPECT_TRUE(torch::equal(s.local_of(2, t.contiguous()), part));
  // A tensor laid out otherwise is refused by local().
  EXPECT_THROW(s.local(2, t.contiguous()), c10::Error);
}

TEST(ParamShards, OneRanksCollectivesAreCopies) {
  auto ts = tensors();
  for (size_t i = 0; i < ts.size(); ++i) ts[i].normal_();
  auto comm = make_local_communicator();
  ParamShards s(ts, 0, 1, /*chunk_bytes=*/8);
  std::vector<torch::Tensor> before;
  for (const auto& t : ts) before.push_back(t.clone());
  s.all_gather(ts, *comm);
  std::vector<torch::Tensor> pieces;
  for (size_t i = 0; i < ts.size(); ++i) {
    EXPECT_TRUE(torch::equal(ts[i], before[i]));
    pieces.push_back(s.local(i, ts[i]));
  }
  const auto whole = s.gather_to_root(pieces, torch::kFloat, *comm);
  ASSERT_EQ(whole.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    EXPECT_TRUE(torch::equal(whole[i], ts[i]));
    EXPECT_EQ(whole[i].strides(), ts[i].strides());
  }
}

TEST(ParamShards, MixedDtypesOrGapsAreErrorsNamingTheKey) {
  try {
    ParamShards({torch::zeros({3}), torch::zeros({3}, torch::kDouble)}, 0, 2);
    FAIL() << "mixed dtypes accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("set dist.shard_state=none"), std::string::npos) << e.what();
  }
  try {
    ParamShards({torch::zeros({4, 4}).narrow(1, 0, 2)}, 0, 2);
    FAIL() << "a tensor with gaps accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dist.shard_state"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace scorch
