// Image output: PNG writing (stb_image_write), image grids, and scatter
// plots of 2-D point sets for the toy models.
#pragma once

#include <torch/torch.h>

#include <string>

namespace scorch {

// Writes an image tensor [H, W, C] uint8 (C = 1, 3 or 4) as PNG, atomically
// (temporary file + rename). Throws scorch::Error if the file can't be written.
void write_png(const std::string& path, const torch::Tensor& image_hwc_uint8);

// Tiles images [N, C, H, W] with values in [0, 1] into one [H', W', C] uint8
// grid with `columns` columns (0: ceil(sqrt(N))) and a 2-pixel border.
torch::Tensor image_grid(const torch::Tensor& images_nchw, int64_t columns = 0);

struct ScatterOptions {
  int64_t size = 512;         // square image, pixels
  double extent = 0;          // axes cover [-extent, extent]^2; 0: fit the points
  double point_radius = 1.0;  // pixels
};

// Scatter plot of points [N, 2] (float) as [size, size, 3] uint8. `background`
// points [M, 2] (may be undefined) are drawn first in grey, `points` in blue.
torch::Tensor scatter_plot(const torch::Tensor& points, const torch::Tensor& background = {},
                           const ScatterOptions& options = {});

}  // namespace scorch
