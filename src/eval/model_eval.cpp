// Evaluating a score model (see model_eval.h).
#include "eval/model_eval.h"

#include "core/config.h"
#include "nn/score_model.h"
#include "sampling/conditional.h"
#include "sampling/sampler.h"

namespace scorch {

nlohmann::json evaluate_model(const Config& c, std::shared_ptr<const Sde> sde, ScoreNet net,
                              const torch::Device& device, FeatureExtractor& extractor,
                              const ReferenceStats& reference, Communicator& comm,
                              const SampleEvalOptions& options) {
  torch::NoGradGuard no_grad;
  SampleEvalOptions o = options;
  o.features = reference.features.defined();
  o.probabilities = true;
  const auto shape = sample_shape(c);
  const auto tensor_options = torch::TensorOptions().device(device);
  const auto result = sample_and_extract(
      c,
      [&](int64_t first, int64_t n) {
        std::vector<int64_t> s{n};
        s.insert(s.end(), shape.begin(), shape.end());
        torch::Tensor labels;
        if (c.data.num_classes > 0)
          labels = (torch::arange(first, first + n, torch::kLong) % c.data.num_classes).to(device);
        const auto score = make_score_fn(net, sde, c.training.continuous, labels);
        return sample_from_config(c, *sde, score, s, tensor_options, {},
                                  make_precond_denoiser(net, labels));
      },
      extractor, comm, o);
  // The mean sampling time per rank: the job draws `num` samples in about that time.
  auto t = torch::tensor({result.sampling_seconds}, torch::kDouble);
  comm.all_reduce_sum(t);
  if (comm.rank() != 0) return nlohmann::json::object();
  auto report = score_against(result.features, reference, extractor.identity(),
                              ScoreOptions{c.eval.is_splits});
  const double sampling_mean = t.item<double>() / comm.size();
  report["nfe"] = result.nfe;
  report["seed"] = o.seed;
  report["world_size"] = comm.size();
  report["seconds"] = result.seconds;
  report["sampling_seconds"] = sampling_mean;
  report["samples_per_s"] = o.num / std::max(sampling_mean, 1e-9);
  report["extraction_seconds"] = result.features.seconds - result.sampling_seconds;
  return report;
}

}  // namespace scorch
