#include "engine/thread_governor.h"

#include <algorithm>

#include "engine/parallel.h"

namespace mq {

namespace {
// Steps per count in a probe, averaged: under load a 2-thread step takes anything from 0.9x to
// 3x the 1-thread one, so the fastest of a few would pick it by luck.
constexpr int kProbeSteps = 3;
constexpr double kClearlySlower = 1.4;  // a tried count this much slower than the current: stop it
constexpr size_t kWindow = 5;         // steady steps whose median is watched
constexpr double kMoved = 1.25;       // median / reference beyond this (either way): probe now
constexpr double kKeepMargin = 1.03;  // another count must be this much faster to replace
constexpr double kMinPause = 4, kMaxPause = 32;  // seconds between periodic probes
constexpr double kOthersBusy = 0.3;  // cores other processes use: fewer threads may pay
constexpr double kIdle = 0.5;        // idle cores: more threads may pay

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

ThreadGovernor::ThreadGovernor(int max_threads, Sampler sampler) : sampler_(std::move(sampler)) {
  if (max_threads <= 1) return;
  candidates_.push_back(max_threads);
  if (max_threads > 2) candidates_.push_back(max_threads - 1);
  for (int t = max_threads / 2; t >= 1; t /= 2)
    if (t < candidates_.back()) candidates_.push_back(t);
  current_ = max_threads;
  seen_.push_back(max_threads);
  last_probe_ = Clock::now();
}

ThreadGovernor::~ThreadGovernor() {
  if (!candidates_.empty()) use(candidates_.front());
}

void ThreadGovernor::use(int threads) {
  if (threads != num_threads()) set_num_threads(threads);
}

void ThreadGovernor::step_begin() {
  if (candidates_.empty()) return;
  use(probing_ ? probe_[probe_index_].threads : current_);
  step_start_ = Clock::now();
}

// The current count first (its steps cost nothing extra), then the others.
void ThreadGovernor::start_probe() {
  probing_ = true;
  ++probes_;
  probe_index_ = 0;
  probe_.assign(1, Trial{current_});
  for (int t : candidates_)
    if (t != current_) probe_.push_back(Trial{t});
}

void ThreadGovernor::finish_probe() {
  probing_ = false;
  const Trial* fastest = &probe_[0];
  for (const Trial& t : probe_)
    if (t.mean() < fastest->mean()) fastest = &t;
  if (probe_[0].mean() > kKeepMargin * fastest->mean()) {
    current_ = fastest->threads;
    ++changes_;
    pause_s_ = kMinPause;
  } else {
    pause_s_ = std::clamp(2 * pause_s_, kMinPause, kMaxPause);
  }
  ref_s_per_image_ = 0;  // set again from the steady steps that follow
  recent_.clear();
  samples_.clear();
  last_probe_ = Clock::now();
}

bool ThreadGovernor::probe_may_pay() const {
  if (!have_sampler_) return true;
  const CpuUsage u = cpu_usage_between(samples_.front(), samples_.back());
  return current_ == max_threads() ? u.others_cores >= kOthersBusy : u.idle_cores >= kIdle;
}

void ThreadGovernor::step_end(int64_t images) {
  if (candidates_.empty() || images <= 0) return;
  const double s_per_image =
      std::chrono::duration<double>(Clock::now() - step_start_).count() / double(images);
  if (warmup_left_ > 0) {
    --warmup_left_;
    return;
  }
  if (probing_) {
    Trial& trial = probe_[probe_index_];
    // A count's first step ever builds its per-thread-count caches (oneDNN's plans): untimed.
    if (std::find(seen_.begin(), seen_.end(), trial.threads) == seen_.end()) {
      seen_.push_back(trial.threads);
      return;
    }
    trial.seconds += s_per_image;
    ++trial.steps;
    const bool clearly_slower =
        probe_index_ > 0 && trial.mean() > kClearlySlower * probe_[0].mean();
    if (trial.steps < kProbeSteps && !clearly_slower) return;
    if (++probe_index_ == probe_.size()) finish_probe();
    return;
  }
  after_steady_step(s_per_image);
}

void ThreadGovernor::after_steady_step(double s_per_image) {
  if (have_sampler_) {
    if (std::optional<CpuSample> now = sampler_()) {
      samples_.push_back(*now);
      if (samples_.size() > kWindow + 1) samples_.pop_front();
    } else {
      have_sampler_ = false;
    }
  }
  recent_.push_back(s_per_image);
  if (recent_.size() > kWindow) recent_.erase(recent_.begin());
  if (ref_s_per_image_ == 0) {
    if (recent_.size() < 3) return;
    ref_s_per_image_ = median(recent_);
  }
  if (have_sampler_ && samples_.size() < 2) return;  // no reading yet since the last probe
  const bool may_pay = probe_may_pay(), newly = may_pay && !may_paid_;
  may_paid_ = may_pay;
  if (!may_pay) return;
  const double ratio = median(recent_) / ref_s_per_image_;
  if (newly || (recent_.size() == kWindow && (ratio > kMoved || ratio < 1 / kMoved))) {
    pause_s_ = 0;  // load came or went: try now
    return start_probe();
  }
  const double since = std::chrono::duration<double>(Clock::now() - last_probe_).count();
  if (since >= pause_s_) start_probe();
}

}  // namespace mq
