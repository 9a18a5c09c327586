// Feature extractors for FID, IS, KID and precision/recall. The convention is
// that of NVIDIA's TorchScript Inception detector (StyleGAN2-ADA's
// `inception-2015-12-05.pt`, also used by clean-fid), so published numbers are
// comparable: input uint8 NCHW in [0, 255] at any size (the detector resizes
// to 299 itself, TF1-style bilinear), called as
//   forward(img, return_features=True)                 -> [N, 2048] pool3 features
//   forward(img, return_features=False, no_output_bias=True)
//                                                      -> [N, 1008] class probabilities
// Any TorchScript file whose forward takes these keyword arguments (or a
// subset of them: arguments the schema does not name are not passed) works.
// Grayscale images are repeated to three channels (R = G = B) before a
// three-channel extractor, as every reference tool does for MNIST-like data.
//
//   auto extractor = load_feature_extractor("inception-2015-12-05.pt", device);
//   torch::Tensor f = extractor->features(images_uint8);        // [N, d] float64
//   torch::Tensor p = extractor->class_probabilities(images_uint8);  // [N, C] float64
#pragma once

#include <torch/script.h>
#include <torch/torch.h>

#include <memory>
#include <string>

namespace scorch {

class FeatureExtractor {
 public:
  virtual ~FeatureExtractor() = default;
  // images: uint8 [N, C, H, W]. Returns float64 [N, d] on the CPU.
  virtual torch::Tensor features(const torch::Tensor& images) = 0;
  // images: uint8 [N, C, H, W]. Returns float64 [N, classes] on the CPU,
  // rows summing to 1 (softmax of the logits without output bias).
  virtual torch::Tensor class_probabilities(const torch::Tensor& images) = 0;
  // What produced the features: file name and SHA-256, recorded in
  // statistics files so that statistics of different extractors are never
  // compared.
  virtual std::string identity() const = 0;
};

// The extractor in `path` on `device`: a Scorch classifier checkpoint
// (eval/classifier.h) or else a TorchScript file (the convention above). Throws
// scorch::Error naming the file if it is missing, not TorchScript, or its
// forward does not take a tensor.
std::unique_ptr<FeatureExtractor> load_feature_extractor(const std::string& path,
                                                         const torch::Device& device);

}  // namespace scorch
