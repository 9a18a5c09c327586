// Reference statistics files (.npz) for `scorch stats` and `scorch eval`:
// mu, sigma (float64), count (int64 scalar), extractor (the identity string
// as uint8 bytes) and optionally features (float32 [N, d]). pytorch-fid, EDM
// and guided-diffusion statistics (mu and sigma only) load as they are, and
// numpy.load reads Scorch's.
#pragma once

#include <string>

#include "eval/evaluate.h"

namespace scorch {

void save_reference_stats(const std::string& path, const ReferenceStats& stats);

// Throws scorch::Error naming the file when mu or sigma is missing or their
// shapes disagree.
ReferenceStats load_reference_stats(const std::string& path);

}  // namespace scorch
