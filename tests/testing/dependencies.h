// Test dependencies a machine may lack (Debian's dataset-fashion-mnist,
// python3-h5py, python3-torch, ...) and one rule for a missing one: the test
// is skipped, but under CI=true it fails, naming the dependency and
// `bash launch/install_deps.sh`, which installs them all.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace scorch::testing {

// Where Debian's dataset-fashion-mnist puts the Fashion-MNIST IDX files.
inline const std::string kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// True when the environment variable CI is "true" (as CI services set it):
// then every test dependency must be installed.
inline bool ci_requires_test_dependencies() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// What a skipped or failed test reports about the missing `what`.
inline std::string missing_dependency_message(const std::string& what) {
  return "missing test dependency: " + what +
         "; install the test dependencies with `bash launch/install_deps.sh`" +
         (ci_requires_test_dependencies() ? " (CI=true: a missing dependency fails the test)"
                                          : " (skipped; under CI=true this fails)");
}

}  // namespace scorch::testing

// Unless `condition` holds, skips the current test, or under CI=true fails it;
// `what` names the missing dependency and its Debian package. Like GTEST_SKIP
// and FAIL it returns from the enclosing function, so it belongs in a TEST
// body or a fixture's SetUp (a failure there skips the test body).
#define SCORCH_REQUIRE_OR_SKIP(condition, what)                              \
  do {                                                                       \
    if (!(condition)) {                                                      \
      if (::scorch::testing::ci_requires_test_dependencies()) {              \
        GTEST_FAIL() << ::scorch::testing::missing_dependency_message(what); \
      } else {                                                               \
        GTEST_SKIP() << ::scorch::testing::missing_dependency_message(what); \
      }                                                                      \
    }                                                                        \
  } while (false)
