// SplitMix64-based seed derivation (Steele, Lea, Flood 2014).
#include "core/rng.h"

#include <torch/torch.h>

namespace scorch {

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

uint64_t derive_seed(uint64_t seed, uint64_t stream, uint64_t step) {
  return mix64(mix64(mix64(seed) ^ stream) ^ step) >> 1;
}

void seed_streams(uint64_t seed, uint64_t stream, uint64_t step) {
  torch::manual_seed(derive_seed(seed, stream, step));
}

}  // namespace scorch
