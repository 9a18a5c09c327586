// Power-function EMA formulas, snapshots and post-hoc reconstruction, after
// EDM2 (Karras et al. 2024, App. C: Eqs. 123, 126, 127, 151 and Algorithms 2
// and 3; NVlabs/edm2 training/phema.py and reconstruct_phema.py).
#include "train/phema.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "core/config.h"
#include "core/error.h"

namespace scorch {
namespace fs = std::filesystem;

double phema_exp_to_std(double exp) {
  return std::sqrt((exp + 1) / ((exp + 2) * (exp + 2)) / (exp + 3));
}

double phema_std_to_exp(double sigma) {
  TORCH_CHECK(sigma > 0 && sigma <= kPhemaStdMax, "phema_std_to_exp: sigma_rel ", sigma,
              " outside (0, sqrt(1/12)]");
  // f(g) = (g+2)^2 (g+3) - t (g+1) is the cubic of Eq. 126 with t = std^-2 >= 12;
  // f(0) = 12 - t <= 0 and f grows past its largest root, which lies in
  // [0, t] (f(t) > 0), where sigma_rel(g) falls monotonically: bisection to
  // the last bit is exact enough and needs no complex roots.
  const double t = 1.0 / (sigma * sigma);
  const auto f = [t](double g) { return (g + 2) * (g + 2) * (g + 3) - t * (g + 1); };
  double lo = 0, hi = t;
  if (f(lo) >= 0) return 0;
  for (int i = 0; i < 2000; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    (f(mid) < 0 ? lo : hi) = mid;
  }
  return std::fabs(f(lo)) <= std::fabs(f(hi)) ? lo : hi;
}

double phema_beta(double sigma, double t_next, double t_delta) {
  return std::pow(1 - t_delta / t_next, phema_std_to_exp(sigma) + 1);
}

double phema_correlation(double a_ofs, double a_std, double b_ofs, double b_std) {
  const double a_exp = phema_std_to_exp(a_std), b_exp = phema_std_to_exp(b_std);
  const double t_ratio = a_ofs / b_ofs;
  const double t_exp = a_ofs < b_ofs ? b_exp : -a_exp;
  const double t_max = std::max(a_ofs, b_ofs);
  return (a_exp + 1) * (b_exp + 1) * std::pow(t_ratio, t_exp) / ((a_exp + b_exp + 1) * t_max);
}

PhemaFit solve_phema_coefficients(const std::vector<PhemaProfile>& in, const PhemaProfile& out) {
  const auto n = static_cast<int64_t>(in.size());
  TORCH_CHECK(n > 0, "solve_phema_coefficients: no input profiles");
  auto A = torch::empty({n, n}, torch::kDouble);
  auto b = torch::empty({n, 1}, torch::kDouble);
  auto a = A.accessor<double, 2>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j)
      a[i][j] = phema_correlation(in[i].nimg, in[i].sigma, in[j].nimg, in[j].sigma);
    b[i][0] = phema_correlation(in[i].nimg, in[i].sigma, out.nimg, out.sigma);
  }
  torch::Tensor x;
  try {
    x = torch::linalg_solve(A, b);
  } catch (const c10::Error&) {
    x = torch::full({n, 1}, std::nan(""), torch::kDouble);
  }
  SCORCH_CHECK(torch::isfinite(x).all().item<bool>(),
               "post-hoc EMA: the stored profiles' correlation matrix is singular (", n,
               " profiles; two snapshots of the same std at the same time?)");
  x = x / x.sum();  // as phema.py: the weights of an average sum to 1
  PhemaFit fit;
  fit.coefficients.assign(x.data_ptr<double>(), x.data_ptr<double>() + n);
  // ||sum_i x_i p_i - q||^2 = x'Ax - 2 x'b + <q, q>, relative to ||q||.
  const double qq = phema_correlation(out.nimg, out.sigma, out.nimg, out.sigma);
  const double err = (x.t().mm(A).mm(x) - 2 * x.t().mm(b)).item<double>() + qq;
  fit.residual = std::sqrt(std::max(err, 0.0) / qq);
  return fit;
}

// --- snapshots ------------------------------------------------------------------

std::string phema_snapshot_name(int64_t nimg, double sigma) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "phema-%012lld-", static_cast<long long>(nimg));
  return buf + Ema::format_number(sigma) + ".pt";
}

