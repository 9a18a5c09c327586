// MPI runtime, context and CPU communicator (see mpi.h). Every MPI call goes
// through SCORCH_MPI_CHECK, which names the call and MPI's error string. Every
// collective is the nonblocking variant waited on with a deadline
// (wait_with_deadline), so a dead or stalled peer ends the job instead of
// hanging it.
#include "dist/mpi.h"

#include <mpi.h>

#ifdef SCORCH_CUDA
#include <ATen/cuda/CUDAContext.h>  // defines: at::cuda::getDeviceProperties
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"

#define SCORCH_MPI_CHECK(call)                                                  \
  do {                                                                          \
    const int scorch_mpi_rc = (call);                                           \
    if (scorch_mpi_rc != MPI_SUCCESS) {                                         \
      char scorch_mpi_msg[MPI_MAX_ERROR_STRING];                                \
      int scorch_mpi_len = 0;                                                   \
      MPI_Error_string(scorch_mpi_rc, scorch_mpi_msg, &scorch_mpi_len);         \
      TORCH_CHECK(false, #call, " failed: ", std::string(scorch_mpi_msg, scorch_mpi_len)); \
    }                                                                           \
  } while (0)

namespace scorch {
namespace {

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void ensure_initialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    SCORCH_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    // Errors come back as return codes, turned into exceptions by SCORCH_MPI_CHECK.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    std::atexit(finalize_at_exit);
  });
}

MPI_Datatype mpi_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return MPI_FLOAT;
    case torch::kDouble: return MPI_DOUBLE;
    case torch::kLong: return MPI_INT64_T;
    case torch::kInt: return MPI_INT32_T;
    case torch::kByte: return MPI_UINT8_T;
    case torch::kChar: return MPI_INT8_T;
    case torch::kBool: return MPI_C_BOOL;
    default: TORCH_CHECK(false, "MPI collectives do not take dtype ", t);
  }
}

void check_cpu_contiguous(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), what, ": the MPI communicator takes CPU tensors, got ",
              t.device());
  TORCH_CHECK(t.is_contiguous(), what, ": tensor must be contiguous");
}

// Waits for `request` by polling MPI_Test (which also drives Open MPI's
// progress engine): a short spin for the common case of a collective that is
// nearly done, then sleeps doubling from 1 us to kMaxSleep, so a rank that
// waits long for a slow peer does not burn a core. Past `timeout_s` of waiting
// it names the rank and the collective on stderr and aborts the whole job:
// a collective that never completes means a peer died or stalled, and no
// rank can recover from that alone.
constexpr auto kSpin = std::chrono::microseconds(200);
constexpr auto kMaxSleep = std::chrono::microseconds(1000);

