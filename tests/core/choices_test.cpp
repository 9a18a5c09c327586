// The config's string choices (core/choices.h) in JSON: written as their
// config names, read back from names, and from numbers as older files hold.
#include "core/choices.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace scorch {
namespace {

TEST(ChoicesJson, WrittenAsConfigNames) {
  EXPECT_EQ(nlohmann::json(SamplingMethod::kDpmSolverPp), "dpm_solver_pp");
  EXPECT_EQ(nlohmann::json(SdeKind::kVP), "vpsde");
  const nlohmann::json record{{"method", SamplingMethod::kPc}, {"dtype", PrecisionDtype::kBf16}};
  EXPECT_EQ(record.dump(), R"({"dtype":"bf16","method":"pc"})");
  // Every name of every value of an enum, e.g. OdeMethod's ten.
  for (size_t i = 0; i < choice_count<OdeMethod>(); ++i) {
    const auto m = static_cast<OdeMethod>(i);
    EXPECT_EQ(nlohmann::json(m).get<std::string>(), choice_name(m));
    EXPECT_EQ(nlohmann::json(m).get<OdeMethod>(), m);
  }
}

TEST(ChoicesJson, ReadFromNamesAndNumbers) {
  EXPECT_EQ(nlohmann::json("unipc").get<SamplingMethod>(), SamplingMethod::kUniPc);
  EXPECT_EQ(nlohmann::json(2).get<SdeKind>(), SdeKind::kSubVP);
  EXPECT_THROW(nlohmann::json("unipcc").get<SamplingMethod>(), Error);
  EXPECT_THROW(nlohmann::json(99).get<SamplingMethod>(), Error);
}

}  // namespace
}  // namespace scorch
