// Reading a 0-dim tensor's value on the host. On the CPU that is a memory
// read; on a GPU it waits for every queued kernel (a device sync), which the
// training step avoids outside its logging intervals (src/train/run.h).
#pragma once

#include <torch/torch.h>

namespace scorch {

// The value of the one-element tensor `t` as a double.
inline double read_scalar(const torch::Tensor& t) {
  if (t.device().is_cpu()) {  // no dispatch, no sync: the bytes are here
    const auto d = t.scalar_type() == torch::kDouble ? t.contiguous() : t.to(torch::kDouble);
    return *d.data_ptr<double>();
  }
  return t.item<double>();
}

}  // namespace scorch
