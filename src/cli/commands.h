// One function per subcommand: registers its options on the CLI11 app and
// sets `run` to the action when the subcommand is chosen.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace scorch {
struct PlotOptions;      // monitor/run_plot.h
struct ModelSourceArgs;  // jobs/model_source.h
}

namespace scorch::cli {

// scorch train --config C --workdir W [--json] [key.path=value ...]
void add_train_command(CLI::App& app, std::function<int()>& run);

// scorch sample --workdir W | --checkpoint F | --config C --num N --out DIR [...]
void add_sample_command(CLI::App& app, std::function<int()>& run);

// scorch likelihood --workdir W --data DIR [--json] [...]
void add_likelihood_command(CLI::App& app, std::function<int()>& run);
// scorch ood --workdir W --in DIR --ood DIR [--score loss|bpd] [--json]
void add_ood_command(CLI::App& app, std::function<int()>& run);

// scorch data convert|verify|inspect ...
void add_data_command(CLI::App& app, std::function<int()>& run);
// scorch data convert --from idx|cifar|folder|npy --input PATH --out DIR [...]
void add_data_convert_command(CLI::App& data, std::function<int()>& run);

// scorch stats --data DIR --out FILE [--extractor F] [--features]
void add_stats_command(CLI::App& app, std::function<int()>& run);
// scorch eval --workdir W | --samples DIR [--ref STATS] [--extractor F] [--json]
void add_eval_command(CLI::App& app, std::function<int()>& run);
// scorch phema --workdir W --std 0.05,0.1 --out DIR [--eval ...]: post-hoc EMA (EDM2)
void add_phema_command(CLI::App& app, std::function<int()>& run);
// scorch plot --workdir W | --log FILE [--out DIR] [--json]
void add_plot_command(CLI::App& app, std::function<int()>& run);
// scorch score-plot: score-field and sampling-trajectory PNGs of a 2-D model.
void add_score_plot_command(CLI::App& app, std::function<int()>& run);
// scorch config reference | show [--config C] [--workdir W] [key.path=value ...]
void add_config_command(CLI::App& app, std::function<int()>& run);
// scorch classifier --data DIR --out FILE [--test DIR] [--epochs N]
void add_classifier_command(CLI::App& app, std::function<int()>& run);

// --workdir, --checkpoint, --score-sde-checkpoint, --guided-diffusion-checkpoint,
// --config, --weights and the positional key.path=value overrides of a command
// that reads a model (jobs/model_source.h: load_model), filling `args`.
void add_model_source_options(CLI::App& cmd, ModelSourceArgs& args);

// --gnuplot, --width, --height of the PNG-drawing commands (plot, score-plot).
void add_png_options(CLI::App& cmd, PlotOptions& plot);

}  // namespace scorch::cli
