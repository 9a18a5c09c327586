// check_one_gpu_per_rank, the decision behind make_mpi_context's GPU check:
// CUDA ranks on a node that would share a GPU stop with scorch::Error (exit 2)
// naming the node, both counts and what to do; one GPU per rank passes,
// including one GPU made visible to each rank.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "dist/mpi.h"

namespace scorch {
namespace {

std::string message_of(int local_ranks, int visible_gpus, int distinct_gpus) {
  try {
    check_one_gpu_per_rank(local_ranks, visible_gpus, distinct_gpus, "node07");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(OneGpuPerRank, OneRankPerVisibleGpuPasses) {
  EXPECT_NO_THROW(check_one_gpu_per_rank(1, 1, 1, "node07"));
  EXPECT_NO_THROW(check_one_gpu_per_rank(8, 8, 8, "node07"));
  EXPECT_NO_THROW(check_one_gpu_per_rank(2, 8, 2, "node07"));  // fewer ranks than GPUs
}

TEST(OneGpuPerRank, OneGpuVisibleToEachRankPasses) {
  // srun --gpus-per-task=1: every rank sees one GPU, all of them different.
  EXPECT_NO_THROW(check_one_gpu_per_rank(4, 1, 4, "node07"));
}

TEST(OneGpuPerRank, MoreRanksThanGpusIsABadInputNamingBothCounts) {
  const std::string m = message_of(4, 2, 2);
  ASSERT_FALSE(m.empty()) << "4 ranks on 2 GPUs passed";
  EXPECT_NE(m.find("node07"), std::string::npos) << m;
  EXPECT_NE(m.find("runs 4 CUDA ranks"), std::string::npos) << m;
  EXPECT_NE(m.find("sees 2 GPUs"), std::string::npos) << m;
  EXPECT_NE(m.find("NCCL rejects"), std::string::npos) << m;
  EXPECT_NE(m.find("at most 2 ranks on this node"), std::string::npos) << m;
  EXPECT_NE(m.find("ppr:2:node"), std::string::npos) << m;
  EXPECT_NE(m.find("dist.device=cpu"), std::string::npos) << m;
}

TEST(OneGpuPerRank, RanksSeeingTheSameSingleGpuFail) {
  const std::string m = message_of(2, 1, 1);
  ASSERT_FALSE(m.empty()) << "2 ranks on 1 GPU passed";
  EXPECT_NE(m.find("runs 2 CUDA ranks"), std::string::npos) << m;
  EXPECT_NE(m.find("sees 1 GPU "), std::string::npos) << m;
  EXPECT_NE(m.find("at most 1 ranks"), std::string::npos) << m;
}

TEST(OneGpuPerRank, ImpossibleCountsAreAnInternalError) {
  EXPECT_THROW(check_one_gpu_per_rank(2, 1, 3, "node07"), c10::Error);
  EXPECT_THROW(check_one_gpu_per_rank(0, 1, 0, "node07"), c10::Error);
}

}  // namespace
}  // namespace scorch