void wait_with_deadline(MPI_Request* request, const char* what, int rank, double timeout_s) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto sleep = std::chrono::microseconds(1);
  for (;;) {
    int done = 0;
    SCORCH_MPI_CHECK(MPI_Test(request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    const auto waited = Clock::now() - t0;
    const double waited_s = std::chrono::duration<double>(waited).count();
    if (waited_s > timeout_s) {
      std::fprintf(stderr,
                   "error: rank %d: %s did not complete within %g s (waited %.1f s; "
                   "dist.timeout_s = %g); another rank has probably died or stalled, "
                   "ending the job\n",
                   rank, what, timeout_s, waited_s, timeout_s);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
      std::abort();  // MPI_Abort does not return; this is for the compiler
    }
    if (waited < kSpin) continue;
    std::this_thread::sleep_for(sleep);
    sleep = std::min(sleep * 2, kMaxSleep);
  }
}

class MpiCommunicator;

// An MPI_Iallreduce in flight. While it is, its communicator lists it, so
// progress() can test it.
class MpiWork : public Work {
 public:
  MpiWork(MpiCommunicator* owner, int rank, double timeout_s);
  ~MpiWork() override;
  void wait() override;
  void test();  // one MPI_Test: advances the collective, never blocks
  void detach() { owner_ = nullptr; }  // its communicator is going away
  MPI_Request request = MPI_REQUEST_NULL;

 private:
  MpiCommunicator* owner_;  // not owned; null once detached
  int rank_;
  double timeout_s_;
};

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_s) : timeout_s_(timeout_s) {
    TORCH_CHECK(timeout_s > 0, "dist.timeout_s must be positive, got ", timeout_s);
    ensure_initialized();
    SCORCH_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    for (auto* work : live_) work->detach();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "mpi"; }

  void all_reduce_sum(torch::Tensor& t) override {
    check_cpu_contiguous(t, "all_reduce");
    if (t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16) {
      auto wide = t.to(torch::kFloat);
      all_reduce_sum(wide);
      t.copy_(wide);
      return;
    }
    MPI_Request request;
    SCORCH_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()),
                                    mpi_type(t.scalar_type()), MPI_SUM, comm_, &request));
    wait_with_deadline(&request, "all_reduce_sum", rank_, timeout_s_);
  }
  std::unique_ptr<Work> all_reduce_sum_async(torch::Tensor& t) override {
    check_cpu_contiguous(t, "all_reduce_sum_async");
    auto work = std::make_unique<MpiWork>(this, rank_, timeout_s_);
    SCORCH_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()),
                                    mpi_type(t.scalar_type()), MPI_SUM, comm_, &work->request));
    return work;
  }
  void broadcast(torch::Tensor& t, int root) override {
    check_cpu_contiguous(t, "broadcast");
    MPI_Request request;
    SCORCH_MPI_CHECK(MPI_Ibcast(t.data_ptr(), static_cast<int>(t.numel() * t.element_size()),
                                MPI_BYTE, root, comm_, &request));
    wait_with_deadline(&request, "broadcast", rank_, timeout_s_);
  }
  torch::Tensor all_gather(const torch::Tensor& t) override {
    check_cpu_contiguous(t, "all_gather");
    std::vector<int64_t> shape = t.sizes().vec();
    TORCH_CHECK(!shape.empty(), "all_gather needs a batch dimension");
    shape[0] *= size_;
    auto out = torch::empty(shape, t.options());
    const int bytes = static_cast<int>(t.numel() * t.element_size());
    MPI_Request request;
    SCORCH_MPI_CHECK(MPI_Iallgather(t.data_ptr(), bytes, MPI_BYTE, out.data_ptr(), bytes,
                                    MPI_BYTE, comm_, &request));
    wait_with_deadline(&request, "all_gather", rank_, timeout_s_);
    return out;
  }
  void all_gather_into(torch::Tensor& out, const torch::Tensor& t) override {
    check_cpu_contiguous(out, "all_gather_into");
    check_cpu_contiguous(t, "all_gather_into");
    TORCH_CHECK(t.dim() > 0 && out.size(0) == size_ * t.size(0) && out.dtype() == t.dtype(),
                "all_gather_into: out must have ", size_, " times t's rows, in its dtype");
    const int bytes = static_cast<int>(t.numel() * t.element_size());
    // In place when t is out's own part.
    const bool own = t.data_ptr() == static_cast<char*>(out.data_ptr()) + static_cast<int64_t>(rank_) * bytes;
    MPI_Request request;
    SCORCH_MPI_CHECK(MPI_Iallgather(own ? MPI_IN_PLACE : t.data_ptr(), bytes, MPI_BYTE,
                                    out.data_ptr(), bytes, MPI_BYTE, comm_, &request));
    wait_with_deadline(&request, "all_gather_into", rank_, timeout_s_);
  }
  void barrier() override {
    MPI_Request request;
    SCORCH_MPI_CHECK(MPI_Ibarrier(comm_, &request));
    wait_with_deadline(&request, "barrier", rank_, timeout_s_);
  }
  void progress() override {
    for (auto* work : live_) work->test();
  }

  // MpiWork's bookkeeping: it is live from construction to destruction.
  void add_live(MpiWork* work) { live_.push_back(work); }
  void remove_live(MpiWork* work) { live_.erase(std::find(live_.begin(), live_.end(), work)); }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  double timeout_s_;
  std::vector<MpiWork*> live_;  // not owned
};

MpiWork::MpiWork(MpiCommunicator* owner, int rank, double timeout_s)
    : owner_(owner), rank_(rank), timeout_s_(timeout_s) {
  owner_->add_live(this);
}

MpiWork::~MpiWork() {
  // The buffer must not be released under a running collective. (An MPI error
  // here cannot be thrown from a destructor; the request is then lost anyway.)
  try {
    if (request != MPI_REQUEST_NULL)
      wait_with_deadline(&request, "all_reduce_sum_async", rank_, timeout_s_);
  } catch (const c10::Error&) {
  }
  if (owner_) owner_->remove_live(this);
}

void MpiWork::wait() { wait_with_deadline(&request, "all_reduce_sum_async", rank_, timeout_s_); }

