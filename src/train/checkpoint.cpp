// Checkpoint files: a dict pickled into PyTorch's zip format as torch.save
// writes it (so Python's torch.load reads it, read back here with
// torch::pickle_load), with the write-temporary / fsync / rename /
// fsync-directory protocol for atomicity.
#include "train/checkpoint.h"

#include <caffe2/serialize/inline_container.h>  // PyTorchStreamWriter (zip)
#include <fcntl.h>
#include <torch/csrc/jit/serialization/pickler.h>  // Pickler without type tags
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "core/atomic_file.h"
#include "core/error.h"

namespace scorch {
namespace fs = std::filesystem;
namespace {

const char* const kKnownKeys[] = {"format",          "format_version", "model", "ema",
                                  "ema_num_updates", "optimizer",      "step",  "images_seen",
                                  "data_cursor",     "config"};

bool is_known_key(const std::string& key) {
  return std::find(std::begin(kKnownKeys), std::end(kKnownKeys), key) != std::end(kKnownKeys);
}

// A CPU tensor that owns exactly its elements, so a view does not drag its
// whole storage into the file and Python gets the CPU location tag.
torch::Tensor to_saveable(const torch::Tensor& t) {
  torch::Tensor out = t.detach().to(torch::TensorOptions(torch::kCPU)).contiguous();
  const size_t bytes = static_cast<size_t>(out.numel()) * out.element_size();
  if (out.storage_offset() != 0 || out.storage().nbytes() != bytes) out = out.clone();
  return out;
}

c10::impl::GenericDict tensor_dict(const std::map<std::string, torch::Tensor>& tensors) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& item : tensors) dict.insert(item.first, to_saveable(item.second));
  return dict;
}

// Writes `value` to `fd` as torch.save does: a zip archive with the pickle
// in "archive/data.pkl" and one "archive/data/<i>" record per tensor
// storage. Unlike torch::pickle_save, dicts are not wrapped in
// torch.jit._pickle.restore_type_tag, which torch.load(weights_only=True)
// (the default from PyTorch 2.6) refuses. Returns "" or the error text.
std::string write_archive(int fd, const c10::IValue& value) {
  std::string error;
  auto write_fd = [&](const void* data, size_t size) -> size_t {
    const char* bytes = static_cast<const char*>(data);
    size_t left = size;
    while (left > 0 && error.empty()) {
      const ssize_t n = ::write(fd, bytes, left);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) error = std::strerror(errno);
      if (n > 0) {
        bytes += n;
        left -= static_cast<size_t>(n);
      }
    }
    return size;  // errors are reported through `error`, not the zip writer
  };
  std::vector<char> pickle;
  torch::jit::Pickler pickler(
      [&](const char* data, size_t size) { pickle.insert(pickle.end(), data, data + size); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  caffe2::serialize::PyTorchStreamWriter zip(write_fd);
  const auto& tensors = pickler.tensorData();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto data = torch::jit::getWriteableTensorData(tensors[i]);
    zip.writeRecord("data/" + std::to_string(i), data.data(), data.sizeInBytes());
  }
  zip.writeRecord("data.pkl", pickle.data(), pickle.size());
  zip.writeEndOfFile();
  return error;
}

// Field readers: `what` is the key path for messages.
const c10::IValue& require(const c10::impl::GenericDict& dict, const std::string& key,
                           const std::string& path) {
  auto it = dict.find(key);
  SCORCH_CHECK(it != dict.end(), "checkpoint ", path, ": key '", key,
               "' is missing; the file is not a complete Scorch checkpoint");
  return it->value();
}

int64_t as_int(const c10::IValue& v, const std::string& key, const std::string& path) {
  SCORCH_CHECK(v.isInt(), "checkpoint ", path, ": '", key, "' should be an int, got ", v.tagKind());
  return v.toInt();
}

std::map<std::string, torch::Tensor> as_tensor_map(const c10::IValue& v, const std::string& key,
                                                   const std::string& path) {
  SCORCH_CHECK(v.isGenericDict(), "checkpoint ", path, ": '", key,
               "' should be a dict of name -> tensor, got ", v.tagKind());
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : v.toGenericDict()) {
    SCORCH_CHECK(item.key().isString() && item.value().isTensor(), "checkpoint ", path, ": '", key,
                 "' should map names to tensors; entry of kind ", item.key().tagKind(), " -> ",
                 item.value().tagKind());
    out[item.key().toStringRef()] = item.value().toTensor();
  }
  return out;
}

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    if (auto step = checkpoint_step(entry.path().filename().string())) {
      out.emplace_back(*step, entry.path());
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

}  // namespace

