// Distances between two sample sets of low-dimensional data, used to judge
// toy models: the sliced Wasserstein-1 distance (Rabin et al. 2011; Bonneel
// et al. 2015) and the unbiased squared MMD with a Gaussian kernel
// (Gretton et al. 2012, eq. 3).
#pragma once

#include <torch/torch.h>

namespace scorch {

// SW1(x, y) = mean over `num_projections` random unit directions theta of
// W1(<x, theta>, <y, theta>); with equal sizes W1 of two 1-D empirical laws
// is the mean absolute difference of their sorted values. x [N, D], y [N, D]
// (same N), any float dtype; directions come from `gen` (CPU); computed in float64.
double sliced_wasserstein(const torch::Tensor& x, const torch::Tensor& y, int64_t num_projections,
                          at::Generator gen);

// Unbiased MMD^2 with k(a, b) = exp(-|a-b|^2 / (2 bandwidth^2)); x [N, D], y [M, D].
double mmd2_unbiased(const torch::Tensor& x, const torch::Tensor& y, double bandwidth);

}  // namespace scorch