void MpiWork::test() {
  if (request == MPI_REQUEST_NULL) return;
  int done = 0;
  SCORCH_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
}

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

namespace {

// A GPU's identity across the processes of a node: its UUID (the same GPU
// has different indices under different CUDA_VISIBLE_DEVICES). Byte 0 marks
// a rank on a GPU at all.
using GpuId = std::array<char, 17>;

GpuId gpu_id(const torch::Device& device) {
  GpuId id{};
#ifdef SCORCH_CUDA
  if (device.is_cuda()) {
    id[0] = 1;
    std::memcpy(id.data() + 1, at::cuda::getDeviceProperties(device.index())->uuid.bytes, 16);
  }
#else
  (void)device;
#endif
  return id;
}

// How many different GPUs the ranks of `node` are on (every rank calls it).
int distinct_gpus_on_node(MPI_Comm node, int local_ranks, const torch::Device& device) {
  const GpuId mine = gpu_id(device);
  std::vector<GpuId> all(static_cast<size_t>(local_ranks));
  SCORCH_MPI_CHECK(MPI_Allgather(mine.data(), static_cast<int>(mine.size()), MPI_BYTE,
                                 all.data(), static_cast<int>(mine.size()), MPI_BYTE, node));
  std::set<GpuId> gpus;
  for (const auto& id : all)
    if (id[0]) gpus.insert(id);
  return static_cast<int>(gpus.size());
}

std::string processor_name() {
  char name[MPI_MAX_PROCESSOR_NAME] = {0};
  int length = 0;
  MPI_Get_processor_name(name, &length);
  return std::string(name, static_cast<size_t>(length));
}

}  // namespace

void check_one_gpu_per_rank(int local_ranks, int visible_gpus, int distinct_gpus,
                            const std::string& host) {
  TORCH_CHECK(local_ranks >= 1 && visible_gpus >= 1 && distinct_gpus >= 1 &&
                  distinct_gpus <= local_ranks,
              "check_one_gpu_per_rank(", local_ranks, ", ", visible_gpus, ", ", distinct_gpus, ")");
  SCORCH_CHECK(distinct_gpus == local_ranks, "node ", host, " runs ", local_ranks,
               " CUDA ranks (local ranks) but each rank sees ", visible_gpus, " GPU",
               visible_gpus == 1 ? "" : "s", " (CUDA_VISIBLE_DEVICES), so ", local_ranks,
               " ranks would share ", distinct_gpus, " GPU", distinct_gpus == 1 ? "" : "s",
               ", which NCCL rejects: start at most ", distinct_gpus,
               " ranks on this node (launch/mpirun.sh starts one per visible GPU; "
               "mpirun --map-by ppr:", distinct_gpus, ":node; srun --ntasks-per-node=",
               distinct_gpus, "), make more GPUs visible, or train on the CPU (dist.device=cpu)");
}

DistContext make_mpi_context(const Config& config) {
  ensure_initialized();
  DistContext ctx = make_single_process_context(config);  // the device choice
  MPI_Comm_rank(MPI_COMM_WORLD, &ctx.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ctx.world_size);
  MPI_Comm node;
  SCORCH_MPI_CHECK(
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, ctx.rank, MPI_INFO_NULL, &node));
  MPI_Comm_rank(node, &ctx.local_rank);
  MPI_Comm_size(node, &ctx.local_world_size);
  const int gpus = ctx.device.is_cuda() ? static_cast<int>(torch::cuda::device_count()) : 0;
  if (ctx.device.is_cuda()) {
    ctx.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(ctx.local_rank % gpus));
#ifdef SCORCH_CUDA
    // The current device too, so that nothing (NCCL, cuBLAS handles, the
    // caching allocator) opens a context on GPU 0 from every rank.
    c10::cuda::set_device(ctx.device.index());
#endif
  }
  // Every rank of the node joins, whatever its device.
  const int distinct = distinct_gpus_on_node(node, ctx.local_world_size, ctx.device);
  MPI_Comm_free(&node);
  if (ctx.device.is_cuda())
    check_one_gpu_per_rank(ctx.local_world_size, gpus, distinct, processor_name());
  set_log_rank(ctx.rank);
  return ctx;
}

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s) {
  return std::make_unique<MpiCommunicator>(timeout_s);
}

void abort_job_if_distributed(int exit_code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
}

}  // namespace scorch
