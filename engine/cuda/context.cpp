// Device contexts and the plain-C++ entry points of cuda_api.h.
#include "engine/cuda/context.h"

#include <atomic>
#include <memory>
#include <vector>

#include "kernels/base/error.h"

namespace mq::cuda {
namespace {
constexpr size_t kCublasWorkspace = size_t{32} << 20;  // cuBLAS's recommendation for Hopper

std::atomic<bool> g_allow_tf32{false};
std::atomic<bool> g_deterministic{false};

std::mutex g_contexts_mu;
// Contexts live until the process ends and are never destroyed: tearing down streams and
// handles during static destruction races the CUDA runtime's own shutdown.
std::vector<DeviceContext*>& contexts() {
  static auto* v = new std::vector<DeviceContext*>();
  return *v;
}

DeviceContext* create_context(int device) {
  MQ_CUDA_CHECK(cudaSetDevice(device));
  auto ctx = std::make_unique<DeviceContext>(device);
  // A blocking stream: ordered with the legacy default stream, so a stray cudaMemcpy elsewhere
  // can never race our work.
  MQ_CUDA_CHECK(cudaStreamCreate(&ctx->stream));
  MQ_CUBLAS_CHECK(cublasCreate(&ctx->cublas));
  MQ_CUBLAS_CHECK(cublasSetStream(ctx->cublas, ctx->stream));
  ctx->cublas_workspace = ctx->allocator.allocate(kCublasWorkspace);
  MQ_CUBLAS_CHECK(cublasSetWorkspace(ctx->cublas, ctx->cublas_workspace, kCublasWorkspace));
  ctx->cublas_tf32 = g_allow_tf32.load();
  MQ_CUBLAS_CHECK(cublasSetMathMode(
      ctx->cublas, ctx->cublas_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  MQ_CUDNN_CHECK(cudnnCreate(&ctx->cudnn));
  MQ_CUDNN_CHECK(cudnnSetStream(ctx->cudnn, ctx->stream));
  return ctx.release();
}
}  // namespace

DeviceContext& context(int device) {
  DeviceContext* ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_contexts_mu);
    auto& all = contexts();
    if (all.empty()) all.resize(std::max(device_count(), 1), nullptr);
    if (device < 0 || device >= device_count())
      fail("cuda:{} does not exist ({} CUDA device(s) visible)", device, device_count());
    if (!all[device]) all[device] = create_context(device);
    ctx = all[device];
  }
  MQ_CUDA_CHECK(cudaSetDevice(device));
  return *ctx;
}

cublasHandle_t cublas_handle(DeviceContext& ctx) {
  bool want = g_allow_tf32.load();
  if (want != ctx.cublas_tf32) {
    MQ_CUBLAS_CHECK(
        cublasSetMathMode(ctx.cublas, want ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    ctx.cublas_tf32 = want;
  }
  return ctx.cublas;
}

bool built_with_cuda() { return true; }

int device_count() {
  // Without a driver or device, cudaGetDeviceCount fails: that means "no CUDA", not an error.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      n = 0;
    }
    return n;
  }();
  return count;
}

void* device_alloc(size_t bytes, int device) { return context(device).allocator.allocate(bytes); }

void device_free(void* ptr, size_t, int device) {
  if (!ptr) return;
  DeviceContext* ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_contexts_mu);
    auto& all = contexts();
    if (device >= 0 && device < static_cast<int>(all.size())) ctx = all[device];
  }
  if (ctx) ctx->allocator.release(ptr);
}

void copy_host_to_device(void* dst, const void* src, size_t bytes, int device) {
  DeviceContext& ctx = context(device);
  MQ_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx.stream));
  MQ_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
}

void copy_device_to_host(void* dst, const void* src, size_t bytes, int device) {
  DeviceContext& ctx = context(device);
  MQ_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx.stream));
  MQ_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
}

void copy_device_to_device(void* dst, const void* src, size_t bytes, int device) {
  DeviceContext& ctx = context(device);
  // Stream-ordered: later ops on the stream see the copy; no host sync needed.
  MQ_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx.stream));
  MQ_CUDA_DEBUG_SYNC(ctx.stream, "copy_device_to_device");
}

void memset_device(void* dst, int value, size_t bytes, int device) {
  DeviceContext& ctx = context(device);
  MQ_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, ctx.stream));
  MQ_CUDA_DEBUG_SYNC(ctx.stream, "memset_device");
}

void synchronize(int device) {
  if (device_count() == 0) return;
  MQ_CUDA_CHECK(cudaStreamSynchronize(context(device).stream));
}

void* stream(int device) { return context(device).stream; }

MemoryStats memory_stats(int device) { return context(device).allocator.stats(); }
void reset_peak_memory(int device) { context(device).allocator.reset_peak(); }
void empty_cache(int device) {
  if (device_count() == 0) return;
  DeviceContext& ctx = context(device);
  MQ_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  ctx.allocator.empty_cache();
}

void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32.load(); }
void set_deterministic(bool on) { g_deterministic = on; }
bool deterministic() { return g_deterministic.load(); }

// ---- PinnedBuffer ----
PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  if (device_count() == 0) fail("pinned host memory needs a CUDA device; none is visible");
  if (bytes) MQ_CUDA_CHECK(cudaMallocHost(&data_, bytes));
}

PinnedBuffer::~PinnedBuffer() { release(); }

PinnedBuffer::PinnedBuffer(PinnedBuffer&& o) noexcept
    : data_(o.data_), bytes_(o.bytes_), event_(o.event_), event_device_(o.event_device_) {
  o.data_ = nullptr;
  o.event_ = nullptr;
  o.bytes_ = 0;
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    release();
    data_ = o.data_;
    bytes_ = o.bytes_;
    event_ = o.event_;
    event_device_ = o.event_device_;
    o.data_ = nullptr;
    o.event_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void PinnedBuffer::release() noexcept {
  if (event_) {
    cudaEventSynchronize(static_cast<cudaEvent_t>(event_));  // the copy must finish reading
    cudaEventDestroy(static_cast<cudaEvent_t>(event_));
    event_ = nullptr;
  }
  if (data_) cudaFreeHost(data_);
  data_ = nullptr;
}

void PinnedBuffer::upload(void* dst, size_t bytes, int device) {
  MQ_CHECK(bytes <= bytes_, "PinnedBuffer::upload of {} bytes from a {}-byte buffer", bytes,
           bytes_);
  DeviceContext& ctx = context(device);
  if (event_ && event_device_ != device) {
    cudaEventDestroy(static_cast<cudaEvent_t>(event_));
    event_ = nullptr;
  }
  if (!event_) {
    cudaEvent_t ev;
    MQ_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    event_ = ev;
    event_device_ = device;
  }
  MQ_CUDA_CHECK(cudaMemcpyAsync(dst, data_, bytes, cudaMemcpyHostToDevice, ctx.stream));
  MQ_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event_), ctx.stream));
  MQ_CUDA_DEBUG_SYNC(ctx.stream, "PinnedBuffer::upload");
}

void PinnedBuffer::wait() {
  if (event_) MQ_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event_)));
}

}  // namespace mq::cuda
