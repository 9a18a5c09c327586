// launch/gpu_check.sh's link probe: one call into each library Scorch links
// besides LibTorch, run as one MPI rank. Prints one line per library and
// "probe: ok" at the end; any failure exits non-zero.
#include <hdf5.h>
#include <mpi.h>
#include <openssl/evp.h>
#include <zip.h>
#include <zlib.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <prometheus/registry.h>
#include <yaml-cpp/yaml.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = -1, size = 0, sum = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int one = 1;
  MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  std::printf("mpi: rank %d of %d, all-reduce %d\n", rank, size, sum);

  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  std::printf("hdf5: %u.%u.%u\n", major, minor, release);
  std::printf("yaml-cpp: %d\n", YAML::Load("{a: 2}")["a"].as<int>());
  std::printf("nlohmann-json: %s\n", nlohmann::json::parse(R"({"a": 2})").dump().c_str());
  prometheus::Registry registry;
  std::printf("prometheus-cpp: %zu families\n", registry.Collect().size());
  CLI::App app{"probe"};
  std::printf("CLI11: %s\n", app.get_description().c_str());
  std::printf("zlib: %s, libzip: %s\n", zlibVersion(), zip_libzip_version());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest("abc", 3, digest, &length, EVP_sha256(), nullptr);
  std::printf("libcrypto: sha256(abc) starts %02x%02x (want ba78)\n", digest[0], digest[1]);
  int png_bytes = 0;
  const unsigned char pixel[3] = {1, 2, 3};
  unsigned char* png = stbi_write_png_to_mem(pixel, 3, 1, 1, 3, &png_bytes);
  std::printf("stb: %d-byte PNG\n", png_bytes);
  STBIW_FREE(png);
  testing::InitGoogleTest(&argc, argv);
  std::printf("gtest: %d tests\n", testing::UnitTest::GetInstance()->total_test_count());

  MPI_Finalize();
  const bool ok = sum == size && length == 32 && digest[0] == 0xba && digest[1] == 0x78;
  std::printf("probe: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
