// c10d process groups behind the Communicator interface (see c10d.h).
#include "dist/c10d.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef SCORCH_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef SCORCH_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "core/compat.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/context.h"
#include "dist/mpi.h"

namespace scorch {
namespace {

using Clock = std::chrono::steady_clock;

std::string reason(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

// A collective that failed or timed out cannot be recovered by one rank: say
// which rank and collective, then end the whole job. Gloo's wait() blocks
// until the collective completes, fails or passes the group's timeout, so
// both kinds reach here. NCCL's wait() only makes the current stream wait:
// what reaches here is an error NCCL reported when the collective was
// enqueued or that its watchdog had already found; a timeout never does (the
// watchdog ends the process, see make_c10d_communicator).
[[noreturn]] void end_job(int rank, const char* what, const char* backend, double timeout_s,
                          Clock::time_point started, const std::string& why) {
  const double waited_s = std::chrono::duration<double>(Clock::now() - started).count();
  if (std::strcmp(backend, "nccl") == 0) {
    std::fprintf(stderr,
                 "error: rank %d: %s failed on NCCL: %s; ending the job (a collective that "
                 "does not complete within dist.timeout_s = %g s ends its rank through NCCL's "
                 "watchdog instead)\n",
                 rank, what, why.c_str(), timeout_s);
  } else if (waited_s >= 0.9 * timeout_s) {
    std::fprintf(stderr,
                 "error: rank %d: %s did not complete within %g s (waited %.1f s; "
                 "dist.timeout_s = %g); another rank has probably died or stalled, "
                 "ending the job [%s: %s]\n",
                 rank, what, timeout_s, waited_s, timeout_s, backend, why.c_str());
  } else {
    std::fprintf(stderr,
                 "error: rank %d: %s failed after %.1f s (dist.timeout_s = %g): %s; another "
                 "rank has probably died, ending the job [%s]\n",
                 rank, what, waited_s, timeout_s, why.c_str(), backend);
  }
  std::fflush(stderr);
  abort_job_if_distributed(1);
  std::abort();
}

// Rank 0's store address, "host:port", on every rank (over MPI).
std::string broadcast_store_address(const std::string& mine, double timeout_s) {
  auto mpi = make_mpi_communicator(timeout_s);
  auto buffer = torch::zeros({256}, torch::kUInt8);
  if (mpi->rank() == 0) {
    TORCH_CHECK(mine.size() < 256, "store address too long: ", mine);
    std::memcpy(buffer.data_ptr(), mine.data(), mine.size());
  }
  mpi->broadcast(buffer, 0);
  return std::string(reinterpret_cast<const char*>(buffer.data_ptr()));
}

std::string host_name() {
  char name[256] = {0};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "127.0.0.1";
  return name;
}

// Rank 0 serves the store on a port the kernel picks; every rank connects.
c10::intrusive_ptr<c10d::Store> join_store(const DistContext& ctx, double timeout_s) {
  c10d::TCPStoreOptions opts;
  opts.numWorkers = static_cast<size_t>(ctx.world_size);
  opts.waitWorkers = false;  // the others learn the address only after this returns
  opts.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  c10::intrusive_ptr<c10d::TCPStore> server;
  std::string mine;
  if (ctx.rank == 0) {
    opts.port = 0;
    opts.isServer = true;
    // The address the other ranks reach rank 0 at: MASTER_ADDR as in
    // PyTorch's launchers when set, else this host's name.
    const char* master = std::getenv("MASTER_ADDR");
    const std::string host = master && *master ? master : host_name();
    server = c10::make_intrusive<c10d::TCPStore>(host, opts);
    mine = host + ":" + std::to_string(server->getPort());
  }
  // World size 1 (a GPU check, a single-rank job) needs no MPI at all.
  const std::string address = ctx.world_size == 1 ? mine : broadcast_store_address(mine, timeout_s);
  if (server) return server;
  const auto colon = address.rfind(':');
  opts.port = static_cast<uint16_t>(std::stoi(address.substr(colon + 1)));
  return c10::make_intrusive<c10d::TCPStore>(address.substr(0, colon), opts);
}

// One collective in flight on a process group.
template <typename WorkPtr>
class C10dWork : public Work {
 public:
  C10dWork(WorkPtr work, int rank, const char* backend, double timeout_s)
      : work_(std::move(work)), rank_(rank), backend_(backend), timeout_s_(timeout_s) {}
  // A Work dropped without wait() completes here, as MpiWork does.
  ~C10dWork() override {
    try {
      work_->wait();
    } catch (const std::exception&) {
    }
  }
  void wait() override {
    const auto started = Clock::now();
    try {
      work_->wait();
    } catch (const std::exception& e) {
      end_job(rank_, "all_reduce_sum_async", backend_, timeout_s_, started, reason(e));
    }
  }

 private:
  WorkPtr work_;
  int rank_;
  const char* backend_;
  double timeout_s_;
};

// What a process group type has, found by overload resolution so that
// LibTorch 1.13 (neither) and 2.x (both, on c10d::Backend) compile alike.
template <typename Group, typename = void>
struct HasShutdown : std::false_type {};
template <typename Group>
struct HasShutdown<Group, std::void_t<decltype(std::declval<Group&>().shutdown()),
                                      decltype(std::declval<Group&>().abort())>>
    : std::true_type {};
template <typename Group, typename = void>
struct HasBoundDevice : std::false_type {};
template <typename Group>
struct HasBoundDevice<
    Group, std::void_t<decltype(std::declval<Group&>().setBoundDeviceId(std::declval<at::Device>())),
                       decltype(std::declval<Group&>().eagerConnectSingleDevice(
                           std::declval<at::Device>()))>> : std::true_type {};

// Closes the group before it is destroyed: shutdown() (ProcessGroupNCCL:
// finishes the queued collectives, then destroys its communicators) at a
// normal end; abort() while an exception unwinds, when a peer may never
// join the collectives still queued. Without either, 2.x's ProcessGroupNCCL
// destructor warns and aborts its communicators. Nothing on 1.13.
template <typename Group>
void close_group(Group& group, bool unwinding) noexcept {
  if constexpr (HasShutdown<Group>::value) {
    try {
      if (unwinding)
        group.abort();
      else
        group.shutdown();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "warning: closing the c10d process group: %s\n", reason(e).c_str());
    }
  } else {
    (void)group, (void)unwinding;
  }
}

// Binds the group to this rank's GPU and creates its NCCL communicator now,
// as init_process_group(device_id=...) does: collectives and barrier() use
// that GPU instead of guessing one, and NCCL's errors (e.g. two ranks on one
// GPU) come at start-up. A no-op where the group type lacks the calls.
template <typename Group>
void bind_to_device(Group& group, const torch::Device& device) {
  if constexpr (HasBoundDevice<Group>::value) {
    group.setBoundDeviceId(device);
    group.eagerConnectSingleDevice(device);
  } else {
    (void)group, (void)device;
  }
}

// The communicator over one process group type (ProcessGroupGloo or
// ProcessGroupNCCL: the same calls in LibTorch 1.13 and 2.x).
template <typename Group>
class C10dCommunicator : public Communicator {
 public:
  // `stage_on`: a device that CPU tensors visit for their collectives (NCCL
  // reduces only CUDA tensors; the loss statistics and data cursors are CPU
  // tensors); CPU for none.
  C10dCommunicator(c10::intrusive_ptr<Group> group, const char* name, int rank, int size,
                   double timeout_s, bool widen_half, torch::Device stage_on)
      : group_(std::move(group)),
        name_(name),
        rank_(rank),
        size_(size),
        timeout_s_(timeout_s),
        widen_half_(widen_half),
        stage_on_(stage_on) {}
  ~C10dCommunicator() override { close_group(*group_, std::uncaught_exceptions() > 0); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return name_; }

