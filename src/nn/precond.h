// EDM preconditioning (Karras et al. 2022, Table 1; NVlabs/edm networks.py
// VPPrecond, VEPrecond, EDMPrecond): a network F becomes the denoiser
//   D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))
// and is exposed as a ScoreNet whose output score_model.h converts into the
// score of the training SDE (model.precond; none builds no wrapper at all).
//
//   auto net = make_precond_score_net(options, sde, inner);   // a ScoreNet
//   auto d = net->denoise(x_hat, sigma);                       // D(x_hat; sigma)
//   auto s = score_fn(*net, *sde, /*continuous=*/true, x, t);  // as for any network
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "core/choices.h"
#include "nn/score_net.h"
#include "sde/sde.h"

namespace scorch {

struct PrecondOptions {
  Precond kind = Precond::kEDM;
  double sigma_data = 0.5;  // edm: sd
  double beta_min = 0.1;    // vp: t(sigma) of the VP SDE with beta(t) = beta_min + beta_d t
  double beta_d = 19.9;
  double num_labels = 1000;  // vp: M, c_noise = (M - 1) t(sigma)
};

// Table 1's coefficients at sigma [B] (> 0), each [B] in sigma's dtype:
//   vp:  c_skip 1, c_out -sigma, c_in 1/sqrt(sigma^2+1), c_noise (M-1) t(sigma),
//        t(sigma) = (sqrt(beta_min^2 + 2 beta_d ln(1+sigma^2)) - beta_min) / beta_d;
//   ve:  c_skip 1, c_out sigma, c_in 1, c_noise ln(sigma/2);
//   edm: c_skip sd^2/(sigma^2+sd^2), c_out sigma sd/sqrt(sigma^2+sd^2),
//        c_in 1/sqrt(sigma^2+sd^2), c_noise ln(sigma)/4.
// REQUIRES: kind != none.
struct PrecondCoefficients {
  torch::Tensor c_skip, c_out, c_in, c_noise;
};
PrecondCoefficients precond_coefficients(const PrecondOptions& options, const torch::Tensor& sigma);

// The wrapper. forward(x, time_cond) takes score_sde's continuous time label
// (score_model.h: 999 t for VP / sub-VP, sigma(t) for VE) and returns what
// score_fn turns into the score (D - x)/sigma^2 in the SDE's variables. With
// marginals x_t = m(t) x_0 + std(t) z, x_hat = x / m and sigma = std / m
// (sigma_denoiser.h), grad_x log p_t(x) = (D(x_hat; sigma) - x_hat) / (m sigma^2), so
//   VE (m = 1):      out = (D(x; sigma) - x) / sigma^2       (score_fn: score = out)
//   VP, sub-VP:      out = (x_hat - D(x_hat; sigma)) / sigma  (score_fn: -out / std)
// i.e. the VP output is the noise prediction eps of x_hat. Owns `inner`; shares `sde`.
class PrecondScoreNetImpl : public ScoreNetImpl {
 public:
  PrecondScoreNetImpl(PrecondOptions options, std::shared_ptr<const Sde> sde, ScoreNet inner);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                        const torch::Tensor& class_labels = {}) override;
  // D(x; sigma): x [B, ...], sigma [B] > 0 (any dtype; cast to x's). Returns [B, ...].
  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                        const torch::Tensor& class_labels = {});
  const PrecondOptions& options() const { return options_; }

 protected:
  // For wrappers that are a reference's whole preconditioned network
  // (nn/edm2.h): `inner` is registered under `inner_name` instead of "net",
  // so that the parameter names are the reference's.
  PrecondScoreNetImpl(PrecondOptions options, std::shared_ptr<const Sde> sde, ScoreNet inner,
                      const std::string& inner_name);
  const ScoreNet& inner() const { return inner_; }

 private:
  PrecondOptions options_;
  std::shared_ptr<const Sde> sde_;
  ScoreNet inner_;
};

std::shared_ptr<PrecondScoreNetImpl> make_precond_score_net(PrecondOptions options,
                                                            std::shared_ptr<const Sde> sde,
                                                            ScoreNet inner);

}  // namespace scorch
