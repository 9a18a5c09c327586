// Bucketed, overlapped gradient all-reduce (see grad_sync.h).
#include "dist/grad_sync.h"

#include <functional>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

namespace scorch {
namespace {

// A post hook of a gradient accumulation node: calls `done` once autograd
// has accumulated the parameter's gradient into its .grad.
class AfterAccumulate : public torch::autograd::FunctionPostHook {
 public:
  explicit AfterAccumulate(std::function<void()> done) : done_(std::move(done)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    done_();
    return outputs;
  }

 private:
  std::function<void()> done_;
};

}  // namespace

GradSync::GradSync(const torch::OrderedDict<std::string, torch::Tensor>& params,
                   Communicator& comm, const GradSyncOptions& options)
    : comm_(comm) {
  TORCH_CHECK(options.bucket_mb > 0, "bucket size must be positive");
  const int64_t cap = static_cast<int64_t>(options.bucket_mb * 1024 * 1024);
  // Reverse registration order: the last layers' gradients arrive first.
  std::vector<std::pair<std::string, torch::Tensor>> trainable;
  for (const auto& item : params)
    if (item.value().requires_grad()) trainable.emplace_back(item.key(), item.value());
  std::reverse(trainable.begin(), trainable.end());
  int64_t bytes = 0;
  for (auto& [name, p] : trainable) {
    const int64_t size = p.numel() * static_cast<int64_t>(p.element_size());
    if (buckets_.empty() || (bytes + size > cap && !buckets_.back().slots.empty())) {
      buckets_.emplace_back();
      bytes = 0;
    }
    Slot s;
    s.name = name;
    s.param = p;
    s.bucket = static_cast<int64_t>(buckets_.size()) - 1;
    s.offset = 0;
    for (auto i : buckets_.back().slots) s.offset += slots_[i].param.numel();
    buckets_.back().slots.push_back(static_cast<int64_t>(slots_.size()));
    slots_.push_back(s);
    bytes += size;
  }
  for (auto& b : buckets_) {
    int64_t n = 0;
    for (auto i : b.slots) n += slots_[i].param.numel();
    b.buffer = torch::zeros({n}, slots_[b.slots.front()].param.options().requires_grad(false));
    // Each parameter's gradient is a view of its bucket, in the parameter's
    // layout (as DDP's gradient_as_bucket_view): finish() hands these views
    // out as .grad, with no copy per parameter.
    for (auto i : b.slots) {
      auto& s = slots_[i];
      s.grad_view =
          b.buffer.narrow(0, s.offset, s.param.numel()).as_strided(s.param.sizes(), s.param.strides());
    }
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < slots_.size(); ++i) {
    auto& s = slots_[i];
    s.param.mutable_grad() = s.grad_view;
    const auto slot = static_cast<int64_t>(i);
    s.param.register_hook([this, slot](torch::Tensor grad) {
      before_accumulate(slot);
      return grad;
    });
    // After accumulation, as DDP's reducer hooks it: a post hook on the
    // parameter's accumulation node, which the parameter holds weakly.
    auto accumulator = torch::autograd::impl::grad_accumulator(s.param);
    TORCH_CHECK(accumulator, "GradSync: parameter ", s.name, " has no gradient accumulator");
    accumulator->add_post_hook(std::make_unique<AfterAccumulate>([this, slot] { after_accumulate(slot); }));
    accumulators_.push_back(std::move(accumulator));
  }
  reset();
}

std::vector<std::string> GradSync::bucket_names(int64_t b) const {
  std::vector<std::string> out;
  for (auto i : buckets_.at(b).slots) out.push_back(slots_[i].name);
  return out;
}

void GradSync::reset() {
  for (auto& b : buckets_) {
    b.pending = static_cast<int64_t>(b.slots.size());
    b.work.reset();
  }
  for (auto& s : slots_) s.ready = false;
  next_launch_ = 0;
}

int64_t GradSync::bucket_bytes() const {
  int64_t bytes = 0;
  for (const auto& b : buckets_) bytes += b.buffer.numel() * static_cast<int64_t>(b.buffer.element_size());
  return bytes;
}

void GradSync::before_accumulate(int64_t i) {
  auto& s = slots_[i];
  torch::NoGradGuard no_grad;
  if (stale_) {  // the first gradient of a step: the buckets start from zero
    for (auto& b : buckets_) b.buffer.zero_();
    stale_ = false;
  }
  // Reset by someone (an optimizer's zero_grad): the view again, so that
  // autograd accumulates into the bucket rather than making a new tensor.
  if (!s.param.grad().is_same(s.grad_view)) {
    if (s.param.grad().defined()) s.grad_view.add_(s.param.grad());
    s.param.mutable_grad() = s.grad_view;
  }
}

void GradSync::after_accumulate(int64_t i) {
  auto& s = slots_[i];
  // Autograd accumulates out of place when it records a graph of the
  // backward (create_graph): the result goes back into the bucket.
  if (!s.param.grad().is_same(s.grad_view)) {
    torch::NoGradGuard no_grad;
    s.grad_view.copy_(s.param.grad());
    s.param.mutable_grad() = s.grad_view;
  }
  if (!enabled_) return;
  TORCH_CHECK(!s.ready, "parameter ", s.name, " got two gradients in one backward");
  auto& b = buckets_[s.bucket];
  s.ready = true;
  if (--b.pending == 0) launch_ready();
  // Buckets already started advance only inside MPI calls: give them one
  // between every two gradients, so they run while backward goes on.
  comm_.progress();
}

void GradSync::launch_ready() {
  // Start complete buckets strictly in index order.
  while (next_launch_ < static_cast<int64_t>(buckets_.size()) &&
         buckets_[next_launch_].pending == 0) {
    auto& b = buckets_[next_launch_];
    b.work = comm_.all_reduce_mean_async(b.buffer);
    launched_log_.push_back(next_launch_);
    ++next_launch_;
  }
}

void GradSync::finish() {
  DeviceTimer timer(buckets_.empty() ? torch::Device(torch::kCPU) : buckets_.front().buffer.device());
  torch::NoGradGuard no_grad;
  TORCH_CHECK(enabled_, "finish() with syncing disabled: use reduce_accumulated()");
  // No backward since the last finish(): nothing but zeros to reduce.
  if (stale_) {
    for (auto& b : buckets_) b.buffer.zero_();
    stale_ = false;
  }
  // Parameters without a gradient this step contribute what their views hold:
  // zeros, or what earlier micro-batches accumulated.
  for (auto& s : slots_)
    if (!s.ready) {
      if (!s.param.grad().is_same(s.grad_view)) {
        if (s.param.grad().defined()) s.grad_view.add_(s.param.grad());
        s.param.mutable_grad() = s.grad_view;
      }
      s.ready = true;
      --buckets_[s.bucket].pending;
    }
  launch_ready();
  for (auto& b : buckets_) b.work->wait();
  timer.stop();
  // CUDA: the timers of earlier steps whose work is done are read without a
  // sync (which also bounds the list on ranks that never ask); the rest wait
  // for wait_seconds(), never read here: no sync in a step.
  unread_waits_.push_back(timer);
  while (!unread_waits_.empty() && unread_waits_.front().done()) {
    wait_seconds_ += unread_waits_.front().seconds();
    unread_waits_.pop_front();
  }
  last_launch_order_ = launched_log_;
  launched_log_.clear();
  reset();
  stale_ = true;
}

double GradSync::wait_seconds() const {
  for (const auto& timer : unread_waits_) wait_seconds_ += timer.seconds();
  unread_waits_.clear();
  return wait_seconds_;
}

void GradSync::reduce_accumulated() {
  // .grad already holds the accumulated gradients, in the buckets.
  reset();
  const bool was = enabled_;
  enabled_ = true;
  finish();
  enabled_ = was;
}

}  // namespace scorch
