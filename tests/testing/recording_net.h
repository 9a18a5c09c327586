// A test network: returns 2 x + 1 and remembers the conditioning it was fed,
// so tests can check what score functions and losses pass to a network.
#pragma once

#include "nn/score_net.h"

namespace scorch::testing {

class RecordingNet : public ScoreNetImpl {
 public:
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& time_cond,
                        const torch::Tensor& class_labels) override {
    last_time_cond = time_cond;
    last_labels = class_labels;
    return 2.0 * x + 1.0;
  }
  torch::Tensor last_time_cond, last_labels;
};

}  // namespace scorch::testing
