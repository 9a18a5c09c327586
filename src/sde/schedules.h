// Discrete noise schedules: linear betas (Ho et al. 2020), cosine
// (Nichol and Dhariwal 2021, eq. 17), and geometric sigmas (Song and Ermon 2019).
#pragma once

#include <torch/torch.h>

namespace scorch {

// beta_k = linspace(beta_start, beta_end, n), float64 [n].
torch::Tensor linear_beta_schedule(int64_t n, double beta_start = 1e-4, double beta_end = 0.02);

// alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t/n + s)/(1 + s)) pi/2);
// beta_k = min(1 - alpha_bar(k+1)/alpha_bar(k), max_beta), float64 [n].
torch::Tensor cosine_beta_schedule(int64_t n, double s = 0.008, double max_beta = 0.999);

// sigma_k = exp(linspace(ln sigma_min, ln sigma_max, n)), ascending, float64 [n].
torch::Tensor geometric_sigma_schedule(int64_t n, double sigma_min, double sigma_max);

}  // namespace scorch
