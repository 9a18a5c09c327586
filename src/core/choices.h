// The string choices of the config (training.sde, sampling.method, ...) as
// enums: parsed once when the config is read (core/config.cpp), so the code
// switches on enums and never compares strings. Each enum's names are one
// table, indexed by the enumerator's value; the config reference, error
// messages, `std::ostream << choice` and JSON (every --json output, log.jsonl)
// print them: a choice is never written as its number.
//
//   SdeKind k = parse_choice<SdeKind>("vpsde", "training.sde");  // throws scorch::Error
//   choice_name(k) == std::string("vpsde");   log_info("sde ", k);  // "sde vpsde"
//   nlohmann::json{{"sde", k}}.dump() == R"({"sde":"vpsde"})"
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

namespace scorch {

// data.dataset
enum class DatasetName : int {
  kSwissRoll, kTwoMoons, kEightGaussians, kCheckerboard, kSyntheticImages, kHdf5
};
// model.name
enum class ModelName : int {
  kMlp, kDdpm, kNcsnpp, kAdm, kNcsn, kNcsnv2_64, kNcsnv2_128, kNcsnv2_256, kAnalytic, kEdm2
};
enum class EmbeddingType : int { kPositional, kFourier };              // model.embedding_type
enum class ResBlockType : int { kBigGAN, kDDPM };                      // model.resblock_type
enum class ProgressiveOutput : int { kNone, kOutputSkip, kResidual };  // model.progressive
enum class ProgressiveInput : int { kNone, kInputSkip, kResidual };    // model.progressive_input
enum class CombineMethod : int { kSum, kCat };                         // model.progressive_combine
enum class Activation : int { kSwish, kReLU, kLeakyReLU, kELU };       // model.nonlinearity
enum class Normalization : int { kGroupNorm, kInstanceNormPlusPlus };  // model.normalization
enum class PatchSampling : int { kTiles, kFull };                      // model.patch_sampling
enum class Checkpointing : int { kNone, kBlocks, kAttention };        // model.checkpointing
enum class SdeKind : int { kVE, kVP, kSubVP };                         // training.sde
// training.loss
enum class LossName : int {
  kAuto, kDsm, kSmld, kDdpm, kSsm, kSsmVr, kEsm, kEdm, kEdmVp, kEdmVe, kEdm2
};
enum class Precond : int { kNone, kVP, kVE, kEDM };                    // model.precond
enum class SsmProjection : int { kRademacher, kGaussian };             // training.ssm_projection
enum class TimestepSamplerName : int { kUniform, kLossSecondMoment };  // training.timestep_sampler
enum class OptimizerName : int { kAdam, kAdamW };                      // optim.optimizer
enum class LrSchedule : int { kConstant, kInverseSqrt };              // optim.schedule
// sampling.method
enum class SamplingMethod : int { kPc, kOde, kEdm, kDdim, kDpmSolverPp, kUniPc };
enum class SdeVariant : int { kNone, kSde };                           // sampling.sde_variant
enum class StepSchedule : int { kKarras, kLogSnr, kTime };             // sampling.step_schedule
// sampling.predictor, sampling.corrector
enum class Predictor : int { kNone, kEulerMaruyama, kReverseDiffusion, kAncestral };
enum class Corrector : int { kNone, kLangevin, kAnnealedLangevin };
// sampling.ode_method: fixed steps, then adaptive (embedded pairs)
enum class OdeMethod : int {
  kEuler, kMidpoint, kHeun, kRk4, kExplicitAdams, kImplicitAdams,
  kHeunEuler, kBogackiShampine, kDopri5, kDopri8
};
enum class DeviceName : int { kAuto, kCpu, kCuda };                    // dist.device
enum class BackendName : int { kAuto, kMpi, kGloo, kNccl };           // dist.backend
enum class ShardState : int { kNone, kOptimizer, kOptimizerEma };     // dist.shard_state
enum class PrecisionDtype : int { kFp32, kBf16, kFp16 };               // precision.dtype
// A switch whose default depends on other keys (training.zero_nonfinite_grads).
enum class AutoSwitch : int { kAuto, kTrue, kFalse };

// The names of each enum's values, in enumerator order.
template <typename E>
struct ChoiceNames;

#define SCORCH_CHOICE_NAMES(E, ...)                               \
  template <>                                                     \
  struct ChoiceNames<E> {                                         \
    static constexpr const char* kNames[] = {__VA_ARGS__};        \
  }
SCORCH_CHOICE_NAMES(DatasetName, "swiss_roll", "two_moons", "eight_gaussians", "checkerboard",
                    "synthetic_images", "hdf5");
SCORCH_CHOICE_NAMES(ModelName, "mlp", "ddpm", "ncsnpp", "adm", "ncsn", "ncsnv2_64", "ncsnv2_128",
                    "ncsnv2_256", "analytic", "edm2");
SCORCH_CHOICE_NAMES(EmbeddingType, "positional", "fourier");
SCORCH_CHOICE_NAMES(ResBlockType, "biggan", "ddpm");
SCORCH_CHOICE_NAMES(ProgressiveOutput, "none", "output_skip", "residual");
SCORCH_CHOICE_NAMES(ProgressiveInput, "none", "input_skip", "residual");
SCORCH_CHOICE_NAMES(CombineMethod, "sum", "cat");
SCORCH_CHOICE_NAMES(Activation, "swish", "relu", "lrelu", "elu");
SCORCH_CHOICE_NAMES(Normalization, "GroupNorm", "InstanceNorm++");
SCORCH_CHOICE_NAMES(PatchSampling, "tiles", "full");
SCORCH_CHOICE_NAMES(Checkpointing, "none", "blocks", "attention");
SCORCH_CHOICE_NAMES(SdeKind, "vesde", "vpsde", "subvpsde");
SCORCH_CHOICE_NAMES(LossName, "auto", "dsm", "smld", "ddpm", "ssm", "ssm_vr", "esm", "edm", "edm_vp",
                    "edm_ve", "edm2");
SCORCH_CHOICE_NAMES(Precond, "none", "vp", "ve", "edm");
SCORCH_CHOICE_NAMES(SsmProjection, "rademacher", "gaussian");
SCORCH_CHOICE_NAMES(TimestepSamplerName, "uniform", "loss_second_moment");
SCORCH_CHOICE_NAMES(OptimizerName, "Adam", "AdamW");
SCORCH_CHOICE_NAMES(LrSchedule, "constant", "inverse_sqrt");
SCORCH_CHOICE_NAMES(SamplingMethod, "pc", "ode", "edm", "ddim", "dpm_solver_pp", "unipc");
SCORCH_CHOICE_NAMES(SdeVariant, "none", "sde");
SCORCH_CHOICE_NAMES(StepSchedule, "karras", "log_snr", "time");
SCORCH_CHOICE_NAMES(Predictor, "none", "euler_maruyama", "reverse_diffusion",
                    "ancestral_sampling");
SCORCH_CHOICE_NAMES(Corrector, "none", "langevin", "ald");
SCORCH_CHOICE_NAMES(OdeMethod, "euler", "midpoint", "heun", "rk4", "explicit_adams",
                    "implicit_adams", "heun_euler", "bosh3", "dopri5", "dopri8");
SCORCH_CHOICE_NAMES(DeviceName, "auto", "cpu", "cuda");
SCORCH_CHOICE_NAMES(BackendName, "auto", "mpi", "gloo", "nccl");
SCORCH_CHOICE_NAMES(ShardState, "none", "optimizer", "optimizer_ema");
SCORCH_CHOICE_NAMES(PrecisionDtype, "fp32", "bf16", "fp16");
SCORCH_CHOICE_NAMES(AutoSwitch, "auto", "true", "false");
#undef SCORCH_CHOICE_NAMES

template <typename E>
using IfChoice = std::enable_if_t<sizeof(ChoiceNames<E>::kNames) != 0, int>;

template <typename E, IfChoice<E> = 0>
constexpr size_t choice_count() {
  return sizeof(ChoiceNames<E>::kNames) / sizeof(ChoiceNames<E>::kNames[0]);
}

template <typename E, IfChoice<E> = 0>
const char* choice_name(E value) {
  return ChoiceNames<E>::kNames[static_cast<size_t>(value)];
}

template <typename E, IfChoice<E> = 0>
std::vector<std::string> choice_names() {
  return {std::begin(ChoiceNames<E>::kNames), std::end(ChoiceNames<E>::kNames)};
}

// The value named `name`; throws scorch::Error naming `key`, the allowed
// names and the closest one.
[[noreturn]] void unknown_choice(const std::string& key, const std::string& name,
                                 const std::vector<std::string>& allowed);
template <typename E, IfChoice<E> = 0>
E parse_choice(const std::string& name, const std::string& key) {
  for (size_t i = 0; i < choice_count<E>(); ++i)
    if (name == ChoiceNames<E>::kNames[i]) return static_cast<E>(i);
  unknown_choice(key, name, choice_names<E>());
}

template <typename E, IfChoice<E> = 0>
std::ostream& operator<<(std::ostream& out, E value) {
  return out << choice_name(value);
}

}  // namespace scorch

// nlohmann::json writes a choice as its config string (nlohmann's default
// would write the enumerator's number) and reads the string back; a number,
// as older files may hold, is read as the enumerator's value.
template <typename E>
struct nlohmann::adl_serializer<E, std::enable_if_t<(sizeof(scorch::ChoiceNames<E>::kNames) > 0)>> {
  template <typename Json>
  static void to_json(Json& j, E value) {
    j = scorch::choice_name(value);
  }
  template <typename Json>
  static void from_json(const Json& j, E& value) {
    if (j.is_number_integer()) {
      const auto i = j.template get<int64_t>();
      if (i >= 0 && static_cast<size_t>(i) < scorch::choice_count<E>()) {
        value = static_cast<E>(i);
        return;
      }
    }
    value = scorch::parse_choice<E>(j.is_string() ? j.template get<std::string>() : j.dump(),
                                    "a JSON value");
  }
};
