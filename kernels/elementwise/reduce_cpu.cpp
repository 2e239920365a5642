#include <cmath>

#include "kernels/elementwise/reduce.h"

namespace mq::kernels {

template <class T>
T sum_cpu(const T* x, int64_t n) {
  // Accumulate in double: the result is order-robust for any thread count.
  // Small n without an OpenMP region (even an if(false) one costs ~1.3 us): the same sequential
  // order a one-thread region has.
  double total = 0;
  if (n <= (1 << 16)) {
    for (int64_t i = 0; i < n; ++i) total += x[i];
    return static_cast<T>(total);
  }
#pragma omp parallel for reduction(+ : total) schedule(static)
  for (int64_t i = 0; i < n; ++i) total += x[i];
  return static_cast<T>(total);
}

template <class T>
T max_abs_cpu(const T* x, int64_t n) {
  T m = 0;
  if (n <= (1 << 16)) {  // as sum_cpu: no region, a one-thread region's order
    for (int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(x[i]));
    return m;
  }
#pragma omp parallel for reduction(max : m) schedule(static)
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(x[i]));
  return m;
}

template <class T>
void max_abs_backward_cpu(const T* x, int64_t n, T max_value, T grad_out, T* grad_in) {
  int64_t ties = 0;
  for (int64_t i = 0; i < n; ++i) ties += std::abs(x[i]) == max_value;
  T share = ties ? grad_out / static_cast<T>(ties) : T(0);
  for (int64_t i = 0; i < n; ++i)
    grad_in[i] = std::abs(x[i]) == max_value ? share * static_cast<T>((x[i] > 0) - (x[i] < 0)) : T(0);
}

#define MQ_INSTANTIATE(T)                                 \
  template T sum_cpu<T>(const T*, int64_t);               \
  template T max_abs_cpu<T>(const T*, int64_t);           \
  template void max_abs_backward_cpu<T>(const T*, int64_t, T, T, T*);
MQ_INSTANTIATE(float)
MQ_INSTANTIATE(double)
#undef MQ_INSTANTIATE

}  // namespace mq::kernels
