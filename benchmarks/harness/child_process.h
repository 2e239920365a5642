#pragma once
// Benchmarks that time OpenBLAS run it in a child process: OpenBLAS picks its kernel from
// OPENBLAS_CORETYPE when it loads, and the environment forces one (Haswell), so only a fresh
// process without that variable shows the kernel it would choose itself.
#include <string>
#include <vector>

namespace mq::bench {

// Runs `self` (argv[0]) again with `args` and returns what it printed on standard output, with
// a line naming the failure appended when it did not exit 0. `without_openblas_kernel` unsets
// OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE in the child only.
std::string run_self(const char* self, const std::vector<std::string>& args,
                     bool without_openblas_kernel);

}  // namespace mq::bench
