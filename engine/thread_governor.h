#pragma once
// Chooses the CPU thread count of each training step from the steps' measured times.
//
// A step is hundreds of parallel regions, and each one ends when its slowest thread does. When
// another process holds one of the cores, the thread that shares it is away for whole scheduler
// time slices, and every region it is in waits for it: on a 2-core machine beside one busy
// process, 2 threads train at about half the speed of 1. Training is byte-identical at any thread
// count (tests/test_thread_invariance.cpp), so the count is free to change between steps: the
// governor times the steps (per image), tries the other counts, and runs the one that is fastest
// now.
//
// It tries only when something says it may pay (engine/cpu_usage.h): at all threads, when other
// processes use cores; below, when cores sit idle. So a quiet machine is never probed. Then at
// once when that sign appears or the time per image has moved by a quarter, otherwise after a
// pause that doubles (4 s up to 32 s) while the choice holds. A tried count that is clearly slower is dropped after one
// step. Without /proc/stat it goes by the times alone.
#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "engine/cpu_usage.h"

namespace mq {

class ThreadGovernor {
 public:
  using Sampler = std::function<std::optional<CpuSample>()>;

  // Counts tried: max_threads, max_threads - 1, then halves down to 1. max_threads <= 1 governs
  // nothing. `sampler` reads the machine's CPU use (tests pass their own).
  explicit ThreadGovernor(int max_threads, Sampler sampler = sample_cpu);
  ~ThreadGovernor();  // leaves max_threads set, as it found it
  ThreadGovernor(const ThreadGovernor&) = delete;
  ThreadGovernor& operator=(const ThreadGovernor&) = delete;

  // Around each training step: step_begin sets the thread count for it (mq::set_num_threads);
  // step_end takes the images the step trained.
  void step_begin();
  void step_end(int64_t images);

  int threads() const { return current_; }
  int max_threads() const { return candidates_.empty() ? 1 : candidates_.front(); }
  // Changes of the count so far (a probe that keeps the count is not one), and probes.
  int changes() const { return changes_; }
  int probes() const { return probes_; }

 private:
  using Clock = std::chrono::steady_clock;
  void start_probe();
  void finish_probe();
  void use(int threads);
  void after_steady_step(double s_per_image);
  bool probe_may_pay() const;  // from the CPU use of the last steps

  Sampler sampler_;
  std::vector<int> candidates_;  // descending
  int current_ = 1;
  int changes_ = 0, probes_ = 0;
  Clock::time_point step_start_{}, last_probe_{};
  double ref_s_per_image_ = 0;     // the current count's time when it was chosen; 0: not yet
  std::vector<double> recent_;     // the current count's last steps (seconds per image)
  std::deque<CpuSample> samples_;  // at the ends of the last steady steps
  bool have_sampler_ = true;       // false once the sampler found nothing
  bool may_paid_ = false;          // probe_may_pay() at the last steady step
  int warmup_left_ = 2;            // first steps: caches and buffers fill, not timed
  double pause_s_ = 0;             // before the next periodic probe

  struct Trial {  // one count's steps in a probe
    int threads = 1;
    double seconds = 0;  // per image, summed over the steps
    int steps = 0;
    double mean() const { return steps ? seconds / steps : 0; }
  };
  bool probing_ = false;
  std::vector<Trial> probe_;  // the current count first
  size_t probe_index_ = 0;
  std::vector<int> seen_;  // counts that have run a step (their caches are built)
};

}  // namespace mq
