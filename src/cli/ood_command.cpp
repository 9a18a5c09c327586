// scorch ood: score an in-distribution and an out-of-distribution dataset
// under a model, per sample (denoising loss or bits/dim; higher = more
// unusual), and report how well the score separates them (AUROC).
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "jobs/model_source.h"
#include "core/atomic_file.h"
#include "core/log.h"
#include "jobs/ood.h"

namespace scorch::cli {
namespace {

struct OodArgs {
  ModelSourceArgs model;
  std::string in, ood, score = "loss", scores_out;
  int64_t num = 1000, batch = 256, draws = 10, seed = 0;
  bool json = false, no_progress = false;
};

// Per-sample scores of a dataset; `what` labels the progress bar.
torch::Tensor scores_of(const OodArgs& a, const LoadedModel& m, const std::string& dir,
                        const std::string& what) {
  OodScoreOptions o;
  o.bpd = a.score == "bpd";
  o.num = a.num;
  o.batch_size = a.batch;
  o.draws = a.draws;
  o.seed = static_cast<uint64_t>(a.seed);
  if (!a.no_progress) o.progress = what + " (" + a.score + ")";
  return ood_scores(m.config, m.sde, m.net, m.device, dir, o);
}

}  // namespace

void add_ood_command(CLI::App& app, std::function<int()>& run) {
  auto args = std::make_shared<OodArgs>();
  auto* cmd = app.add_subcommand(
      "ood", "Out-of-distribution detection: per-sample scores of two datasets and their AUROC");
  add_model_source_options(*cmd, args->model);
  cmd->add_option("--in", args->in, "in-distribution dataset (e.g. the test split)")->required();
  cmd->add_option("--ood", args->ood, "out-of-distribution dataset")->required();
  cmd->add_option("--score", args->score,
                  "loss (denoising loss averaged over --draws draws of t and noise) or bpd")
      ->check(CLI::IsMember({"loss", "bpd"}))
      ->capture_default_str();
  cmd->add_option("--num", args->num, "samples per dataset, from the start")->capture_default_str();
  cmd->add_option("--batch", args->batch, "samples per evaluation")->capture_default_str();
  cmd->add_option("--draws", args->draws, "loss: draws of (t, noise) per sample")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "seed of the draws")->capture_default_str();
  cmd->add_option("--scores", args->scores_out, "write per-sample scores as JSON to this file");
  cmd->add_flag("--json", args->json, "print the result as one JSON object on stdout");
  cmd->add_flag("--no-progress", args->no_progress, "no progress bar on stderr");
  cmd->callback([&run, args] {
    run = [args] {
      SCORCH_CHECK(args->num > 0 && args->batch > 0, "--num and --batch must be positive");
      LoadedModel m = load_model(args->model);
      const auto t0 = std::chrono::steady_clock::now();
      auto s_in = scores_of(*args, m, args->in, "in-distribution");
      auto s_ood = scores_of(*args, m, args->ood, "out-of-distribution");
      const double area = auroc(s_in, s_ood);
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      log_info("AUROC ", area, " (", args->score, " score; in-distribution mean ",
               s_in.mean().item<double>(), ", out-of-distribution mean ", s_ood.mean().item<double>(),
               "; ", secs, " s)");
      auto vec = [](const torch::Tensor& t) {
        auto d = t.to(torch::kDouble).contiguous();
        return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
      };
      if (!args->scores_out.empty()) {
        write_file_atomic(args->scores_out,
                          nlohmann::json{{"in", vec(s_in)}, {"ood", vec(s_ood)}}.dump() + "\n");
      }
      if (args->json)
        std::cout << nlohmann::json{{"auroc", area},
                                    {"score", args->score},
                                    {"in_mean", s_in.mean().item<double>()},
                                    {"ood_mean", s_ood.mean().item<double>()},
                                    {"num_in", s_in.numel()},
                                    {"num_ood", s_ood.numel()},
                                    {"seconds", secs}}
                         .dump()
                  << std::endl;
      return static_cast<int>(kExitOk);
    };
  });
}

}  // namespace scorch::cli
