#include "engine/dist/mpi_communicator.h"

#if MQ_WITH_MPI
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "engine/dist/nccl.h"
#endif

namespace mq {

#if !MQ_WITH_MPI
bool mpi_built() { return false; }
std::unique_ptr<Communicator> make_mpi_communicator() {
  fail("this build of mq has no MPI; rebuild with MPI (Debian: libopenmpi-dev; cmake -DMQ_MPI=ON)");
}
#else
namespace {

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(code, text, &len);
  fail("MPI: {} failed: {}", what, std::string(text, static_cast<size_t>(len)));
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i64: return MPI_INT64_T;
    case DType::i32: return MPI_INT32_T;
    case DType::u8: return MPI_UINT8_T;
  }
  return MPI_DATATYPE_NULL;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init");
      owns_ = true;
    }
    // Errors come back as codes and become mq::Error (then MPI_Abort in the tool), never a
    // silent abort inside the library.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiCommunicator() override {
    nccl_.reset();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_ && !finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override {
    return fmt::format("MPI ({} rank{}){}", size_, size_ == 1 ? "" : "s",
                       nccl_available() ? ", NCCL for CUDA tensors" : "");
  }

  void allreduce_sum(std::vector<Tensor>& tensors) override {
    if (tensors.empty()) return;
    const auto start = std::chrono::steady_clock::now();
    for (PackedTensors& p : pack_tensors(tensors)) {
      reduce_flat(p.flat);
      unpack_tensors({p});
      stats_.bytes += p.flat.numel() * int64_t(dtype_size(p.flat.dtype()));
    }
    ++stats_.calls;
    stats_.seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  std::vector<std::string> allgather(const std::string& bytes) override {
    const auto start = std::chrono::steady_clock::now();
    stats_.bytes += static_cast<int64_t>(bytes.size());
    const int n = static_cast<int>(bytes.size());
    std::vector<int> sizes(static_cast<size_t>(size_)), offsets(sizes.size());
    check_mpi(MPI_Allgather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, MPI_COMM_WORLD),
              "MPI_Allgather");
    int total = 0;
    for (size_t r = 0; r < sizes.size(); ++r) {
      offsets[r] = total;
      total += sizes[r];
    }
    std::string all(static_cast<size_t>(total), '\0');
    check_mpi(MPI_Allgatherv(bytes.data(), n, MPI_CHAR, all.data(), sizes.data(), offsets.data(),
                             MPI_CHAR, MPI_COMM_WORLD),
              "MPI_Allgatherv");
    std::vector<std::string> out;
    for (size_t r = 0; r < sizes.size(); ++r)
      out.push_back(all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(sizes[r])));
    ++stats_.calls;
    stats_.seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
  }

  void broadcast(std::string& bytes, int root) override {
    uint64_t n = bytes.size();
    check_mpi(MPI_Bcast(&n, 1, MPI_UINT64_T, root, MPI_COMM_WORLD), "MPI_Bcast");
    bytes.resize(n);
    // In pieces below INT_MAX bytes (MPI counts are int).
    constexpr uint64_t kPiece = 1u << 30;
    for (uint64_t at = 0; at < n; at += kPiece)
      check_mpi(MPI_Bcast(bytes.data() + at, static_cast<int>(std::min(kPiece, n - at)), MPI_CHAR,
                          root, MPI_COMM_WORLD),
                "MPI_Bcast");
  }

  void barrier() override { check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

  [[noreturn]] void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  void reduce_flat(Tensor& flat) {
    if (flat.device().is_cuda()) {
      if (nccl_available()) {
        if (!nccl_) nccl_ = make_nccl_allreduce(rank_, size_, flat.device(), *this);
        nccl_->sum(flat);
        return;
      }
      Tensor host = flat.to(Device::cpu());  // no NCCL: through host memory
      reduce_flat(host);
      flat.copy_(host);
      return;
    }
    constexpr int64_t kPiece = int64_t(1) << 30;  // MPI counts are int
    for (int64_t at = 0; at < flat.numel(); at += kPiece) {
      const int count = static_cast<int>(std::min(kPiece, flat.numel() - at));
      char* base = static_cast<char*>(flat.raw_data()) + at * int64_t(dtype_size(flat.dtype()));
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, base, count, mpi_type(flat.dtype()), MPI_SUM,
                              MPI_COMM_WORLD),
                "MPI_Allreduce");
    }
  }

  int rank_ = 0, size_ = 1;
  bool owns_ = false;
  std::unique_ptr<NcclAllreduce> nccl_;
};

}  // namespace

bool mpi_built() { return true; }
std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }
#endif

}  // namespace mq
