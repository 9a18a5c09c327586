// scorch: the command-line entry point. Parses the command, runs it, and maps
// errors to the exit codes README.md pins ("Exit codes": 0 done, 2 bad input, 75 preempted,
// 1 anything else). No other code turns errors into exit codes.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/signals.h"
#include "dist/mpi.h"

int main(int argc, char** argv) {
  // First of all: a preemption signal during start-up must not end a rank by
  // its default action (see core/signals.h); `scorch train` takes it over.
  scorch::hold_signals();
  CLI::App app{"Scorch: score-based generative models (score SDEs, NCSN, DDPM) on LibTorch"};
  app.set_version_flag("--version", std::string("scorch ") + SCORCH_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Run `scorch <command> --help` for a command's options.\n"
      "Exit codes: 0 done, 2 bad usage/config/input, 75 preempted (run again to resume), "
      "1 other.");
  std::function<int()> run;
  scorch::cli::add_train_command(app, run);
  scorch::cli::add_sample_command(app, run);
  scorch::cli::add_likelihood_command(app, run);
  scorch::cli::add_ood_command(app, run);
  scorch::cli::add_data_command(app, run);
  scorch::cli::add_stats_command(app, run);
  scorch::cli::add_eval_command(app, run);
  scorch::cli::add_phema_command(app, run);
  scorch::cli::add_plot_command(app, run);
  scorch::cli::add_score_plot_command(app, run);
  scorch::cli::add_classifier_command(app, run);
  scorch::cli::add_config_command(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? scorch::kExitOk : scorch::kExitBadInput;
  }
  if (!app.got_subcommand("train")) scorch::release_signals();
  try {
    return run();
  } catch (const scorch::Error& e) {
    std::cerr << "scorch: error: " << e.what() << "\n";
    return scorch::kExitBadInput;
  } catch (const scorch::Preempted& e) {
    std::cerr << "scorch: " << e.what() << "\n";
    return scorch::kExitPreempted;
  } catch (const scorch::RunFailure& e) {
    std::cerr << "scorch: error: " << e.what() << "\n";
    return scorch::kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "scorch: internal error: " << e.what() << "\n";
    scorch::abort_job_if_distributed(scorch::kExitFailure);  // peers may wait in a collective
    return scorch::kExitFailure;
  }
}
