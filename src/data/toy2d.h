// Built-in seeded 2-D datasets, as in the FFJORD / score-matching toy
// literature: swiss roll, two moons, 8 Gaussians, checkerboard.
#pragma once

#include <torch/torch.h>

#include <string>

#include "core/choices.h"

namespace scorch {

enum class Toy2D { kSwissRoll, kTwoMoons, kEightGaussians, kCheckerboard };

// The 2-D set a data.dataset names; throws scorch::Error for other datasets.
Toy2D toy2d_kind(DatasetName dataset);

// n samples [n, 2] float32 on the CPU, drawn from `gen` only: the same seed
// gives the same points on every machine.
//   swiss_roll:      t = 1.5 pi (1 + 2u); (t cos t, t sin t) + N(0, 1), / 5
//   two_moons:       sklearn make_moons (noise 0.1), * 2 + (-1, -0.2)
//   eight_gaussians: 4 * unit-circle centres + N(0, 0.5^2), / sqrt(2)
//   checkerboard:    uniform on the 8 dark cells of a 4x4 board over [-4, 4]^2
torch::Tensor sample_toy2d(Toy2D kind, int64_t n, at::Generator gen);

}  // namespace scorch
