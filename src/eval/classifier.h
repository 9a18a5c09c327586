// The built-in feature extractor for 28x28 grayscale data: a small CNN that
// Scorch trains on Fashion-MNIST (`scorch classifier`), for FID/IS/KID where
// no Inception weights are at hand. Its numbers are comparable only with
// numbers from the same classifier file (the extractor identity carries the
// file's SHA-256), never with published Inception numbers.
//
// Architecture ("fmnist-cnn-1"): conv 3x3 1->32, ReLU, max-pool 2; conv 3x3
// 32->64, ReLU, max-pool 2; linear 3136->128, ReLU (the 128-d features);
// linear 128->10 (the logits; class probabilities = softmax).
// Input convention: uint8 NCHW in [0, 255]; three channels become luminance
// (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B); other sizes are resized to
// 28x28 bilinearly (half-pixel centres, no antialiasing); x / 127.5 - 1.
//
// The file is a Scorch checkpoint (train/checkpoint.h format, torch.load
// readable) whose "model" holds the weights and whose extra key "classifier"
// names the architecture, plus "test_accuracy" and "classes".
//
//   auto model = train_classifier(train_set, &test_set, options, &report);
//   (the CLI saves it with save_checkpoint)
//   auto extractor = load_feature_extractor("fmnist_classifier.pt", device);
#pragma once

#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "eval/features.h"

namespace scorch {

class ShardedDataset;

constexpr const char* kClassifierArchitecture = "fmnist-cnn-1";

struct ImageClassifierImpl : torch::nn::Module {
  explicit ImageClassifierImpl(int64_t num_classes = 10);
  // x: float32 [N, 1, 28, 28] in [-1, 1]. Returns the 128-d features [N, 128].
  torch::Tensor features(const torch::Tensor& x);
  // Logits [N, classes].
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(ImageClassifier);

// uint8 [N, C, H, W] (C = 1 or 3) -> the network's float32 [N, 1, 28, 28]
// input, by the convention above. Throws scorch::Error for other channels.
torch::Tensor classifier_input(const torch::Tensor& images);

struct ClassifierTrainOptions {
  int64_t epochs = 3;
  int64_t batch_size = 128;
  double lr = 1e-3;       // Adam
  int64_t limit = 0;      // train on the first `limit` samples; 0 = all
  uint64_t seed = 42;     // initialisation and per-epoch order
  bool progress = true;
};

// Trains on `train` (uint8 images with labels); measures accuracy on `test`
// when given. `report` receives train_accuracy, test_accuracy (or null),
// classes, samples, epochs, seconds. Throws scorch::Error naming the dataset
// if it has no labels or is not 28x28-compatible images.
ImageClassifier train_classifier(const ShardedDataset& train, const ShardedDataset* test,
                                 const ClassifierTrainOptions& options, nlohmann::json* report);

// Fraction of `data` classified correctly (first `limit` samples; 0 = all).
double classifier_accuracy(ImageClassifier& model, const ShardedDataset& data, int64_t limit = 0);

// True when `path` is a Scorch checkpoint that holds a classifier (it has the
// "classifier" key), false for anything else (e.g. a TorchScript file).
bool is_classifier_checkpoint(const std::string& path);

// The classifier at `path` as a feature extractor (features: 128-d; class
// probabilities: softmax of the logits). Throws scorch::Error naming the file
// for an unknown architecture or mismatched weights.
std::unique_ptr<FeatureExtractor> load_classifier_extractor(const std::string& path,
                                                            const torch::Device& device);

}  // namespace scorch