  void all_reduce_sum(torch::Tensor& t) override {
    check(t, "all_reduce_sum");
    auto self = [this](torch::Tensor& c) { all_reduce_sum(c); };
    if (staged(t)) return through(t, t.to(stage_on_), self);
    if (widen_half_ && (t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16))
      return through(t, t.to(torch::kFloat), self);
    std::vector<at::Tensor> tensors{t};
    run("all_reduce_sum", [&] { return group_->allreduce(tensors, sum()); });
  }
  std::unique_ptr<Work> all_reduce_sum_async(torch::Tensor& t) override {
    check(t, "all_reduce_sum_async");
    TORCH_CHECK(!staged(t), "all_reduce_sum_async: the ", name_, " communicator takes ",
                stage_on_, " tensors, got ", t.device());
    std::vector<at::Tensor> tensors{t};
    auto work = group_->allreduce(tensors, sum());
    return std::make_unique<C10dWork<decltype(work)>>(std::move(work), rank_, name_, timeout_s_);
  }
  std::unique_ptr<Work> all_reduce_mean_async(torch::Tensor& t) override {
    if (!nccl()) return Communicator::all_reduce_mean_async(t);
    check(t, "all_reduce_mean_async");
    TORCH_CHECK(!staged(t), "all_reduce_mean_async: the ", name_, " communicator takes ",
                stage_on_, " tensors, got ", t.device());
    std::vector<at::Tensor> tensors{t};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::AVG;  // NCCL divides inside the reduction
    auto work = group_->allreduce(tensors, opts);
    return std::make_unique<C10dWork<decltype(work)>>(std::move(work), rank_, name_, timeout_s_);
  }
  void broadcast(torch::Tensor& t, int root) override {
    check(t, "broadcast");
    if (staged(t)) return through(t, t.to(stage_on_), [&](torch::Tensor& c) { broadcast(c, root); });
    std::vector<at::Tensor> tensors{t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    run("broadcast", [&] { return group_->broadcast(tensors, opts); });
  }
  torch::Tensor all_gather(const torch::Tensor& t) override {
    check(t, "all_gather");
    if (staged(t)) return all_gather(t.to(stage_on_)).cpu();
    std::vector<int64_t> shape = t.sizes().vec();
    TORCH_CHECK(!shape.empty(), "all_gather needs a batch dimension");
    shape[0] *= size_;
    auto out = torch::empty(shape, t.options());
    std::vector<std::vector<at::Tensor>> outputs{out.chunk(size_, 0)};
    std::vector<at::Tensor> inputs{t};
    run("all_gather", [&] { return group_->allgather(outputs, inputs); });
    return out;
  }
  void all_gather_into(torch::Tensor& out, const torch::Tensor& t) override {
    if (!nccl() || staged(t)) return Communicator::all_gather_into(out, t);
    check(out, "all_gather_into");
    check(t, "all_gather_into");
    TORCH_CHECK(t.dim() > 0 && out.size(0) == size_ * t.size(0),
                "all_gather_into: out must have ", size_, " times t's rows");
    // In place when t is out's own part: NCCL reads and writes one buffer.
    auto input = t;
    run("all_gather_into", [&] { return group_->_allgather_base(out, input); });
  }
  void barrier() override {
    run("barrier", [&] { return group_->barrier(); });
  }

 private:
  bool nccl() const { return std::strcmp(name_, "nccl") == 0; }
  static c10d::AllreduceOptions sum() {
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    return opts;
  }
  void check(const torch::Tensor& t, const char* what) const {
    TORCH_CHECK(t.is_contiguous(), what, ": tensor must be contiguous");
  }
  bool staged(const torch::Tensor& t) const { return !stage_on_.is_cpu() && t.is_cpu(); }
  // The collective on `copy` (t on another device or in another dtype), whose
  // result then goes back into t.
  template <typename Collective>
  static void through(torch::Tensor& t, torch::Tensor copy, Collective collective) {
    collective(copy);
    t.copy_(copy);
  }
  // Starts a collective and waits for it; a failure ends the job.
  template <typename Start>
  void run(const char* what, Start start) {
    const auto started = Clock::now();
    try {
      start()->wait();
    } catch (const std::exception& e) {
      end_job(rank_, what, name_, timeout_s_, started, reason(e));
    }
  }

  c10::intrusive_ptr<Group> group_;
  const char* name_;
  int rank_, size_;
  double timeout_s_;
  bool widen_half_;  // Gloo reduces no bfloat16: through float32, as MPI
  torch::Device stage_on_;
};

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

#ifdef SCORCH_C10D_NCCL
// NCCL's watchdog thread checks every collective against the group's timeout
// (and for errors); with asynchronous error handling on, a collective past
// dist.timeout_s makes it log "[Rank R] Watchdog caught collective operation
// timeout: WorkNCCL(SeqNum=N, OpType=ALLREDUCE, ...) ran for T milliseconds
// before timing out" and end the process (SIGABRT); mpirun then ends the
// others. 2.x's default is 3 (SkipCleanUp: no ncclCommAbort first, which
// could hang); older LibTorch defaulted to modes that leave a timed-out rank
// waiting, so the mode is pinned here unless the user chose one. Set before
// the group's constructor reads it.
void ensure_nccl_async_error_handling() {
  for (const char* name : {"TORCH_NCCL_ASYNC_ERROR_HANDLING", "NCCL_ASYNC_ERROR_HANDLING"})
    if (const char* v = std::getenv(name); v && *v) return;
  // 2.0 and 2.1 read only the old name, whose default there (1, TearDown)
  // ends the process too; 1.13 reads only the old name and knows TearDown as
  // its one mode that ends the process.
  if constexpr (compat::kTorch2)
    ::setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "3", 0);
  else
    ::setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);
}
#endif

}  // namespace

