// The built-in Fashion-MNIST classifier extractor (see classifier.h): the
// network, its training loop (Adam, cross-entropy, a fresh random order each
// epoch) and loading it from a Scorch checkpoint as a FeatureExtractor.
#include "eval/classifier.h"

#include <caffe2/serialize/inline_container.h>

#include <chrono>
#include <filesystem>

#include "core/compat.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/checksum.h"
#include "data/sharded_dataset.h"
#include "nn/torch_load.h"

namespace scorch {
namespace {

constexpr int64_t kSide = 28;
constexpr uint64_t kOrderStream = 0xC1A5;

// Images and labels of samples `index` (int64 [n]) of `data`.
std::pair<torch::Tensor, torch::Tensor> read_batch(const ShardedDataset& data,
                                                   const torch::Tensor& index) {
  const int64_t n = index.size(0);
  const auto& shape = data.manifest().sample_shape;
  auto images = torch::empty({n, shape[0], shape[1], shape[2]}, torch::kByte);
  auto labels = torch::empty({n}, torch::kLong);
  auto idx = index.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    data.read(idx[i], images[i].data_ptr());
    labels[i] = data.label(idx[i]);
  }
  return {images.permute({0, 3, 1, 2}).contiguous(), labels};
}

void check_labelled_images(const ShardedDataset& data) {
  const auto& m = data.manifest();
  SCORCH_CHECK(m.kind == SampleKind::kImages, "dataset '", data.dir(),
               "' holds vectors; the classifier trains on images");
  SCORCH_CHECK(m.has_labels && m.num_classes >= 2, "dataset '", data.dir(),
               "' has no class labels; the classifier needs a labelled dataset such as "
               "Fashion-MNIST (scorch data convert --format idx ...)");
  SCORCH_CHECK(m.sample_shape[2] == 1 || m.sample_shape[2] == 3, "dataset '", data.dir(),
               "' has ", m.sample_shape[2], " channels; the classifier takes 1 or 3");
}

class ClassifierExtractor : public FeatureExtractor {
 public:
  ClassifierExtractor(const std::string& path, const torch::Device& device) : device_(device) {
    const auto root = load_torch_file(path);
    SCORCH_CHECK(root.isGenericDict(), "eval.feature_extractor '", path,
                 "' is not a Scorch classifier checkpoint");
    const auto dict = root.toGenericDict();
    auto get = [&](const char* key) {
      SCORCH_CHECK(dict.contains(key), "classifier checkpoint '", path, "' has no '", key, "'");
      return dict.at(key);
    };
    const auto arch = get("classifier").toStringRef();
    SCORCH_CHECK(arch == kClassifierArchitecture, "classifier checkpoint '", path,
                 "' holds architecture '", arch, "'; this build knows '",
                 kClassifierArchitecture, "'");
    const int64_t classes = get("classes").toInt();
    model_ = ImageClassifier(classes);
    std::map<std::string, torch::Tensor> weights;
    for (const auto& item : get("model").toGenericDict())
      weights[item.key().toStringRef()] = item.value().toTensor();
    torch::NoGradGuard no_grad;
    for (auto& p : model_->named_parameters()) {
      const auto it = weights.find(p.key());
      SCORCH_CHECK(it != weights.end() && it->second.sizes() == p.value().sizes(),
                   "classifier checkpoint '", path, "': parameter '", p.key(),
                   "' is missing or has the wrong shape");
      p.value().copy_(it->second);
    }
    model_->to(device_);
    model_->eval();
    identity_ = "classifier " + std::filesystem::path(path).filename().string() +
                " sha256:" + sha256_file(path);
  }

  torch::Tensor features(const torch::Tensor& images) override {
    torch::NoGradGuard no_grad;
    return model_->features(classifier_input(images).to(device_)).to(torch::kCPU, torch::kDouble);
  }
  torch::Tensor class_probabilities(const torch::Tensor& images) override {
    torch::NoGradGuard no_grad;
    return torch::softmax(model_->forward(classifier_input(images).to(device_)), 1)
        .to(torch::kCPU, torch::kDouble);
  }
  std::string identity() const override { return identity_; }

 private:
  torch::Device device_;
  ImageClassifier model_{nullptr};
  std::string identity_;
};

}  // namespace

ImageClassifierImpl::ImageClassifierImpl(int64_t num_classes) {
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3).padding(1)));
  conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3).padding(1)));
  fc1 = register_module("fc1", torch::nn::Linear(64 * 7 * 7, 128));
  fc2 = register_module("fc2", torch::nn::Linear(128, num_classes));
}

torch::Tensor ImageClassifierImpl::features(const torch::Tensor& x) {
  auto h = torch::max_pool2d(torch::relu(conv1(x)), 2);
  h = torch::max_pool2d(torch::relu(conv2(h)), 2);
  return torch::relu(fc1(h.flatten(1)));
}

