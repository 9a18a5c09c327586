// Sampler benchmark, two tables:
//  1. throughput of each sampling.method setting with a small untrained NCSN++
//     on the CPU (samples/s, score evaluations per sample, ms per evaluation);
//  2. NFE against sample quality on a 2-D mixture of eight Gaussians whose
//     perturbed scores are exact (nn/analytic.h), so every error is the
//     sampler's: sliced Wasserstein-1 (Rabin et al. 2011) to exact samples,
//     next to the floor of two exact draws, and two low-variance diagnostics
//     of the modes (their spread and the total variation of their weights).
// Settings go through sample_from_config as `scorch sample` overrides would.
//   bench_sampler [--table 0|1|2] [--batch B] [--image-size S] [--samples N] [--threads T]
#include <torch/version.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/compat.h"           // defines: cpu_generator
#include "core/config.h"           // defines: Config, parse_config, validate
#include "eval/sample_distance.h"  // defines: sliced_wasserstein
#include "nn/analytic.h"       // defines: make_analytic_from_config, AnalyticScoreNetImpl::sample
#include "nn/model_factory.h"  // defines: make_score_net, count_parameters
#include "nn/score_model.h"    // defines: make_score_fn
#include "sampling/sampler.h"  // defines: sample_from_config, sample_shape
#include "sde/sde.h"           // defines: make_sde