std::string checkpoint_path(const std::string& checkpoint_dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "checkpoint_%08lld.pt", static_cast<long long>(step));
  return (fs::path(checkpoint_dir) / name).string();
}

std::optional<int64_t> checkpoint_step(const std::string& filename) {
  static const std::string kPrefix = "checkpoint_", kSuffix = ".pt";
  if (filename.size() < kPrefix.size() + 8 + kSuffix.size()) return std::nullopt;
  if (filename.compare(0, kPrefix.size(), kPrefix) != 0) return std::nullopt;
  if (filename.compare(filename.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
    return std::nullopt;
  }
  const std::string digits =
      filename.substr(kPrefix.size(), filename.size() - kPrefix.size() - kSuffix.size());
  if (digits.size() > 18 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoll(digits);
}

void save_checkpoint(const std::string& path, const CheckpointData& data) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("format", std::string(kCheckpointFormat));
  dict.insert("format_version", kCheckpointFormatVersion);
  dict.insert("model", tensor_dict(data.model));
  c10::impl::GenericDict ema(c10::StringType::get(),
                             c10::DictType::create(c10::StringType::get(), c10::TensorType::get()));
  for (const auto& item : data.ema) ema.insert(item.first, tensor_dict(item.second));
  dict.insert("ema", ema);
  dict.insert("ema_num_updates", data.ema_num_updates);
  dict.insert("optimizer", tensor_dict(data.optimizer));
  dict.insert("step", data.step);
  dict.insert("images_seen", data.images_seen);
  dict.insert("data_cursor", data.data_cursor);
  dict.insert("config", data.config_yaml);
  for (const auto& item : data.extra) {
    SCORCH_CHECK(!is_known_key(item.first), "checkpoint ", path, ": extra key '", item.first,
                 "' clashes with a standard key");
    dict.insert(item.first, item.second);
  }
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  SCORCH_CHECK(!ec, "cannot create checkpoint directory ", dir.string(), ": ", ec.message());
  write_file_atomic(path, [&](const std::string& tmp) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    SCORCH_CHECK(fd >= 0, "cannot create checkpoint ", tmp, ": ", std::strerror(errno));
    std::string error;
    try {
      error = write_archive(fd, dict);
    } catch (const std::exception& e) {  // a value the pickler cannot write
      error = e.what();
    }
    if (::close(fd) != 0 && error.empty()) error = detail::concat("close: ", std::strerror(errno));
    if (!error.empty()) fail(detail::concat("cannot write checkpoint ", tmp, ": ", error));
  });
}

CheckpointData load_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCORCH_CHECK(in.good(), "checkpoint ", path, ": cannot open the file (", std::strerror(errno),
               ")");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  SCORCH_CHECK(!in.bad(), "checkpoint ", path, ": read error");
  c10::IValue root;
  try {
    root = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    std::string why = e.what();
    why = why.substr(0, why.find('\n'));
    fail(detail::concat("checkpoint ", path, ": cannot be read (truncated or not a PyTorch ",
                        "zip archive; ", bytes.size(), " bytes): ", why));
  }
  SCORCH_CHECK(root.isGenericDict(), "checkpoint ", path, ": holds a ", root.tagKind(),
               ", not a dict; it is not a Scorch checkpoint");
  const c10::impl::GenericDict dict = root.toGenericDict();
  for (const auto& item : dict) {
    SCORCH_CHECK(item.key().isString(), "checkpoint ", path, ": top-level key of kind ",
                 item.key().tagKind(), "; keys must be strings");
  }
  const c10::IValue& format = require(dict, "format", path);
  SCORCH_CHECK(format.isString() && format.toStringRef() == kCheckpointFormat, "checkpoint ", path,
               ": format is ", format, ", expected '", kCheckpointFormat, "'");
  const int64_t version = as_int(require(dict, "format_version", path), "format_version", path);
  SCORCH_CHECK(version == kCheckpointFormatVersion, "checkpoint ", path, ": format_version ",
               version, " is not supported (this Scorch reads version ", kCheckpointFormatVersion,
               version > kCheckpointFormatVersion ? "; it was written by a newer Scorch)" : ")");

  CheckpointData data;
  data.model = as_tensor_map(require(dict, "model", path), "model", path);
  data.step = as_int(require(dict, "step", path), "step", path);
  for (const auto& item : dict) {
    const std::string& key = item.key().toStringRef();
    const c10::IValue& value = item.value();
    if (key == "ema") {
      SCORCH_CHECK(value.isGenericDict(), "checkpoint ", path,
                   ": 'ema' should be a dict of EMA name -> {name: tensor}");
      for (const auto& avg : value.toGenericDict()) {
        SCORCH_CHECK(avg.key().isString(), "checkpoint ", path, ": 'ema' keys must be strings");
        const std::string name = avg.key().toStringRef();
        data.ema[name] = as_tensor_map(avg.value(), "ema." + name, path);
      }
    } else if (key == "optimizer") {
      data.optimizer = as_tensor_map(value, key, path);
    } else if (key == "ema_num_updates") {
      data.ema_num_updates = as_int(value, key, path);
    } else if (key == "images_seen") {
      data.images_seen = as_int(value, key, path);
    } else if (key == "data_cursor") {
      data.data_cursor = as_int(value, key, path);
    } else if (key == "config") {
      SCORCH_CHECK(value.isString(), "checkpoint ", path, ": 'config' should be YAML text");
      data.config_yaml = value.toStringRef();
    } else if (!is_known_key(key)) {
      data.extra[key] = value;
    }
  }
  return data;
}

