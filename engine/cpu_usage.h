#pragma once
// How busy the machine's cores are, and with whose work: the whole machine's CPU time
// (/proc/stat) against this process's own (CLOCK_PROCESS_CPUTIME_ID). The thread governor asks
// it whether another process is using cores (worth trying fewer threads) or whether cores sit
// idle (worth trying more), so that a quiet machine is never probed.
#include <optional>

namespace mq {

struct CpuSample {
  double wall_s = 0;     // steady clock
  double busy_s = 0;     // all cores' non-idle time, whole machine
  double idle_s = 0;     // all cores' idle time
  double process_s = 0;  // this process's CPU time, all its threads
};

// nullopt where /proc/stat cannot be read (not Linux, a restricted sandbox).
std::optional<CpuSample> sample_cpu();

struct CpuUsage {
  double others_cores = 0;  // cores' worth of time that other processes used
  double idle_cores = 0;    // cores' worth of idle time
};
// Between two samples (later minus earlier); zeros when no wall time passed.
CpuUsage cpu_usage_between(const CpuSample& earlier, const CpuSample& later);

}  // namespace mq
