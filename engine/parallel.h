#pragma once
// Thread count of the CPU backend (OpenMP). Defaults to the number of cores.
namespace mq {
void set_num_threads(int n);
int num_threads();
}  // namespace mq
