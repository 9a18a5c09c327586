// The network F that makes a preconditioned wrapper (nn/precond.h) the exact
// denoiser of Gaussian data N(0, s^2 I): D*(x; sigma) = s^2 / (s^2 + sigma^2) x
// (Tweedie). F reads sigma back from c_noise (inverting Table 1's c_noise) and
// x from c_in x, and returns (D*(x; sigma) - c_skip x) / c_out.
#pragma once

#include <torch/torch.h>

#include <cmath>

#include "nn/precond.h"

namespace scorch::testing {

class GaussianPrecondNet : public ScoreNetImpl {
 public:
  GaussianPrecondNet(PrecondOptions options, double data_std) : o_(options), s_(data_std) {}

  torch::Tensor forward(const torch::Tensor& y, const torch::Tensor& c_noise,
                        const torch::Tensor& = {}) override {
    torch::Tensor sigma;
    switch (o_.kind) {
      case Precond::kVP: {
        const auto t = c_noise / (o_.num_labels - 1.0);
        sigma = torch::sqrt(torch::expm1(0.5 * o_.beta_d * t * t + o_.beta_min * t));
        break;
      }
      case Precond::kVE:
        sigma = 2.0 * torch::exp(c_noise);
        break;
      default:
        sigma = torch::exp(4.0 * c_noise);
    }
    const auto c = precond_coefficients(o_, sigma);
    const auto v = [&](const torch::Tensor& a) { return a.view({-1, 1}); };
    const auto x = y / v(c.c_in);
    const auto d = s_ * s_ / (s_ * s_ + v(sigma * sigma)) * x;
    return (d - v(c.c_skip) * x) / v(c.c_out);
  }

 private:
  PrecondOptions o_;
  double s_;
};

}  // namespace scorch::testing
