// The tiny EDM2 network of the fixtures in tests/nn/data/edm2/ (made with
// NVlabs/edm2's networks_edm2.py: model_channels 8, channel_mult [1, 2], one
// block per level, attention at 8 px, 8 channels per head, 3 labels, 16x16
// RGB, no dropout), for the tests that build it without a config.
#pragma once

#include "nn/edm2.h"  // defines: EDM2Options

namespace scorch::testing {

inline EDM2Options tiny_edm2_options() {
  return EDM2Options()
      .image_size(16)
      .img_channels(3)
      .label_dim(3)
      .model_channels(8)
      .channel_mult({1, 2})
      .channel_mult_noise(2)
      .num_blocks(1)
      .attn_resolutions({8})
      .channels_per_head(8)
      .dropout(0.0);
}

}  // namespace scorch::testing
