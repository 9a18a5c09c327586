// Bucketed, overlapped gradient all-reduce (see grad_sync.h).
#include "dist/grad_sync.h"

namespace scorch {

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
  for (size_t i = 0; i < slots_.size(); ++i) {
    auto& p = slots_[i].param;
    p.register_hook([this, i](torch::Tensor grad) {
      on_grad(static_cast<int64_t>(i), grad);
      return grad;
    });
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

void GradSync::on_grad(int64_t i, const torch::Tensor& grad) {
  auto& s = slots_[i];
  // .grad still the bucket view of the last finish(): stale (the bucket is
  // about to be rewritten), so autograd starts a fresh gradient instead of
  // adding into the view.
  if (s.param.grad().defined() && s.param.grad().is_same(s.grad_view)) s.param.mutable_grad().reset();
  if (!enabled_) return;
  TORCH_CHECK(!s.ready, "parameter ", s.name, " got two gradients in one backward");
  auto& b = buckets_[s.bucket];
  // The hook runs before autograd accumulates into .grad, so earlier
  // micro-batches' gradients (accumulated with syncing off) are added here.
  torch::NoGradGuard no_grad;
  s.grad_view.copy_(grad);
  if (add_accumulated_ && s.param.grad().defined()) s.grad_view.add_(s.param.grad());
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
    // Divided before the sum (as DDP does), so a sum of large gradients
    // cannot overflow where their mean would not.
    if (comm_.size() > 1) b.buffer.mul_(1.0 / comm_.size());
    b.work = comm_.all_reduce_sum_async(b.buffer);
    launched_log_.push_back(next_launch_);
    ++next_launch_;
  }
}

void GradSync::finish() {
  DeviceTimer timer(buckets_.empty() ? torch::Device(torch::kCPU) : buckets_.front().buffer.device());
  torch::NoGradGuard no_grad;
  TORCH_CHECK(enabled_, "finish() with syncing disabled: use reduce_accumulated()");
  // Parameters without a gradient this step contribute zeros.
  for (auto& s : slots_)
    if (!s.ready) {
      auto& b = buckets_[s.bucket];
      s.grad_view.zero_();
      s.ready = true;
      --b.pending;
    }
  launch_ready();
  for (auto& b : buckets_) b.work->wait();
  for (auto& s : slots_) s.param.mutable_grad() = s.grad_view;
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
}

double GradSync::wait_seconds() const {
  for (const auto& timer : unread_waits_) wait_seconds_ += timer.seconds();
  unread_waits_.clear();
  return wait_seconds_;
}

void GradSync::reduce_accumulated() {
  torch::NoGradGuard no_grad;
  reset();
  for (auto& s : slots_) {
    auto& b = buckets_[s.bucket];
    if (s.param.grad().defined())
      s.grad_view.copy_(s.param.grad());
    else
      s.grad_view.zero_();
    s.ready = true;
    --b.pending;
  }
  const bool was = enabled_;
  enabled_ = true;
  finish();
  enabled_ = was;
}

}  // namespace scorch