namespace {

using namespace scorch;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// One row: a label and the config overrides that select it (sampling.*,
// training.sde, and model.num_scales where the predictor steps through the
// discrete levels).
struct Setting {
  std::string label;
  std::vector<std::string> overrides;
};

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const char* sde_name(const Config& c) {
  return c.training.sde == SdeKind::kVE ? "VE" : c.training.sde == SdeKind::kVP ? "VP" : "subVP";
}

// ---------------------------------------------------------------- table 1

struct ThroughputOptions {
  int64_t batch = 16;
  int64_t image_size = 16;
  double second_batch_below_s = 10;  // time a second batch when the first was faster
};

// NCSN++ at a toy size; VE with Fourier features and scale_by_sigma, VP with
// positional embeddings, as score_sde's ncsnpp / ddpmpp configs pair them.
std::vector<std::string> network_overrides(const std::string& sde, const ThroughputOptions& o) {
  std::vector<std::string> v = {"data.dataset=synthetic_images",
                                "data.image_size=" + std::to_string(o.image_size),
                                "data.num_channels=3",
                                "model.name=ncsnpp",
                                "model.nf=32",
                                "model.ch_mult=[1,2]",
                                "model.num_res_blocks=1",
                                "model.attn_resolutions=[16]",
                                "training.continuous=true",
                                "training.sde=" + sde};
  if (sde == "vesde")
    v.insert(v.end(), {"model.embedding_type=fourier", "model.scale_by_sigma=true"});
  else
    v.insert(v.end(), {"model.embedding_type=positional", "model.scale_by_sigma=false"});
  return v;
}

void throughput_table(const ThroughputOptions& o) {
  const std::vector<std::pair<std::string, Setting>> rows = {
      {"vpsde",
       {"pc euler_maruyama + none, 100",
        {"sampling.method=pc", "sampling.predictor=euler_maruyama", "sampling.corrector=none",
         "sampling.num_steps=100"}}},
      {"vesde",
       {"pc reverse_diffusion + langevin, 100",
        {"sampling.method=pc", "sampling.predictor=reverse_diffusion",
         "sampling.corrector=langevin", "model.num_scales=100"}}},
      {"vpsde",
       {"pc ancestral_sampling + none, 100",
        {"sampling.method=pc", "sampling.predictor=ancestral_sampling", "sampling.corrector=none",
         "model.num_scales=100"}}},
      {"vpsde",
       {"ode dopri5 rtol=atol=1e-5 (*)",
        {"sampling.method=ode", "sampling.ode_method=dopri5", "sampling.rtol=1e-5",
         "sampling.atol=1e-5"}}},
      {"vpsde",
       {"ode dopri5 rtol=atol=1e-3 (*)",
        {"sampling.method=ode", "sampling.ode_method=dopri5", "sampling.rtol=1e-3",
         "sampling.atol=1e-3"}}},
      {"vpsde",
       {"ode rk4, 25",
        {"sampling.method=ode", "sampling.ode_method=rk4", "sampling.num_steps=25"}}},
      {"vpsde",
       {"ode euler, 100",
        {"sampling.method=ode", "sampling.ode_method=euler", "sampling.num_steps=100"}}},
      {"vpsde",
       {"ode heun, 50",
        {"sampling.method=ode", "sampling.ode_method=heun", "sampling.num_steps=50"}}},
      {"vesde", {"edm, 18", {"sampling.method=edm", "sampling.num_steps=18"}}},
      {"vpsde", {"edm, 18", {"sampling.method=edm", "sampling.num_steps=18"}}},
      {"vesde",
       {"edm churn 40, 64",
        {"sampling.method=edm", "sampling.num_steps=64", "sampling.edm_churn=40"}}},
      {"vpsde",
       {"ddim eta 0, 50",
        {"sampling.method=ddim", "sampling.ddim_eta=0", "sampling.num_steps=50"}}},
  };

  // One network per SDE, both from seed 0: random weights at score_sde's
  // initialisation (model.init_scale = 0, so the output layers start near zero).
  std::map<std::string, ScoreNet> nets;
  for (const std::string sde : {"vesde", "vpsde"}) {
    torch::manual_seed(0);
    auto net = make_score_net(parse_config("", "bench_sampler", network_overrides(sde, o)));
    net->eval();
    nets[sde] = net;
  }
  const Config vp = parse_config("", "bench_sampler", network_overrides("vpsde", o));
  std::printf(
      "Table 1: throughput, NCSN++ nf=32 ch_mult=[1,2] num_res_blocks=1 "
      "attn_resolutions=[16], %lld parameters (VP), untrained; batch %lld of "
      "3x%lldx%lld, float32, CPU, eval mode, no grad\n",
      static_cast<long long>(count_parameters(*nets["vpsde"])), static_cast<long long>(o.batch),
      static_cast<long long>(o.image_size), static_cast<long long>(o.image_size));
  std::printf(
      "PC rows use 100 steps (score_sde samples with 1000; time scales linearly). Each "
      "row times one batch,\nand a second when the first took under %.0f s, and reports "
      "the faster.\n\n",
      o.second_batch_below_s);
  std::printf("%-40s %4s %10s %10s %10s %12s\n", "sampler, steps", "SDE", "NFE/sample", "s/batch",
              "samples/s", "ms/NFE-batch");

  torch::NoGradGuard no_grad;
  {  // warm-up: first-call allocations and kernel selection
    auto sde = make_sde(vp);
    auto score = make_score_fn(nets["vpsde"], sde, true);
    auto x = torch::randn({o.batch, 3, o.image_size, o.image_size});
    for (int i = 0; i < 3; ++i) score(x, torch::full({o.batch}, 0.5));
  }
  for (const auto& [sde_key, s] : rows) {
    const Config c =
        parse_config("", "bench_sampler", concat(network_overrides(sde_key, o), s.overrides));
    auto sde = make_sde(c);
    auto score = make_score_fn(nets[sde_key], sde, c.training.continuous);
    std::vector<int64_t> batch_shape = {o.batch};
    for (int64_t d : sample_shape(c)) batch_shape.push_back(d);
    // The faster of the timed batches: other processes on the machine only
    // ever add time.
    torch::manual_seed(1);
    double per_batch = std::numeric_limits<double>::infinity();
    int64_t nfe = 0;
    for (int batch = 0; batch < 2; ++batch) {
      const auto t0 = Clock::now();
      const int64_t batch_nfe =
          sample_from_config(c, *sde, score, batch_shape, torch::TensorOptions()).nfe;
      const double seconds = seconds_since(t0);
      if (seconds < per_batch) per_batch = seconds, nfe = batch_nfe;
      if (seconds >= o.second_batch_below_s) break;
    }
    std::printf("%-40s %4s %10lld %10.2f %10.2f %12.1f\n", s.label.c_str(), sde_name(c),
                static_cast<long long>(nfe), per_batch, o.batch / per_batch,
                1000 * per_batch / nfe);
    std::fflush(stdout);
  }
  std::printf(
      "(*) adaptive step count of an untrained network: at score_sde's initialisation its score "
      "is ~0, so the ODE is nearly\n    linear; this says nothing about a trained model's NFE "
      "(Table 2 has NFE vs quality).\n\n");
}

// ---------------------------------------------------------------- table 2

struct QualityOptions {
  int64_t samples = 4000;
  int64_t projections = 500;
  double radius = 2.0, component_std = 0.1;
};

// Eight equal-weight components on a circle, as data.dataset=eight_gaussians
// lays them out (angles k pi / 4), at radius 2 with std 0.1: narrow modes, so
// a sampler that blurs or misweights them shows.
Config mixture_config(const QualityOptions& o, const std::vector<std::string>& overrides) {
  Config c = parse_config(
      "", "bench_sampler",
      concat({"data.dataset=eight_gaussians", "data.dim=2", "model.name=analytic",
              "training.continuous=true", "model.analytic_std=" + std::to_string(o.component_std)},
             overrides));
  c.model.analytic_means.clear();
  for (int k = 0; k < 8; ++k) {
    c.model.analytic_means.push_back(o.radius * std::cos(k * M_PI / 4));
    c.model.analytic_means.push_back(o.radius * std::sin(k * M_PI / 4));
  }
  validate(c);
  return c;
}

// Each sample of x [N, 2] is assigned to its nearest mean (means [K, 2]).
// spread: the RMS per-coordinate distance to that mean (the component std
// for exact samples; a sampler that blurs the modes raises it, one that
// over-contracts lowers it). weight_tv: the total variation distance between
// the assigned fractions and the true weights 1/K.
struct ModeStats {
  double spread, weight_tv;
};
ModeStats mode_stats(const torch::Tensor& x, const torch::Tensor& means) {
  const auto d2 = torch::cdist(x.to(torch::kDouble), means.to(torch::kDouble)).pow(2);
  const auto [nearest, index] = d2.min(1);
  const int64_t k = means.size(0);
  const auto fractions = torch::bincount(index, {}, k).to(torch::kDouble) / x.size(0);
  return {std::sqrt(nearest.mean().item<double>() / x.size(1)),
          0.5 * (fractions - 1.0 / k).abs().sum().item<double>()};
}

void quality_table(const QualityOptions& o) {
  auto pc = [](const std::string& predictor, const std::string& corrector, int64_t n, bool levels) {
    std::vector<std::string> v = {"sampling.method=pc", "sampling.predictor=" + predictor,
                                  "sampling.corrector=" + corrector};
    // reverse_diffusion and ancestral_sampling step through model.num_scales levels.
    v.push_back(levels ? "model.num_scales=" + std::to_string(n)
                       : "sampling.num_steps=" + std::to_string(n));
    return v;
  };
  auto ode = [](const std::string& method, const std::string& arg) {
    std::vector<std::string> v = {"sampling.method=ode", "sampling.ode_method=" + method};
    if (method == "dopri5")
      v.insert(v.end(), {"sampling.rtol=" + arg, "sampling.atol=" + arg});
    else
      v.push_back("sampling.num_steps=" + arg);
    return v;
  };
  auto with = [](std::vector<std::string> v, const std::string& extra) {
    v.push_back(extra);
    return v;
  };
  const std::string ve = "training.sde=vesde", vp = "training.sde=vpsde";
  std::vector<Setting> rows;
  for (int n : {25, 50, 100, 200, 1000})
    rows.push_back({"pc euler_maruyama + none, " + std::to_string(n),
                    with(pc("euler_maruyama", "none", n, false), vp)});
  for (int n : {100, 1000})
    rows.push_back({"pc ancestral_sampling + none, " + std::to_string(n),
                    with(pc("ancestral_sampling", "none", n, true), vp)});
  for (int n : {100, 200, 1000})
    rows.push_back({"pc reverse_diffusion + langevin, " + std::to_string(n),
                    with(pc("reverse_diffusion", "langevin", n, true), ve)});
  for (const char* tol : {"1e-2", "1e-3", "1e-5"})
    rows.push_back({std::string("ode dopri5 rtol=atol=") + tol, with(ode("dopri5", tol), vp)});
  for (int n : {5, 10, 25})
    rows.push_back({"ode rk4, " + std::to_string(n), with(ode("rk4", std::to_string(n)), vp)});
  for (int n : {25, 100})
    rows.push_back({"ode euler, " + std::to_string(n), with(ode("euler", std::to_string(n)), vp)});
  for (int n : {10, 50})
    rows.push_back({"ode heun, " + std::to_string(n), with(ode("heun", std::to_string(n)), vp)});
  for (int n : {3, 5, 6, 10, 18, 35})
    rows.push_back({"edm, " + std::to_string(n),
                    {"sampling.method=edm", "sampling.num_steps=" + std::to_string(n), vp}});
  for (int n : {5, 10, 18, 35})
    rows.push_back({"edm, " + std::to_string(n),
                    {"sampling.method=edm", "sampling.num_steps=" + std::to_string(n), ve}});
  rows.push_back({"edm churn 40, 64",
                  {"sampling.method=edm", "sampling.num_steps=64", "sampling.edm_churn=40", ve}});
  for (int n : {5, 10, 20, 25, 50, 100})
    rows.push_back({"ddim eta 0, " + std::to_string(n),
                    {"sampling.method=ddim", "sampling.ddim_eta=0",
                     "sampling.num_steps=" + std::to_string(n), vp}});
  rows.push_back({"ddim eta 1, 100",
                  {"sampling.method=ddim", "sampling.ddim_eta=1", "sampling.num_steps=100", vp}});

  // The multistep samplers at 5, 10 and 20 NFE, first on Karras levels (rho 7).
  auto multistep = [](const std::string& method, int order, const std::string& variant, int n,
                      const std::string& schedule = "karras") {
    return std::vector<std::string>{"sampling.method=" + method,
                                    "sampling.order=" + std::to_string(order),
                                    "sampling.sde_variant=" + variant,
                                    "sampling.num_steps=" + std::to_string(n),
                                    "sampling.step_schedule=" + schedule};
  };
  for (const std::string& sde : {vp, ve}) {
    for (int order : {2, 3}) {
      for (int n : {5, 10, 20})
        rows.push_back({"dpm_solver_pp " + std::to_string(order) + "M karras, " + std::to_string(n),
                        with(multistep("dpm_solver_pp", order, "none", n), sde)});
      for (int n : {5, 10, 20})
        rows.push_back({"unipc " + std::to_string(order) + " karras, " + std::to_string(n),
                        with(multistep("unipc", order, "none", n), sde)});
    }
  }
  // The same on levels uniform in log-SNR and in SDE time.
  for (const std::string& schedule : {"log_snr", "time"}) {
    for (int order : {2, 3}) {
      for (const std::string& method : {"dpm_solver_pp", "unipc"}) {
        for (int n : {5, 10, 20}) {
          const std::string label = method == "unipc"
                                        ? "unipc " + std::to_string(order)
                                        : "dpm_solver_pp " + std::to_string(order) + "M";
          rows.push_back({label + " " + schedule + ", " + std::to_string(n),
                          with(multistep(method, order, "none", n, schedule), vp)});
        }
      }
    }
  }
  for (int order : {2, 3})
    for (int n : {10, 20, 50})
      rows.push_back(
          {"dpm_solver_pp " + std::to_string(order) + "M sde karras, " + std::to_string(n),
           with(multistep("dpm_solver_pp", order, "sde", n), vp)});

  // Exact data samples do not depend on the SDE: the reference and the floor's
  // second draw come from the VP net's sample().
  const Config base = mixture_config(o, {vp});
  auto exact = make_analytic_from_config(base, make_sde(base));
  torch::manual_seed(1);
  const auto reference = exact->sample(o.samples);
  torch::manual_seed(2);
  const auto second_draw = exact->sample(o.samples);
  // The same projection directions for every row (seed 3), so rows differ by
  // their samples only.
  auto sw = [&](const torch::Tensor& x) {
    return sliced_wasserstein(x, reference, o.projections, compat::cpu_generator(3));
  };
  const double floor = sw(second_draw);
  // How far SW1 moves between exact draws: the floor over further pairs.
  std::vector<double> floors;
  for (int i = 0; i < 10; ++i) {
    torch::manual_seed(100 + i);
    auto a = exact->sample(o.samples);
    floors.push_back(
        sliced_wasserstein(a, exact->sample(o.samples), o.projections, compat::cpu_generator(3)));
  }
  const auto floor_t = torch::tensor(floors, torch::kDouble);
  const ModeStats exact_modes = mode_stats(second_draw, exact->means());

  const Config vp_defaults = mixture_config(o, {vp}), ve_defaults = mixture_config(o, {ve});
  std::printf(
      "Table 2: NFE vs quality, 8 equal Gaussians on a circle of radius %.1f, std %.2f, "
      "exact (analytic) score; %lld samples per row;\n",
      o.radius, o.component_std, static_cast<long long>(o.samples));
  std::printf(
      "SW1 = sliced Wasserstein-1 over %lld directions to %lld exact samples; floor = "
      "SW1 of a second exact draw.\n",
      static_cast<long long>(o.projections), static_cast<long long>(o.samples));
  std::printf(
      "SW1 of exact vs exact over 10 more pairs: %.4f +- %.4f (mean +- sd); exact draw: "
      "spread %.4f, mode TV %.4f.\n",
      floor_t.mean().item<double>(), floor_t.std().item<double>(), exact_modes.spread,
      exact_modes.weight_tv);
  std::printf(
      "spread = RMS per-coordinate distance to the nearest mean (exact: the std, %.2f); "
      "mode TV = total variation of the nearest-mean fractions from 1/8.\n",
      o.component_std);
  std::printf(
      "VP beta in [%g, %g], eps %g; VE sigma in [%g, %g], eps %g; noise_removal on; "
      "Langevin snr %g; EDM rho %g.\n\n",
      vp_defaults.model.beta_min, vp_defaults.model.beta_max, sampling_eps(vp_defaults),
      ve_defaults.model.sigma_min, ve_defaults.model.sigma_max, sampling_eps(ve_defaults),
      vp_defaults.sampling.snr, vp_defaults.sampling.edm_rho);
  std::printf("%-40s %4s %6s %9s %9s %9s %9s %8s\n", "sampler, steps", "SDE", "NFE", "SW1", "floor",
              "spread", "mode TV", "ms");

  torch::NoGradGuard no_grad;
  for (const auto& s : rows) {
    const Config c = mixture_config(o, s.overrides);
    auto sde = make_sde(c);
    auto net = make_analytic_from_config(c, sde);
    auto score = make_score_fn(net.ptr(), sde, c.training.continuous);
    torch::manual_seed(4);
    const auto t0 = Clock::now();
    const auto r = sample_from_config(c, *sde, score, {o.samples, 2}, torch::TensorOptions());
    const double ms = 1000 * seconds_since(t0);
    const ModeStats modes = mode_stats(r.x, exact->means());
    std::printf("%-40s %4s %6lld %9.4f %9.4f %9.4f %9.4f %8.0f\n", s.label.c_str(), sde_name(c),
                static_cast<long long>(r.nfe), sw(r.x), floor, modes.spread, modes.weight_tv, ms);
    std::fflush(stdout);
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Sampler throughput and NFE-vs-quality tables"};
  int table = 0;
  ThroughputOptions throughput;
  QualityOptions quality;
  app.add_option("--table", table, "1: throughput, 2: NFE vs quality, 0: both")
      ->check(CLI::Range(0, 2));
  app.add_option("--batch", throughput.batch, "table 1 batch size")->check(CLI::PositiveNumber);
  app.add_option("--image-size", throughput.image_size, "table 1 image size (even)")
      ->check(CLI::PositiveNumber);
  app.add_option("--samples", quality.samples, "table 2 samples per row")
      ->check(CLI::PositiveNumber);
  int threads = 0;
  app.add_option("--threads", threads, "LibTorch intra-op threads (0: LibTorch's default)")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) torch::set_num_threads(threads);

  const auto t0 = Clock::now();
  // Other processes share the cores; their load skews every timing below.
  auto load_average = [] {
    std::string load = "unknown";
    if (std::ifstream in("/proc/loadavg"); in) std::getline(in, load);
    return load;
  };
  const std::string load = load_average();
  std::printf(
      "bench_sampler: %u hardware threads, LibTorch %s with %d intra-op threads; load "
      "average at start: %s\n\n",
      std::thread::hardware_concurrency(), TORCH_VERSION, torch::get_num_threads(), load.c_str());
  try {
    if (table != 2) throughput_table(throughput);
    if (table != 1) quality_table(quality);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_sampler: %s\n", e.what());
    return 1;
  }
  std::printf("wall time %.1f s; load average at the end: %s\n", seconds_since(t0),
              load_average().c_str());
  return 0;
}