torch::Tensor ImageClassifierImpl::forward(const torch::Tensor& x) { return fc2(features(x)); }

torch::Tensor classifier_input(const torch::Tensor& images) {
  SCORCH_CHECK(images.dim() == 4 && images.scalar_type() == torch::kByte,
               "the classifier takes uint8 [N, C, H, W] images, got ", images.sizes(), " ",
               images.scalar_type());
  const int64_t c = images.size(1);
  SCORCH_CHECK(c == 1 || c == 3, "the classifier takes 1- or 3-channel images, got ", c,
               " channels");
  auto x = images.to(torch::kFloat);
  if (c == 3) {  // ITU-R BT.601 luminance
    const auto w = torch::tensor({0.299f, 0.587f, 0.114f}, x.options()).view({1, 3, 1, 1});
    x = (x * w).sum(1, /*keepdim=*/true);
  }
  if (x.size(2) != kSide || x.size(3) != kSide)
    x = torch::nn::functional::interpolate(
        x, torch::nn::functional::InterpolateFuncOptions()
               .size(std::vector<int64_t>{kSide, kSide})
               .mode(torch::kBilinear)
               .align_corners(false));
  return x / 127.5 - 1.0;
}

ImageClassifier train_classifier(const ShardedDataset& train, const ShardedDataset* test,
                                 const ClassifierTrainOptions& o, nlohmann::json* report) {
  check_labelled_images(train);
  if (test) check_labelled_images(*test);
  SCORCH_CHECK(o.epochs >= 1 && o.batch_size >= 1 && o.lr > 0,
               "classifier training needs epochs >= 1, batch >= 1 and lr > 0");
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t n = o.limit > 0 ? std::min(o.limit, train.size()) : train.size();
  const int64_t classes = train.manifest().num_classes;
  torch::manual_seed(derive_seed(o.seed, kOrderStream, 0));
  ImageClassifier model(classes);
  model->train();
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(o.lr));
  const int64_t steps_per_epoch = (n + o.batch_size - 1) / o.batch_size;
  ProgressBar bar("classifier", o.progress ? o.epochs * steps_per_epoch : 0);
  int64_t correct = 0, seen = 0;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    auto gen = compat::cpu_generator(derive_seed(o.seed, kOrderStream, epoch + 1));
    const auto order = at::randperm(n, gen, torch::kLong);
    correct = seen = 0;  // the last epoch's training accuracy
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const int64_t first = s * o.batch_size, b = std::min(o.batch_size, n - first);
      auto [images, labels] = read_batch(train, order.narrow(0, first, b));
      const auto logits = model->forward(classifier_input(images));
      const auto loss = torch::nn::functional::cross_entropy(logits, labels);
      adam.zero_grad();
      loss.backward();
      adam.step();
      correct += (logits.argmax(1) == labels).sum().item<int64_t>();
      seen += b;
      if (o.progress) bar.add(1);
    }
    log_info("classifier epoch ", epoch + 1, "/", o.epochs, ": training accuracy ",
             static_cast<double>(correct) / seen);
  }
  if (o.progress) bar.finish();
  model->eval();
  if (report) {
    (*report)["train_accuracy"] = static_cast<double>(correct) / std::max<int64_t>(seen, 1);
    (*report)["test_accuracy"] =
        test ? nlohmann::json(classifier_accuracy(model, *test)) : nlohmann::json(nullptr);
    (*report)["classes"] = classes;
    (*report)["samples"] = n;
    (*report)["epochs"] = o.epochs;
    (*report)["seconds"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return model;
}

double classifier_accuracy(ImageClassifier& model, const ShardedDataset& data, int64_t limit) {
  check_labelled_images(data);
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const int64_t n = limit > 0 ? std::min(limit, data.size()) : data.size();
  int64_t correct = 0;
  for (int64_t first = 0; first < n; first += 500) {
    const int64_t b = std::min<int64_t>(500, n - first);
    auto [images, labels] = read_batch(data, torch::arange(first, first + b, torch::kLong));
    correct += (model->forward(classifier_input(images)).argmax(1) == labels).sum().item<int64_t>();
  }
  model->train(was_training);
  return static_cast<double>(correct) / std::max<int64_t>(n, 1);
}

bool is_classifier_checkpoint(const std::string& path) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (reader.hasRecord("constants.pkl")) return false;  // TorchScript
    const auto root = load_torch_file(path);
    return root.isGenericDict() && root.toGenericDict().contains("classifier");
  } catch (const std::exception&) {
    return false;
  }
}

std::unique_ptr<FeatureExtractor> load_classifier_extractor(const std::string& path,
                                                            const torch::Device& device) {
  return std::make_unique<ClassifierExtractor>(path, device);
}

}  // namespace scorch
