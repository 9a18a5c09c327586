// Sampler dispatch by sampling.method (see sampler.h).
#include "sampling/sampler.h"

#include <limits>

#include "core/config.h"
#include "core/error.h"
#include "sampling/ddim.h"
#include "sampling/dpm_solver.h"
#include "sampling/edm_sampler.h"
#include "sampling/ode_sampler.h"
#include "sampling/unipc.h"

namespace scorch {
std::vector<int64_t> sample_shape(const Config& c) {
  if (is_image_data(c)) return {c.data.num_channels, c.data.image_size, c.data.image_size};
  return {c.data.dim};
}

SampleResult sample_from_config(const Config& c, const Sde& sde, const ScoreFn& score,
                                at::IntArrayRef shape, const torch::TensorOptions& tensor_options,
                                const ProgressFn& progress, const Denoiser& denoiser) {
  const auto& s = c.sampling;
  switch (s.method) {
    case SamplingMethod::kPc:
      return pc_sample(sde, score, shape, tensor_options,
                       pc_options_from_config(s, sampling_eps(c), sampling_steps(c)), progress);
    case SamplingMethod::kOde: {
      OdeSamplerOptions o;
      o.method = s.ode_method;
      o.rtol = s.rtol;
      o.atol = s.atol;
      o.num_steps = sampling_steps(c);
      o.eps = sampling_eps(c);
      o.denoise = s.noise_removal;
      return ode_sample(sde, score, shape, tensor_options, o);
    }
    case SamplingMethod::kEdm: {
      EdmOptions o;
      o.num_steps = sampling_steps(c);
      o.rho = s.edm_rho;
      o.eps = sampling_eps(c);
      o.s_churn = s.edm_churn;
      o.s_tmin = s.edm_s_tmin;
      o.s_tmax = s.edm_s_tmax > 0 ? s.edm_s_tmax : std::numeric_limits<double>::infinity();
      o.s_noise = s.edm_s_noise;
      o.denoiser = denoiser;
      return edm_sample(sde, score, shape, tensor_options, o);
    }
    case SamplingMethod::kDdim: {
      DdimOptions o;
      o.num_steps = sampling_steps(c);
      o.eta = s.ddim_eta;
      o.eps = sampling_eps(c);
      o.discrete = !c.training.continuous;
      return ddim_sample(sde, score, shape, tensor_options, o);
    }
    case SamplingMethod::kDpmSolverPp: {
      DpmSolverOptions o;
      o.order = s.order;
      o.sde = s.sde_variant == SdeVariant::kSde;
      o.denoiser = denoiser;
      o.num_steps = sampling_steps(c);
      o.schedule = s.step_schedule;
      o.rho = s.edm_rho;
      o.eps = sampling_eps(c);
      return dpm_solver_pp_sample(sde, score, shape, tensor_options, o);
    }
    case SamplingMethod::kUniPc: {
      UniPcOptions o;
      o.order = s.order;
      o.denoiser = denoiser;
      o.num_steps = sampling_steps(c);
      o.schedule = s.step_schedule;
      o.rho = s.edm_rho;
      o.eps = sampling_eps(c);
      return unipc_sample(sde, score, shape, tensor_options, o);
    }
  }
  TORCH_CHECK(false, "sample_from_config: unknown sampling.method");
}

}  // namespace scorch