std::string phema_output_name(double sigma) { return "phema-" + Ema::format_number(sigma) + ".pt"; }

void save_phema_snapshots(const std::string& dir, const Ema& ema, const torch::nn::Module& model,
                          int64_t step, int64_t nimg, const std::string& config_yaml,
                          Communicator& comm) {
  torch::NoGradGuard no_grad;
  // Whole shadows (CPU copies) on rank 0; with dist.shard_state=optimizer_ema
  // a collective.
  const auto shadows = ema.gather_state_dict(comm);
  if (comm.rank() != 0) return;
  std::map<std::string, torch::Tensor> raw;
  for (const auto& [name, t] : module_state(model)) raw[name] = t.detach().cpu();
  for (double sigma : ema.phema_std()) {
    const std::string ema_name = Ema::phema_name(sigma);
    CheckpointData data;
    data.model = raw;
    for (const auto& [name, t] : shadows.at(ema_name)) {
      const auto weights = t.detach().cpu();  // one tensor in both maps: stored once
      data.model[name] = weights;
      data.ema[ema_name][name] = weights;
    }
    data.step = step;
    data.images_seen = nimg;
    data.config_yaml = config_yaml;
    data.extra["phema_std"] = sigma;
    data.extra["phema_nimg"] = nimg;
    save_checkpoint((fs::path(dir) / phema_snapshot_name(nimg, sigma)).string(), data);
  }
}

std::vector<PhemaSnapshotFile> list_phema_snapshots(const std::string& dir) {
  std::vector<PhemaSnapshotFile> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    // phema-<12 digits>-<std>.pt
    if (!entry.is_regular_file(ec) || name.size() < 22 || name.rfind("phema-", 0) != 0 ||
        name.compare(name.size() - 3, 3, ".pt") != 0 || name[18] != '-')
      continue;
    const std::string digits = name.substr(6, 12), std_text = name.substr(19, name.size() - 22);
    if (!std::all_of(digits.begin(), digits.end(), ::isdigit) || std_text.empty()) continue;
    char* end = nullptr;
    const double sigma = std::strtod(std_text.c_str(), &end);
    if (*end != '\0') continue;
    out.push_back({entry.path().string(), std::stoll(digits), sigma});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.nimg != b.nimg ? a.nimg < b.nimg : a.sigma < b.sigma;
  });
  return out;
}

// --- reconstruction -----------------------------------------------------------

namespace {

std::string list_text(const std::vector<double>& values) {
  std::string s;
  for (double v : values) s += (s.empty() ? "" : ", ") + Ema::format_number(v);
  return s;
}

// The inputs reconstruct_phema uses: 0 < nimg <= the newest, stds filtered.
std::vector<PhemaSnapshotFile> usable_inputs(const std::vector<PhemaSnapshotFile>& inputs,
                                             const std::vector<double>& in_std) {
  std::vector<PhemaSnapshotFile> out;
  for (const auto& s : inputs) {
    if (s.nimg <= 0) continue;
    if (!in_std.empty() && std::find(in_std.begin(), in_std.end(), s.sigma) == in_std.end())
      continue;
    out.push_back(s);
  }
  SCORCH_CHECK(!out.empty(),
               "post-hoc EMA: no power-function EMA snapshot after the start of "
               "training",
               in_std.empty() ? "" : " with --in-std " + list_text(in_std), " (", inputs.size(),
               " file(s) in all); train with model.phema_std=[0.05, 0.1] "
               "and training.phema_snapshot_kimg=N for at least N thousand images");
  return out;
}

// Trainable-parameter weights of one snapshot file, float32, on the CPU.
std::map<std::string, torch::Tensor> profile_weights(const CheckpointData& c,
                                                     const PhemaSnapshotFile& s) {
  const std::string name = Ema::phema_name(s.sigma);
  const auto it = c.ema.find(name);
  SCORCH_CHECK(it != c.ema.end(), "power-function EMA snapshot '", s.path, "' has no EMA '", name,
               "'; it is not a snapshot written by `scorch train`");
  std::map<std::string, torch::Tensor> out;
  for (const auto& [key, t] : it->second) out[key] = t.to(torch::kFloat32);
  return out;
}

// The newest snapshot's checkpoint turned into one output: weights in `model`
// and every configured EMA, config with model.phema_std = [std].
CheckpointData output_checkpoint(const CheckpointData& newest, const std::string& newest_path,
                                 const std::map<std::string, torch::Tensor>& weights,
                                 const PhemaReconstruction& r) {
  CheckpointData out = newest;
  out.ema.clear();
  Config config = parse_config(newest.config_yaml, "the config saved in '" + newest_path + "'");
  config.model.phema_std = {r.sigma};
  out.config_yaml = to_yaml(config);
  for (const auto& [name, t] : weights) out.model[name] = t;
  for (const auto& ema_name : Ema::configured_names(config.model)) out.ema[ema_name] = weights;
  out.extra.clear();
  out.extra["phema_std"] = r.sigma;
  out.extra["phema_nimg"] = r.nimg;
  out.extra["phema_residual"] = r.fit.residual;
  out.extra["phema_snapshots"] = static_cast<int64_t>(r.inputs.size());
  return out;
}

}  // namespace

