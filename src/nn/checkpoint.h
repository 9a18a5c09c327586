// Activation checkpointing (model.checkpointing; Chen et al. 2016, "Training
// Deep Nets with Sublinear Memory Cost"): a block runs without recording its
// graph in forward, keeping only its inputs, and runs again with the graph in
// backward. LibTorch has no torch.utils.checkpoint; this is its reentrant form
// as a custom autograd function, with the randomness and autocast state of
// forward restored for the recompute so that the gradients are the same.
//
//   auto block_fn = [block](const std::vector<torch::Tensor>& in) {
//     return block->forward(in[0], in[1]);
//   };
//   h = run_block(checkpoint_residual(mode), block_fn, {x, temb});
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "core/choices.h"

namespace scorch {

// The inputs of a block (undefined tensors allowed, e.g. no time embedding)
// -> its output. It must depend on nothing but these inputs and the block's
// own parameters and buffers, and must draw randomness only from LibTorch's
// default generators (CPU, and the inputs' CUDA device): in backward it runs
// again with them restored.
using BlockFn = std::function<torch::Tensor(const std::vector<torch::Tensor>& inputs)>;

// Whether a mode recomputes residual blocks (blocks) or attention blocks
// (blocks, attention).
inline bool checkpoint_residual(Checkpointing mode) { return mode == Checkpointing::kBlocks; }
inline bool checkpoint_attention(Checkpointing mode) { return mode != Checkpointing::kNone; }

// fn(inputs), checkpointed when `checkpointed` is true, grad mode is on and an
// input requires grad; otherwise a plain call (sampling, evaluation, and the
// default model.checkpointing=none take exactly today's path).
//
// Checkpointed, forward runs fn under NoGradGuard and saves the inputs, the
// states of the default CPU generator and (for CUDA inputs) of their device's
// CUDA generator, and the autocast state. Backward sets those states, runs fn
// again with grad enabled on detached copies of the inputs, restores the
// generators and autocast state it found, and runs a nested backward of the
// recomputed output: the block's parameters accumulate their gradients
// through their own AccumulateGrad nodes (so tensor hooks on them, e.g.
// GradSync's, fire once, with the gradient a plain backward gives them), and
// the inputs' gradients flow on through the outer graph. The autocast weight
// cache is off inside both runs so that neither reuses the other's casts.
//
// REQUIRES: the outer backward does not create a graph (no double backward:
// the losses that need one are refused by config validation).
// Thread safety: as any autograd call; fn is kept until backward or until the
// graph is freed.
torch::Tensor run_block(bool checkpointed, BlockFn fn, const std::vector<torch::Tensor>& inputs);

}  // namespace scorch
