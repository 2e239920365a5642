#include "engine/dist/nccl.h"

#if MQ_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>

#include "engine/cuda/cuda_api.h"
#endif

namespace mq {

#if !MQ_WITH_NCCL
bool nccl_available() { return false; }
std::unique_ptr<NcclAllreduce> make_nccl_allreduce(int, int, Device, Communicator&) {
  fail("this build of mq has no NCCL (it needs the CUDA backend and NCCL's nccl.h / libnccl)");
}
#else
namespace {

void check_nccl(ncclResult_t r, const char* what) {
  MQ_CHECK(r == ncclSuccess, "NCCL: {} failed: {}", what, ncclGetErrorString(r));
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::i64: return ncclInt64;
    case DType::i32: return ncclInt32;
    case DType::u8: return ncclUint8;
  }
  return ncclFloat32;
}

class Nccl final : public NcclAllreduce {
 public:
  Nccl(int rank, int size, Device device, Communicator& bootstrap) : device_(device) {
    ncclUniqueId id{};
    std::string bytes;
    if (rank == 0) {
      check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
      bytes.assign(reinterpret_cast<const char*>(&id), sizeof(id));
    }
    bootstrap.broadcast(bytes, 0);
    MQ_CHECK(bytes.size() == sizeof(id), "NCCL: the unique id from rank 0 has {} bytes", bytes.size());
    std::memcpy(&id, bytes.data(), sizeof(id));
    MQ_CHECK(cudaSetDevice(device.index) == cudaSuccess, "NCCL: cannot select {}", device.str());
    check_nccl(ncclCommInitRank(&comm_, size, id, rank), "ncclCommInitRank");
  }
  ~Nccl() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  void sum(Tensor& flat) override {
    MQ_CHECK(flat.device() == device_, "NCCL: a tensor on {} for the communicator of {}",
             flat.device().str(), device_.str());
    auto stream = static_cast<cudaStream_t>(cuda::stream(device_.index));
    check_nccl(ncclAllReduce(flat.raw_data(), flat.raw_data(), static_cast<size_t>(flat.numel()),
                             nccl_type(flat.dtype()), ncclSum, comm_, stream),
               "ncclAllReduce");
  }

 private:
  Device device_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

bool nccl_available() { return true; }
std::unique_ptr<NcclAllreduce> make_nccl_allreduce(int rank, int size, Device device,
                                                   Communicator& bootstrap) {
  return std::make_unique<Nccl>(rank, size, device, bootstrap);
}
#endif

}  // namespace mq
