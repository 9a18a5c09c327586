// Import of NVlabs/edm2 models: a Precond state dict saved from Python,
// torch.save(net.state_dict(), path), e.g. the `ema` module of one of EDM2's
// released pickles (src/README.md gives the lines), into Scorch's
// EDM2Precond (nn/edm2.h), whose parameter and buffer names are EDM2's.
//
//   if (is_edm2_state_dict_file(path)) {
//     ScoreNet net = make_score_net(config);   // model.name=edm2, the model's preset
//     import_edm2_state_dict(path, dynamic_cast<EDM2PrecondImpl&>(*net), "--config 'C'");
//   }
#pragma once

#include <cstdint>
#include <string>

namespace scorch {

class EDM2PrecondImpl;

// Whether `path` is a torch.save file of a bare state dict with keys
// starting "unet." (EDM2's Precond) rather than a Scorch checkpoint. Reads
// only the file's pickle (data.pkl), not its tensors; false for a file that
// is not a torch.save zip archive (the checkpoint loader reports those).
bool is_edm2_state_dict_file(const std::string& path);

// Copies every tensor of the state dict at `path` into `net` by name (the
// parameters and MPFourier's freqs and phases buffers) and returns how many.
// Every key must name a tensor of `net` with the same shape and every
// tensor of `net` must be in the file, otherwise scorch::Error names the
// file, the first offending key with both shapes, and `expected` (where the
// architecture came from, e.g. "--config 'configs/edm2/img512-xs.yaml'")
// with the network it built; `net` is then unchanged.
int64_t import_edm2_state_dict(const std::string& path, EDM2PrecondImpl& net,
                               const std::string& expected);

}  // namespace scorch
