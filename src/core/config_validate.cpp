// Config validation (the cross-key checks that no single field's range can
// express) and the values derived from a config across the code.
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/signals.h"

namespace scorch {

void validate(const Config& c) {
  const auto& m = c.model;
  SCORCH_CHECK(m.sigma_min < m.sigma_max, "model.sigma_min (", m.sigma_min,
               ") must be smaller than model.sigma_max (", m.sigma_max, ")");
  SCORCH_CHECK(m.beta_min < m.beta_max, "model.beta_min (", m.beta_min,
               ") must be smaller than model.beta_max (", m.beta_max, ")");
  SCORCH_CHECK(!m.ch_mult.empty(), "model.ch_mult must list at least one level, e.g. [1, 2, 2, 2]");
  SCORCH_CHECK(m.fir_kernel.size() >= 2,
               "model.fir_kernel needs at least two taps, e.g. [1, 3, 3, 1]");
  const bool vector_data = !is_image_data(c);
  if (m.name == "analytic") {
    const int64_t d = vector_data ? c.data.dim
                                  : c.data.num_channels * c.data.image_size * c.data.image_size;
    const auto nm = static_cast<int64_t>(m.analytic_means.size());
    SCORCH_CHECK(nm % d == 0, "model.analytic_means has ", nm,
                 " values; it needs K * D for D = ", d, " (K components of dimension D)");
    const int64_t k = nm == 0 ? 1 : nm / d;
    SCORCH_CHECK(m.analytic_weights.empty() || static_cast<int64_t>(m.analytic_weights.size()) == k,
                 "model.analytic_weights has ", m.analytic_weights.size(), " values for ", k,
                 " components");
    SCORCH_CHECK(m.analytic_covariances.empty() ||
                     static_cast<int64_t>(m.analytic_covariances.size()) == k * d * d,
                 "model.analytic_covariances has ", m.analytic_covariances.size(),
                 " values; it needs K*D*D = ", k * d * d);
    SCORCH_CHECK(m.analytic_std > 0, "model.analytic_std must be > 0");
  } else if (vector_data && m.name == "adm") {
    // 1-D / 3-D signals stored as vectors of C * L or C * depth * S * S values.
    SCORCH_CHECK(c.data.dataset == "hdf5", "model.name=adm with model.dims=", m.dims,
                 " reads signals stored as vectors: data.dataset must be hdf5, got '",
                 c.data.dataset, "'");
    const int64_t s = c.data.image_size, ch = c.data.num_channels;
    const int64_t d = m.dims == 1 ? ch * s : ch * c.data.depth * s * s;
    SCORCH_CHECK(c.data.dim == d, "data.dim ", c.data.dim, " must equal ",
                 m.dims == 1 ? "data.num_channels * data.image_size"
                             : "data.num_channels * data.depth * data.image_size^2",
                 " = ", d, " for model.name=adm with model.dims=", m.dims);
  } else if (vector_data) {
    SCORCH_CHECK(m.name == "mlp", "model.name '", m.name,
                 "' is an image network but data.dataset '", c.data.dataset,
                 "' is 2-D vector data; use model.name=mlp");
    if (is_toy_data(c))
      SCORCH_CHECK(c.data.dim == 2, "data.dataset '", c.data.dataset,
                   "' is two-dimensional; data.dim must be 2, got ", c.data.dim);
  } else {
    SCORCH_CHECK(m.name != "mlp", "model.name 'mlp' is for vector data; data.dataset '",
                 c.data.dataset, "' holds images: use ddpm, ncsnpp or adm");
    SCORCH_CHECK(m.name != "adm" || m.dims == 2, "model.dims=", m.dims, " is for ",
                 m.dims == 1 ? "1-D" : "3-D", " signals stored as vectors (data.dataset=hdf5); ",
                 "data.dataset '", c.data.dataset, "' holds images: set model.dims=2");
    const int64_t levels = static_cast<int64_t>(m.ch_mult.size());
    const int64_t net_size = m.patch_size > 0 ? m.patch_size : c.data.image_size;
    SCORCH_CHECK(net_size % (int64_t{1} << (levels - 1)) == 0,
                 m.patch_size > 0 ? "model.patch_size (" : "data.image_size (", net_size,
                 ") must be divisible by 2^(len(model.ch_mult)-1) = ", int64_t{1} << (levels - 1));
  }
  if (m.patch_size > 0) {
    SCORCH_CHECK(!vector_data && (m.name == "ddpm" || m.name == "ncsnpp" ||
                                  (m.name == "adm" && m.dims == 2)),
                 "model.patch_size needs image data and a U-Net that takes two extra coordinate "
                 "channels: model.name ddpm, ncsnpp or adm (dims 2), got model.name=", m.name);
    SCORCH_CHECK(m.patch_size < c.data.image_size, "model.patch_size ", m.patch_size,
                 " must be smaller than data.image_size ", c.data.image_size,
                 " (0 trains on whole images)");
    SCORCH_CHECK(m.patch_stride <= m.patch_size, "model.patch_stride ", m.patch_stride,
                 " must not exceed model.patch_size ", m.patch_size,
                 " (tiles would leave gaps); 0 = patch_size / 2");
  }
  const auto& t = c.training;
  preemption_signal_numbers(c);  // throws on an unknown name
  if (t.loss == "smld")
    SCORCH_CHECK(t.sde == "vesde", "training.loss=smld needs training.sde=vesde, got ", t.sde);
  if (t.loss == "ddpm")
    SCORCH_CHECK(t.sde == "vpsde", "training.loss=ddpm needs training.sde=vpsde, got ", t.sde);
  if (!t.continuous && (t.loss == "auto"))
    SCORCH_CHECK(t.sde != "subvpsde",
                 "training.continuous=false has no discrete loss for subvpsde; set "
                 "training.continuous=true or training.sde=vpsde/vesde");
  if (c.sampling.predictor == "ancestral_sampling")
    SCORCH_CHECK(c.training.sde != "subvpsde" && !c.sampling.probability_flow,
                 "sampling.predictor=ancestral_sampling needs training.sde vesde or vpsde and "
                 "sampling.probability_flow=false");
  SCORCH_CHECK(c.sampling.method != "ddim" || c.training.sde == "vpsde",
               "sampling.method=ddim needs training.sde=vpsde, got ", c.training.sde,
               "; use ode or edm for other SDEs");
  const auto& pred = c.sampling.predictor;
  if (c.sampling.method == "pc" && (pred == "reverse_diffusion" || pred == "ancestral_sampling"))
    SCORCH_CHECK(c.sampling.num_steps == 0 || c.sampling.num_steps == m.num_scales,
                 "sampling.predictor=", pred, " steps through the model.num_scales=", m.num_scales,
                 " discrete levels, so sampling.num_steps must be 0 or ", m.num_scales, ", got ",
                 c.sampling.num_steps);
  SCORCH_CHECK(c.data.dataset != "hdf5" || !c.data.path.empty(),
               "data.dataset=hdf5 needs data.path (a dataset directory)");
}

double sampling_eps(const Config& c) {
  if (c.sampling.eps > 0) return c.sampling.eps;
  return c.training.sde == "vesde" ? 1e-5 : 1e-3;
}

int64_t sampling_steps(const Config& c) {
  return c.sampling.num_steps > 0 ? c.sampling.num_steps : c.model.num_scales;
}

std::vector<int> preemption_signal_numbers(const Config& c) {
  return parse_signal_list(c.preemption.signals, "preemption.signals");
}

bool is_toy_data(const Config& c) {
  const auto& d = c.data.dataset;
  return d == "swiss_roll" || d == "two_moons" || d == "eight_gaussians" || d == "checkerboard";
}

bool is_image_data(const Config& c) {
  // An hdf5 dataset holds images or vectors; the network says which is meant
  // (the loader checks the manifest agrees).
  if (c.data.dataset == "hdf5")
    return c.model.name == "ddpm" || c.model.name == "ncsnpp" || c.model.name == "ncsn" ||
           c.model.name.rfind("ncsnv2_", 0) == 0 || (c.model.name == "adm" && c.model.dims == 2);
  return !is_toy_data(c);
}

}  // namespace scorch
