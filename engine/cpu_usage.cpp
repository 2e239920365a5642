#include "engine/cpu_usage.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>

namespace mq {

std::optional<CpuSample> sample_cpu() {
  std::ifstream stat("/proc/stat");
  std::string label;
  // cpu user nice system idle iowait irq softirq steal (guest time is inside user already)
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (!(stat >> label >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) ||
      label != "cpu")
    return std::nullopt;
  const long ticks = sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return std::nullopt;
  timespec own{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &own) != 0) return std::nullopt;
  CpuSample s;
  s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
                 .count();
  s.busy_s = (user + nice + system + irq + softirq + steal) / double(ticks);
  s.idle_s = (idle + iowait) / double(ticks);
  s.process_s = double(own.tv_sec) + 1e-9 * double(own.tv_nsec);
  return s;
}

CpuUsage cpu_usage_between(const CpuSample& earlier, const CpuSample& later) {
  const double wall = later.wall_s - earlier.wall_s;
  if (wall <= 0) return {};
  const double busy = later.busy_s - earlier.busy_s;
  const double own = later.process_s - earlier.process_s;
  return {std::max(0.0, busy - own) / wall, std::max(0.0, later.idle_s - earlier.idle_s) / wall};
}

}  // namespace mq
