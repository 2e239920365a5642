#pragma once
// Eigen views of raw row-major buffers, shared by the CPU backend files.
// GCC 12 reports false -Wmaybe-uninitialized warnings inside Eigen's AVX-512 packing
// (_mm512_undefined_pd); they fire at instantiation, so files that run Eigen GEMMs silence it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>

namespace mq::cpu {

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MapMat = Eigen::Map<RowMat<T>>;
template <class T>
using CMapMat = Eigen::Map<const RowMat<T>>;

}  // namespace mq::cpu