std::optional<std::string> find_latest_checkpoint(const std::string& checkpoint_dir,
                                                  std::vector<std::string>* warnings) {
  for (const auto& [step, path] : list_checkpoints(checkpoint_dir)) {
    std::string problem;
    try {
      const CheckpointData data = load_checkpoint(path.string());
      if (data.step == step) return path.string();
      problem = detail::concat("checkpoint ", path.string(), ": holds step ", data.step,
                               " but its name says ", step);
    } catch (const Error& e) {
      problem = e.what();
    }
    const std::string warning = problem + "; skipping it and trying an older checkpoint";
    if (warnings) {
      warnings->push_back(warning);
    } else {
      std::cerr << "scorch: warning: " << warning << std::endl;
    }
  }
  return std::nullopt;
}

std::vector<std::string> prune_checkpoints(const std::string& checkpoint_dir, int64_t keep_last,
                                           int64_t keep_every) {
  std::vector<std::string> removed;
  const auto checkpoints = list_checkpoints(checkpoint_dir);  // newest first
  for (size_t i = 0; i < checkpoints.size(); ++i) {
    const auto& [step, path] = checkpoints[i];
    const bool newest = keep_last <= 0 || static_cast<int64_t>(i) < keep_last;
    const bool milestone = keep_every > 0 && step % keep_every == 0;
    if (newest || milestone) continue;
    std::error_code ec;
    if (fs::remove(path, ec)) removed.push_back(path.string());
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(checkpoint_dir, ec)) {
    const std::string name = entry.path().filename().string();
    const std::string kTmp = ".tmp";
    if (name.size() > kTmp.size() &&
        name.compare(name.size() - kTmp.size(), kTmp.size(), kTmp) == 0 &&
        checkpoint_step(name.substr(0, name.size() - kTmp.size()))) {
      std::error_code rm;
      if (fs::remove(entry.path(), rm)) removed.push_back(entry.path().string());
    }
  }
  return removed;
}

std::map<std::string, torch::Tensor> module_state(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) out[item.key()] = item.value();
  for (const auto& item : module.named_buffers(/*recurse=*/true)) out[item.key()] = item.value();
  return out;
}

void check_module_state(const torch::nn::Module& module,
                        const std::map<std::string, torch::Tensor>& state,
                        const std::string& origin) {
  const auto expected = module_state(module);
  for (const auto& [name, tensor] : expected) {
    const auto it = state.find(name);
    SCORCH_CHECK(it != state.end(), origin, ": model tensor '", name,
                 "' is missing; was it written for a different model configuration?");
    SCORCH_CHECK(it->second.sizes() == tensor.sizes(), origin, ": model tensor '", name,
                 "' has shape ", it->second.sizes(), " but this model's is ", tensor.sizes());
  }
  for (const auto& item : state) {
    SCORCH_CHECK(expected.count(item.first), origin, ": tensor '", item.first,
                 "' is not part of this model; was it written for a different model "
                 "configuration?");
  }
}

void load_module_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state,
                       const std::string& origin) {
  check_module_state(module, state, origin);
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : module_state(module)) tensor.copy_(state.at(name));
}

}  // namespace scorch
