// Seeding of Scorch's random streams. Every random draw in training comes from
// LibTorch's default generators, re-seeded at each step from (seed, rank,
// step): ranks draw different noise, and a resumed run continues exactly the
// streams of a run that never stopped, without storing generator state.
#pragma once

#include <cstdint>

namespace scorch {

// SplitMix64 finaliser: a bijective mix of a 64-bit value.
uint64_t mix64(uint64_t x);

// A 63-bit seed derived from (seed, stream, step); distinct inputs give
// unrelated seeds. `stream` is the rank for training noise, or any constant
// naming another stream (sampling, data).
uint64_t derive_seed(uint64_t seed, uint64_t stream, uint64_t step);

// Seeds LibTorch's CPU and CUDA default generators with derive_seed(...).
void seed_streams(uint64_t seed, uint64_t stream, uint64_t step);

}  // namespace scorch
