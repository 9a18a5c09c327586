// scorch likelihood: bits/dim of a dataset under a model through the
// probability-flow ODE (likelihood/likelihood.h): images are uniformly
// dequantized and scaled as in training, with score_sde's offsets; vector
// data gives continuous bits/dim (no offset).
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "jobs/model_source.h"
#include "core/compat.h"
#include "core/log.h"
#include "jobs/dataset_likelihood.h"

namespace scorch::cli {

void add_likelihood_command(CLI::App& app, std::function<int()>& run) {
  struct Args {
    ModelSourceArgs model;
    std::string data, divergence = "rademacher";
    int64_t num = 0, batch = 256, seed = 0, repeats = 1;
    double rtol = 1e-5, atol = 1e-5, eps = 1e-5;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "likelihood", "Bits/dim of a dataset via the probability-flow ODE (score_sde's likelihood)");
  add_model_source_options(*cmd, args->model);
  cmd->add_option("--data", args->data, "dataset directory (scorch data convert)")->required();
  cmd->add_option("--num", args->num, "samples to evaluate, from the start (0 = all)");
  cmd->add_option("--batch", args->batch, "samples per ODE solve")->capture_default_str();
  cmd->add_option("--repeats", args->repeats,
                  "passes over the data with fresh dequantization and probes (score_sde: 5)")
      ->capture_default_str();
  cmd->add_option("--divergence", args->divergence, "rademacher | gaussian | exact")
      ->capture_default_str();
  cmd->add_option("--rtol", args->rtol, "ODE relative tolerance")->capture_default_str();
  cmd->add_option("--atol", args->atol, "ODE absolute tolerance")->capture_default_str();
  cmd->add_option("--eps", args->eps, "start time of the flow")->capture_default_str();
  cmd->add_option("--seed", args->seed, "seed of dequantization and probes")->capture_default_str();
  cmd->add_flag("--json", args->json, "print the result as one JSON object on stdout");
  cmd->callback([&run, args] {
    run = [args] {
      LoadedModel m = load_model(args->model);
      const auto& c = m.config;
      DatasetLikelihoodOptions o;
      o.likelihood.ode.rtol = args->rtol;
      o.likelihood.ode.atol = args->atol;
      o.likelihood.eps = args->eps;
      o.likelihood.divergence = divergence_from_name(args->divergence);
      o.likelihood.generator = compat::cpu_generator(static_cast<uint64_t>(args->seed));
      o.num = args->num;
      o.batch_size = args->batch;
      o.repeats = args->repeats;
      o.model_description = m.description;
      const auto r = dataset_likelihood(c, m.sde, m.net, m.device, args->data, o);
      const double mean = r.bpd.mean().item<double>();
      const double se =
          r.bpd.numel() > 1 ? r.bpd.std().item<double>() / std::sqrt(r.bpd.numel()) : 0.0;
      const double nfe_per_solve = static_cast<double>(r.nfe) / r.solves;
      log_info("bits/dim ", mean, " +- ", se, " over ", r.bpd.numel(), " evaluations (",
               nfe_per_solve, " NFE per solve, ", r.seconds, " s)");
      if (args->json)
        std::cout << nlohmann::json{{"bpd", mean},
                                    {"bpd_stderr", se},
                                    {"num_samples", r.num},
                                    {"repeats", args->repeats},
                                    {"nfe_per_solve", nfe_per_solve},
                                    {"divergence", divergence_name(o.likelihood.divergence)},
                                    {"offset", r.offset},
                                    {"seconds", r.seconds},
                                    {"model", m.description}}
                         .dump()
                  << std::endl;
      return static_cast<int>(kExitOk);
    };
  });
}

}  // namespace scorch::cli
