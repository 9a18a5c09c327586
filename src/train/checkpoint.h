// Full training-state checkpoints (src/README.md "Workdir layout"/"Checkpoints"):
// one dict per file in torch.save's zip format, written atomically, readable
// by Python's torch.load (also with weights_only=True) and by
// torch::pickle_load; plus retention and "newest complete checkpoint" lookup.
//
//   CheckpointData data;  data.step = step;  data.model = module_state(*model); ...
//   save_checkpoint(checkpoint_path(workdir + "/checkpoints", step), data);
//   prune_checkpoints(workdir + "/checkpoints", cfg.training.keep_checkpoints,
//                     cfg.training.keep_every);
//   if (auto path = find_latest_checkpoint(workdir + "/checkpoints")) {
//     CheckpointData resumed = load_checkpoint(*path);
//     load_module_state(*model, resumed.model, *path);
//   }
//
// The file is a zip archive (PyTorch's format) holding one dict:
//   format "scorch-checkpoint", format_version 1, model {name: tensor},
//   ema {ema name: {name: tensor}}, ema_num_updates, optimizer {key: tensor},
//   step, images_seen, data_cursor (ints), config (YAML text), and any extra
//   top-level keys (loss scaler, RNG state, ...). Tensors are saved on the CPU.
// Functions here are safe to call from one thread at a time per directory;
// only rank 0 writes (src/README.md "Workdir layout").
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace scorch {

constexpr const char* kCheckpointFormat = "scorch-checkpoint";
constexpr int64_t kCheckpointFormatVersion = 1;

// Everything a resumed run needs, as plain maps the pieces fill in.
struct CheckpointData {
  std::map<std::string, torch::Tensor> model;  // module_state(): parameters and buffers
  // Ema::gather_state_dict(), and its Ema::num_updates().
  std::map<std::string, std::map<std::string, torch::Tensor>> ema;
  int64_t ema_num_updates = 0;
  std::map<std::string, torch::Tensor> optimizer;  // Optimizer::gather_state_dict()
  int64_t step = 0;                                                 // training steps done
  int64_t images_seen = 0;                                          // global images consumed
  int64_t data_cursor = 0;  // global samples consumed by the loader
  std::string config_yaml;  // to_yaml(config) of the run
  // Further top-level keys: ints, doubles, strings, tensors and string-keyed
  // dicts of these (typed int/double/tensor lists pickle through
  // torch.jit._pickle helpers that weights_only=True refuses). Names must not
  // clash with the keys above.
  std::map<std::string, c10::IValue> extra;
};

// "<dir>/checkpoint_<step, 8 digits>.pt".
std::string checkpoint_path(const std::string& checkpoint_dir, int64_t step);

// Step from a checkpoint file name ("checkpoint_00001234.pt" -> 1234), or
// nullopt for any other name (including "*.pt.tmp").
std::optional<int64_t> checkpoint_step(const std::string& filename);

// Writes `data` to `path` atomically: "<path>.tmp" in the same directory
// (created if needed), fsync, rename over `path`, fsync of the directory. A
// crash leaves either the old file or the new one, never a partial `path`.
// Throws scorch::Error naming the file on I/O failure or a clash in `extra`.
void save_checkpoint(const std::string& path, const CheckpointData& data);

// Reads and validates one checkpoint: zip/pickle structure, format name and
// version, and the types of the known keys (format, format_version, model
// and step are required; the rest default). Throws scorch::Error naming the
// file and the problem (missing, truncated, not a checkpoint, newer version).
CheckpointData load_checkpoint(const std::string& path);

// The newest checkpoint in `checkpoint_dir` that loads and validates, by the
// step in its name; *.tmp files are ignored. A newer file that fails (e.g.
// truncated) is skipped with a warning, appended to `warnings` if given,
// else printed to stderr. nullopt if the directory holds none.
std::optional<std::string> find_latest_checkpoint(const std::string& checkpoint_dir,
                                                  std::vector<std::string>* warnings = nullptr);

// Retention: keeps the newest `keep_last` checkpoints (<= 0: all) and every
// checkpoint whose step is a multiple of `keep_every` (0: none), deletes the
// rest and any stale "checkpoint_*.pt.tmp". Returns the deleted paths.
// REQUIRES: no save_checkpoint into the directory runs concurrently.
std::vector<std::string> prune_checkpoints(const std::string& checkpoint_dir, int64_t keep_last,
                                           int64_t keep_every);

// The module's parameters and buffers by name (tensors shared, not copied).
std::map<std::string, torch::Tensor> module_state(const torch::nn::Module& module);

// Throws scorch::Error naming `origin` unless `state` has exactly the
// module's parameters and buffers with their shapes.
void check_module_state(const torch::nn::Module& module,
                        const std::map<std::string, torch::Tensor>& state,
                        const std::string& origin);

// check_module_state, then copies `state` into the module (to each tensor's
// device and dtype).
void load_module_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state,
                       const std::string& origin);

}  // namespace scorch
