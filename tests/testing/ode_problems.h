// ODE test problems with closed-form solutions, shared by the solver tests.
#pragma once

#include <torch/torch.h>

#include <cmath>

namespace scorch::testing {

// dy/dt = -y + sin t, y(0) = y0: y(t) = (y0 + 1/2) e^-t + (sin t - cos t) / 2.
inline torch::Tensor forced_decay(double t, const torch::Tensor& y) { return -y + std::sin(t); }
inline double forced_decay_exact(double t, double y0) {
  return (y0 + 0.5) * std::exp(-t) + (std::sin(t) - std::cos(t)) / 2;
}

// dy/dt = [[0, -1], [1, 0]] y on y [..., 2]: rotation by angle t.
inline torch::Tensor rotation(double, const torch::Tensor& y) {
  return torch::stack({-y.select(-1, 1), y.select(-1, 0)}, -1);
}
inline torch::Tensor rotation_exact(double t, const torch::Tensor& y0) {
  const double c = std::cos(t), s = std::sin(t);
  return torch::stack(
      {c * y0.select(-1, 0) - s * y0.select(-1, 1), s * y0.select(-1, 0) + c * y0.select(-1, 1)},
      -1);
}

// Van der Pol oscillator, mu = 1, on y [..., 2]: nonlinear, no closed form.
inline torch::Tensor van_der_pol(double, const torch::Tensor& y) {
  const auto p = y.select(-1, 0), q = y.select(-1, 1);
  return torch::stack({q, (1 - p * p) * q - p}, -1);
}

inline torch::Tensor scalar_state(double v) { return torch::full({1}, v, torch::kDouble); }

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace scorch::testing
