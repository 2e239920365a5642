#include "engine/parallel.h"

#include <omp.h>

#include "kernels/base/error.h"

namespace mq {
void set_num_threads(int n) {
  MQ_CHECK(n >= 1 && n <= 1024, "thread count must be in 1..1024, got {}", n);
  omp_set_num_threads(n);
}
int num_threads() { return omp_get_max_threads(); }
}  // namespace mq
