// --workdir, --checkpoint, the importers' flags, --config, --weights and the
// overrides of the commands that read a model (see commands.h).
#include "cli/commands.h"
#include "jobs/model_source.h"

namespace scorch::cli {

void add_model_source_options(CLI::App& cmd, ModelSourceArgs& a) {
  cmd.add_option("--workdir", a.workdir, "run directory: its newest checkpoint and config");
  cmd.add_option("--checkpoint", a.checkpoint,
                 "a checkpoint file instead of --workdir (its saved config is used), or an "
                 "EDM2 Precond state dict saved from Python (with --config naming its preset)");
  cmd.add_option("--score-sde-checkpoint", a.score_sde_checkpoint,
                 "import a yang-song/score_sde_pytorch checkpoint.pth (architecture from --config)");
  cmd.add_option("--guided-diffusion-checkpoint", a.guided_diffusion_checkpoint,
                 "import an openai/guided-diffusion model .pt (architecture from an adm --config; "
                 "linear schedule: discrete VP)");
  cmd.add_option("--config", a.config,
                 "YAML config (default: the checkpoint's or the workdir's); needed for analytic");
  cmd.add_option("--weights", a.weights,
                 "ema (the first EMA rate), model (raw weights) or an EMA name such as 0.999")
      ->capture_default_str();
  cmd.add_option("overrides", a.overrides, "config overrides key.path=value");
}

}  // namespace scorch::cli
