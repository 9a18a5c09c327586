// .npz reference statistics (see reference_stats.h).
#include "eval/reference_stats.h"

#include "core/error.h"
#include "data/npz.h"

namespace scorch {

void save_reference_stats(const std::string& path, const ReferenceStats& stats) {
  std::map<std::string, torch::Tensor> arrays = {
      {"mu", stats.mu.to(torch::kDouble)},
      {"sigma", stats.sigma.to(torch::kDouble)},
      {"count", torch::tensor(stats.count, torch::kLong).reshape({})}};
  if (!stats.extractor.empty())
    arrays["extractor"] = torch::from_blob(const_cast<char*>(stats.extractor.data()),
                                           {static_cast<int64_t>(stats.extractor.size())},
                                           torch::kByte)
                              .clone();
  if (stats.features.defined()) arrays["features"] = stats.features.to(torch::kFloat);
  write_npz(path, arrays);
}

ReferenceStats load_reference_stats(const std::string& path) {
  const auto arrays = read_npz(path);
  for (const char* key : {"mu", "sigma"})
    SCORCH_CHECK(arrays.count(key), "reference statistics '", path, "' have no '", key,
                 "' array; expected an .npz with mu [d] and sigma [d, d] (scorch stats, "
                 "pytorch-fid or EDM)");
  ReferenceStats s;
  s.mu = arrays.at("mu").to(torch::kDouble).reshape({-1});
  s.sigma = arrays.at("sigma").to(torch::kDouble);
  const int64_t d = s.mu.numel();
  SCORCH_CHECK(s.sigma.dim() == 2 && s.sigma.size(0) == d && s.sigma.size(1) == d,
               "reference statistics '", path, "': sigma has shape ", s.sigma.sizes(),
               " but mu has ", d, " entries; sigma must be [", d, ", ", d, "]");
  if (arrays.count("count")) s.count = arrays.at("count").to(torch::kLong).item<int64_t>();
  if (arrays.count("extractor")) {
    const auto bytes = arrays.at("extractor").to(torch::kByte).contiguous();
    s.extractor.assign(static_cast<const char*>(bytes.data_ptr()),
                       static_cast<size_t>(bytes.numel()));
  }
  if (arrays.count("features")) {
    s.features = arrays.at("features").to(torch::kFloat);
    SCORCH_CHECK(s.features.dim() == 2 && s.features.size(1) == d, "reference statistics '",
                 path, "': features have shape ", s.features.sizes(), "; expected [N, ", d, "]");
  }
  return s;
}

}  // namespace scorch
