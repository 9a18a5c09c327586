// Activation checkpointing as a custom autograd function (see checkpoint.h),
// after torch.utils.checkpoint's reentrant variant (CheckpointFunction), with
// the CUDA generator of the inputs' device kept as well as the CPU one and the
// autocast state of forward restored for the recompute.
#include "nn/checkpoint.h"

#include <ATen/Context.h>

#include <mutex>
#include <utility>

#include "core/compat.h"

namespace scorch {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

torch::Tensor generator_state(at::Generator gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(at::Generator gen, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// The randomness and autocast state one run of a block sees.
struct RunState {
  torch::Tensor cpu_rng;           // the default CPU generator's state
  torch::Device cuda_device{torch::kCPU};
  torch::Tensor cuda_rng;          // the CUDA device's default generator (CUDA inputs only)
  compat::AutocastState autocast_cpu, autocast_cuda;

  // The current state; the CUDA generator of `device` when it is a CUDA device.
  static RunState capture(const torch::Device& device) {
    RunState s;
    s.cpu_rng = generator_state(at::globalContext().defaultGenerator(torch::kCPU));
    if (device.is_cuda()) {
      s.cuda_device = device;
      s.cuda_rng = generator_state(at::globalContext().defaultGenerator(device));
    }
    s.autocast_cpu = compat::get_autocast(torch::kCPU);
    s.autocast_cuda = compat::get_autocast(torch::kCUDA);
    return s;
  }

  void apply() const {
    set_generator_state(at::globalContext().defaultGenerator(torch::kCPU), cpu_rng);
    if (cuda_rng.defined())
      set_generator_state(at::globalContext().defaultGenerator(cuda_device), cuda_rng);
    compat::set_autocast(torch::kCPU, autocast_cpu);
    compat::set_autocast(torch::kCUDA, autocast_cuda);
  }
};

// Turns the autocast weight cache off for a scope: a cast made in the
// no-grad forward has no graph, and one made in the recompute holds the
// recompute's graph; neither may be found by the other run.
class AutocastCacheOff {
 public:
  AutocastCacheOff() : was_(compat::autocast_cache_enabled()) {
    compat::set_autocast_cache_enabled(false);
  }
  ~AutocastCacheOff() { compat::set_autocast_cache_enabled(was_); }
  AutocastCacheOff(const AutocastCacheOff&) = delete;
  AutocastCacheOff& operator=(const AutocastCacheOff&) = delete;

 private:
  bool was_;
};

// Runs with forward's state, then puts back the state it found (the
// generators go on where backward's caller left them).
class ForwardStateScope {
 public:
  explicit ForwardStateScope(const RunState& forward)
      : found_(RunState::capture(forward.cuda_device)) {
    forward.apply();
  }
  ~ForwardStateScope() { found_.apply(); }
  ForwardStateScope(const ForwardStateScope&) = delete;
  ForwardStateScope& operator=(const ForwardStateScope&) = delete;

 private:
  RunState found_;
};

// What backward needs besides the saved inputs.
struct BlockRecord : torch::CustomClassHolder {
  BlockFn fn;
  RunState forward_state;
};

torch::Device first_device(const std::vector<torch::Tensor>& inputs) {
  for (const auto& t : inputs)
    if (t.defined()) return t.device();
  return torch::kCPU;
}

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static torch::Tensor forward(AutogradContext* ctx, c10::intrusive_ptr<BlockRecord> record,
                               torch::TensorList inputs) {
    const auto in = inputs.vec();
    record->forward_state = RunState::capture(first_device(in));
    ctx->save_for_backward(in);
    ctx->saved_data["block"] = c10::IValue::make_capsule(record);
    torch::NoGradGuard no_grad;
    AutocastCacheOff cache_off;
    return record->fn(in);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    TORCH_CHECK(!torch::GradMode::is_enabled(),
                "a checkpointed block (model.checkpointing) cannot be differentiated twice "
                "(backward with create_graph)");
    const auto record = c10::static_intrusive_pointer_cast<BlockRecord>(
        ctx->saved_data["block"].toCapsule());
    std::vector<torch::Tensor> inputs;
    for (const auto& saved : ctx->get_saved_variables()) {
      auto leaf = saved.detach();
      if (saved.requires_grad()) leaf.requires_grad_(true);
      inputs.push_back(std::move(leaf));
    }
    torch::Tensor output;
    {
      ForwardStateScope scope(record->forward_state);
      AutocastCacheOff cache_off;
      torch::AutoGradMode grad_on(true);
      output = record->fn(inputs);
    }
    // Nested backward: the block's parameters accumulate their gradients
    // (and run their hooks) as in a plain backward; the inputs' gradients
    // are collected from their leaves below.
    if (output.requires_grad() && grad_outputs.at(0).defined())
      torch::autograd::backward({output}, {grad_outputs[0]});
    variable_list grads = {torch::Tensor()};  // the record is not differentiable
    for (const auto& leaf : inputs)
      grads.push_back(leaf.requires_grad() ? leaf.grad() : torch::Tensor());
    return grads;
  }
};

}  // namespace

torch::Tensor run_block(bool checkpointed, BlockFn fn, const std::vector<torch::Tensor>& inputs) {
  bool any_requires_grad = false;
  for (const auto& t : inputs) any_requires_grad |= t.defined() && t.requires_grad();
  // Without an input that requires grad the function would record nothing,
  // and the block's parameters would get no gradient: run it plainly.
  if (!checkpointed || !torch::GradMode::is_enabled() || !any_requires_grad) return fn(inputs);
  // Autograd functions take defined tensors only: pass those, and put the
  // undefined ones back in their places for fn.
  std::vector<bool> present;
  std::vector<torch::Tensor> defined;
  for (const auto& t : inputs) {
    present.push_back(t.defined());
    if (t.defined()) defined.push_back(t);
  }
  auto record = c10::make_intrusive<BlockRecord>();
  record->fn = [fn = std::move(fn), present](const std::vector<torch::Tensor>& args) {
    std::vector<torch::Tensor> all;
    size_t next = 0;
    for (bool p : present) all.push_back(p ? args.at(next++) : torch::Tensor());
    return fn(all);
  };
  return CheckpointFunction::apply(std::move(record), torch::TensorList(defined));
}

}  // namespace scorch
