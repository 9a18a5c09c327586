// A conversion into the sharded format as the converter tests run it: the
// options for a quiet one, and the converted dataset read back with the plain
// HDF5 C API, independently of the writer's own code.
#pragma once

#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data_tools/convert.h"

namespace scorch::testing {

// Options for a quiet conversion.
inline data_tools::ConvertOptions convert_options(const std::string& from, const std::string& input,
                                                  const std::string& out) {
  data_tools::ConvertOptions o;
  o.from = from;
  o.input = input;
  o.out = out;
  o.progress = false;
  return o;
}

// Everything in a dataset directory, shards concatenated in manifest order.
struct DatasetContents {
  nlohmann::json manifest;
  std::vector<int64_t> sample_dims;  // dims of "images"/"vectors" without N
  std::vector<uint8_t> images;       // [N, H, W, C]
  std::vector<float> vectors;        // [N, D]
  std::vector<int64_t> labels;       // [N]; empty without labels
  std::vector<int64_t> shard_sizes;  // rows per shard file
  int64_t count = 0;
};

inline std::vector<hsize_t> dataset_dims(hid_t dset) {
  const hid_t space = H5Dget_space(dset);
  std::vector<hsize_t> dims(static_cast<size_t>(H5Sget_simple_extent_ndims(space)));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  H5Sclose(space);
  return dims;
}

// Appends the whole dataset `name` of `file` to `out` as `mem_type`.
template <typename T>
std::vector<hsize_t> read_all(hid_t file, const char* name, hid_t mem_type, std::vector<T>* out) {
  const hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
  EXPECT_GE(dset, 0) << "no dataset " << name;
  if (dset < 0) return {};
  const auto dims = dataset_dims(dset);
  size_t n = 1;
  for (auto d : dims) n *= d;
  const size_t old = out->size();
  out->resize(old + n);
  EXPECT_GE(H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->data() + old), 0);
  H5Dclose(dset);
  return dims;
}

inline DatasetContents read_dataset(const std::filesystem::path& dir) {
  DatasetContents d;
  std::ifstream in(dir / "manifest.json");
  EXPECT_TRUE(in.good()) << "no manifest in " << dir;
  if (!in.good()) return d;
  d.manifest = nlohmann::json::parse(in);
  for (const auto& shard : d.manifest["shards"]) {
    const auto path = (dir / shard["file"].get<std::string>()).string();
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT_GE(file, 0) << "cannot open " << path;
    if (file < 0) continue;
    std::vector<hsize_t> dims;
    if (H5Lexists(file, "images", H5P_DEFAULT) > 0)
      dims = read_all(file, "images", H5T_NATIVE_UINT8, &d.images);
    else
      dims = read_all(file, "vectors", H5T_NATIVE_FLOAT, &d.vectors);
    if (H5Lexists(file, "labels", H5P_DEFAULT) > 0) {
      const auto ldims = read_all(file, "labels", H5T_NATIVE_INT64, &d.labels);
      EXPECT_EQ(ldims.at(0), dims.at(0)) << path;
    }
    H5Fclose(file);
    d.sample_dims.assign(dims.begin() + 1, dims.end());
    d.shard_sizes.push_back(static_cast<int64_t>(dims.at(0)));
    d.count += static_cast<int64_t>(dims.at(0));
  }
  return d;
}

}  // namespace scorch::testing