std::vector<PhemaReconstruction> reconstruct_phema(const std::vector<PhemaSnapshotFile>& inputs,
                                                   const std::vector<double>& stds,
                                                   const PhemaReconstructOptions& options) {
  for (double sigma : stds)
    SCORCH_CHECK(sigma > 0 && sigma <= kPhemaStdRequestMax, "--std ", sigma,
                 " is not a relative standard deviation a power-function EMA has: use values "
                 "in (0, 0.2886] (sqrt(1/12) = 0.28868 is a uniform average), e.g. 0.05,0.1");
  const auto in = usable_inputs(inputs, options.in_std);
  std::vector<PhemaProfile> profiles;
  for (const auto& s : in) profiles.push_back({static_cast<double>(s.nimg), s.sigma});
  std::vector<double> stored;
  for (const auto& s : in)
    if (std::find(stored.begin(), stored.end(), s.sigma) == stored.end()) stored.push_back(s.sigma);
  std::sort(stored.begin(), stored.end());

  std::vector<PhemaReconstruction> out;
  for (double sigma : stds) {
    PhemaReconstruction r;
    r.sigma = sigma;
    r.nimg = in.back().nimg;
    r.inputs = in;
    r.fit = solve_phema_coefficients(profiles, {static_cast<double>(r.nimg), sigma});
    SCORCH_CHECK(r.fit.residual <= options.max_residual, "--std ", Ema::format_number(sigma),
                 ": the stored profiles (", in.size(), " snapshots of sigma_rel ",
                 list_text(stored), " up to ", r.nimg,
                 " images) reconstruct it with a relative "
                 "error of ",
                 r.fit.residual, " (the limit, --max-error, is ", options.max_residual,
                 "); ask for a std nearer the stored ones, or train with "
                 "snapshots more often (training.phema_snapshot_kimg) or for longer");
    out.push_back(std::move(r));
  }
  // One pass over the files: out_j += c_ij * snapshot_i (float32, as EDM2).
  std::vector<std::map<std::string, torch::Tensor>> sums(out.size());
  CheckpointData newest;
  for (size_t i = 0; i < in.size(); ++i) {
    CheckpointData c = load_checkpoint(in[i].path);
    const auto weights = profile_weights(c, in[i]);
    for (size_t j = 0; j < out.size(); ++j) {
      const double coef = out[j].fit.coefficients[i];
      if (i == 0) {
        for (const auto& [name, t] : weights) sums[j][name] = t * coef;
        continue;
      }
      SCORCH_CHECK(weights.size() == sums[j].size(), "power-function EMA snapshot '", in[i].path,
                   "' has ", weights.size(), " parameters, '", in[0].path, "' has ", sums[j].size(),
                   "; the snapshots are of different models");
      for (const auto& [name, t] : weights) {
        const auto it = sums[j].find(name);
        SCORCH_CHECK(it != sums[j].end() && it->second.sizes() == t.sizes(),
                     "power-function EMA snapshot '", in[i].path, "': parameter '", name,
                     "' does not match '", in[0].path, "'; the snapshots are of different models");
        it->second.add_(t, coef);
      }
    }
    if (i + 1 == in.size()) newest = std::move(c);
  }
  for (size_t j = 0; j < out.size(); ++j)
    out[j].checkpoint = output_checkpoint(newest, in.back().path, sums[j], out[j]);
  return out;
}

}  // namespace scorch
