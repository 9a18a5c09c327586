// Constant tables on a device, made once: an SDE's discrete schedule, the
// samplers' views of it, a network's FIR kernel. Moving such a table to a GPU
// at every call costs a host-to-device copy each time (from pageable memory,
// one that waits for the host); on_device keeps one copy per (table, device).
// The cache holds the source tensor, so its address is never reused by
// another while its copy is kept. Tables must not change after their first
// use. Thread-safe.
//
//   const auto betas = on_device(discrete_betas_, t.device());  // once per GPU
#pragma once

#include <torch/torch.h>

namespace scorch {

// `table` itself on the CPU (or when it already lies on `device`), else its
// copy on `device`, made on the first call.
torch::Tensor on_device(const torch::Tensor& table, const torch::Device& device);

}  // namespace scorch