bool c10d_backend_built(BackendName backend) {
#ifdef SCORCH_C10D_GLOO
  if (backend == BackendName::kGloo) return true;
#endif
#ifdef SCORCH_C10D_NCCL
  if (backend == BackendName::kNccl) return true;
#endif
  return false;
}

std::unique_ptr<Communicator> make_c10d_communicator(BackendName backend, const DistContext& ctx,
                                                     double timeout_s) {
  TORCH_CHECK(timeout_s > 0, "dist.timeout_s must be positive, got ", timeout_s);
  SCORCH_CHECK(backend == BackendName::kGloo || backend == BackendName::kNccl,
               "dist.backend=", choice_name(backend), " is not a c10d process group");
  SCORCH_CHECK(backend != BackendName::kNccl || ctx.device.is_cuda(),
               "dist.backend=nccl needs CUDA devices, but this run is on ", ctx.device.str(),
               "; use dist.backend=auto, mpi or gloo");
  SCORCH_CHECK(c10d_backend_built(backend), "dist.backend=", choice_name(backend),
               " but this build has no ",
               backend == BackendName::kGloo
                   ? "Gloo (build with libgloo-dev installed: launch/install_deps.sh)"
                   : "NCCL (build against a CUDA LibTorch with NCCL)",
               "; use dist.backend=mpi");
  auto store = join_store(ctx, timeout_s);
#ifdef SCORCH_C10D_GLOO
  if (backend == BackendName::kGloo) {
    using Gloo = c10d::ProcessGroupGloo;
    auto options = Gloo::Options::create(to_ms(timeout_s));
    const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
    options->devices.push_back(iface && *iface ? Gloo::createDeviceForInterface(iface)
                                               : Gloo::createDefaultDevice());
    auto group = c10::make_intrusive<Gloo>(store, ctx.rank, ctx.world_size, options);
    return std::make_unique<C10dCommunicator<Gloo>>(std::move(group), "gloo", ctx.rank,
                                                    ctx.world_size, timeout_s, true,
                                                    torch::kCPU);
  }
#endif
#ifdef SCORCH_C10D_NCCL
  if (backend == BackendName::kNccl) {
    using Nccl = c10d::ProcessGroupNCCL;
    ensure_nccl_async_error_handling();
    auto options = Nccl::Options::create();
    options->timeout = to_ms(timeout_s);  // the watchdog's limit per collective
    auto group = c10::make_intrusive<Nccl>(store, ctx.rank, ctx.world_size, options);
    bind_to_device(*group, ctx.device);
    return std::make_unique<C10dCommunicator<Nccl>>(std::move(group), "nccl", ctx.rank,
                                                    ctx.world_size, timeout_s, false,
                                                    ctx.device);
  }
#endif
  fail("unreachable: no c10d backend");
}

}  // namespace scorch
