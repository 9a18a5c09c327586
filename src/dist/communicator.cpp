// The local communicator and the choice between local, MPI and c10d (see
// communicator.h).
#include "dist/communicator.h"

#include "core/error.h"
#include "dist/c10d.h"
#include "dist/context.h"
#include "dist/mpi.h"

namespace scorch {

void Communicator::all_reduce_mean(torch::Tensor& t) {
  all_reduce_sum(t);
  if (size() > 1) t.div_(size());
}

std::unique_ptr<Work> Communicator::all_reduce_mean_async(torch::Tensor& t) {
  if (size() > 1) t.mul_(1.0 / size());
  return all_reduce_sum_async(t);
}

void Communicator::all_gather_into(torch::Tensor& out, const torch::Tensor& t) {
  TORCH_CHECK(out.is_contiguous() && t.dim() > 0 && out.size(0) == size() * t.size(0),
              "all_gather_into: out must be contiguous with ", size(), " times t's rows");
  out.copy_(all_gather(t.contiguous()).view_as(out));
}

namespace {

class DoneWork : public Work {
 public:
  void wait() override {}
};

class LocalCommunicator : public Communicator {
 public:
  std::unique_ptr<Work> all_reduce_sum_async(torch::Tensor&) override {
    return std::make_unique<DoneWork>();
  }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* name() const override { return "local"; }
  void all_reduce_sum(torch::Tensor&) override {}
  void broadcast(torch::Tensor&, int root) override {
    TORCH_CHECK(root == 0, "broadcast root ", root, " with one rank");
  }
  torch::Tensor all_gather(const torch::Tensor& t) override { return t.clone(); }
  void barrier() override {}
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() {
  return std::make_unique<LocalCommunicator>();
}

BackendName resolve_backend(BackendName backend, const DistContext& ctx) {
  if (backend != BackendName::kAuto) return backend;
  return ctx.device.is_cuda() ? BackendName::kNccl : BackendName::kMpi;
}

std::unique_ptr<Communicator> make_communicator(const DistContext& ctx, BackendName backend,
                                                double timeout_s) {
  if (ctx.world_size == 1 && !launched_by_mpi()) return make_local_communicator();
  backend = resolve_backend(backend, ctx);
  if (backend != BackendName::kMpi) return make_c10d_communicator(backend, ctx, timeout_s);
  SCORCH_CHECK(ctx.device.is_cpu(), "dist.backend=mpi takes CPU tensors, but this run is on ",
               ctx.device.str(), "; use dist.backend=auto or nccl");
  return make_mpi_communicator(timeout_s);
}

std::unique_ptr<Communicator> make_host_communicator(const DistContext& ctx, BackendName backend,
                                                     double timeout_s) {
  if (ctx.world_size == 1 || resolve_backend(backend, ctx) != BackendName::kNccl) return nullptr;
  return make_mpi_communicator(timeout_s);
}

}  // namespace scorch
