// PNG output through stb_image_write (Debian's libstb), image grids and
// 2-D scatter plots rasterised directly into a uint8 canvas.
#include "core/image.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

#include <cmath>
#include <cstdio>

#include "core/atomic_file.h"
#include "core/error.h"

namespace scorch {

void write_png(const std::string& path, const torch::Tensor& image) {
  TORCH_CHECK(image.dim() == 3 && image.scalar_type() == torch::kUInt8,
              "write_png expects [H, W, C] uint8, got ", image.sizes(), " ", image.scalar_type());
  const auto img = image.contiguous().cpu();
  const int h = static_cast<int>(img.size(0)), w = static_cast<int>(img.size(1)),
            c = static_cast<int>(img.size(2));
  write_file_atomic(path, [&](const std::string& tmp) {
    if (!stbi_write_png(tmp.c_str(), w, h, c, img.data_ptr<uint8_t>(), w * c))
      fail("cannot write PNG '" + path + "' (directory missing or not writable?)");
  });
}

torch::Tensor image_grid(const torch::Tensor& images, int64_t columns) {
  TORCH_CHECK(images.dim() == 4, "image_grid expects [N, C, H, W], got ", images.sizes());
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  if (columns <= 0) columns = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int64_t rows = (n + columns - 1) / columns, pad = 2;
  auto grid = torch::zeros({c, rows * (h + pad) + pad, columns * (w + pad) + pad});
  const auto x = images.detach().to(torch::kCPU, torch::kFloat).clamp(0, 1);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t r = k / columns, col = k % columns;
    grid.narrow(1, pad + r * (h + pad), h).narrow(2, pad + col * (w + pad), w).copy_(x[k]);
  }
  // Truncation to uint8 as score_sde does: clip(x * 255).
  return (grid * 255.0).to(torch::kUInt8).permute({1, 2, 0}).contiguous();
}

torch::Tensor scatter_plot(const torch::Tensor& points, const torch::Tensor& background,
                           const ScatterOptions& options) {
  TORCH_CHECK(points.dim() == 2 && points.size(1) == 2, "scatter_plot expects [N, 2], got ",
              points.sizes());
  const auto p = points.detach().to(torch::kCPU, torch::kDouble);
  const auto b = background.defined() ? background.detach().to(torch::kCPU, torch::kDouble)
                                      : torch::zeros({0, 2}, torch::kDouble);
  double extent = options.extent;
  if (extent <= 0) {
    auto all = torch::cat({p, b});
    auto finite = all.masked_select(torch::isfinite(all));
    extent = finite.numel() ? finite.abs().max().item<double>() * 1.05 : 1.0;
    if (!(extent > 0)) extent = 1.0;
  }
  const int64_t s = options.size;
  auto canvas = torch::full({s, s, 3}, 255, torch::kUInt8);
  auto px = canvas.accessor<uint8_t, 3>();
  const int radius = static_cast<int>(std::ceil(options.point_radius));
  auto draw = [&](const torch::Tensor& pts, uint8_t r, uint8_t g, uint8_t bl) {
    auto a = pts.accessor<double, 2>();
    for (int64_t i = 0; i < pts.size(0); ++i) {
      if (!std::isfinite(a[i][0]) || !std::isfinite(a[i][1])) continue;
      const double u = (a[i][0] / extent + 1) * 0.5 * (s - 1);
      const double v = (1 - (a[i][1] / extent + 1) * 0.5) * (s - 1);
      for (int dy = -radius; dy <= radius; ++dy)
        for (int dx = -radius; dx <= radius; ++dx) {
          if (dx * dx + dy * dy > options.point_radius * options.point_radius + 0.5) continue;
          const int64_t col = std::lround(u) + dx, row = std::lround(v) + dy;
          if (col < 0 || row < 0 || col >= s || row >= s) continue;
          px[row][col][0] = r, px[row][col][1] = g, px[row][col][2] = bl;
        }
    }
  };
  // Axes through the origin.
  canvas.select(0, s / 2).fill_(220);
  canvas.select(1, s / 2).fill_(220);
  draw(b, 170, 170, 170);
  draw(p, 31, 119, 180);
  return canvas;
}

}  // namespace scorch
