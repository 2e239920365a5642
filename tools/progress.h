#pragma once
// Training progress for the tools: a redrawn bar with loss, accuracy, images/s and ETA on a
// terminal; a plain line every `every` batches otherwise (logs, CI).
#include <unistd.h>

#include <cstdio>
#include <string>

#include "meta/train_loop.h"

namespace mq::tools {

class Progress {
 public:
  Progress(int epoch, int epochs, size_t every = 20)
      : epoch_(epoch), epochs_(epochs), every_(every), tty_(isatty(fileno(stdout))) {}

  void update(const StepReport& s) {
    bool last = s.batch_index + 1 == s.batches;
    double per_batch = s.elapsed_s / double(s.batch_index + 1);
    double eta = per_batch * double(s.batches - s.batch_index - 1);
    if (tty_) {
      constexpr int kWidth = 24;
      int filled = int(kWidth * double(s.batch_index + 1) / double(s.batches));
      std::string bar(filled, '#');
      bar.resize(kWidth, '.');
      std::printf("\repoch %d/%d [%s] %zu/%zu loss %.4f acc %.2f%% %.0f img/s%s ETA %s ", epoch_ + 1,
                  epochs_, bar.c_str(), s.batch_index + 1, s.batches, s.running_loss,
                  s.running_acc, s.images_per_s, fewer_threads(s).c_str(), clock(eta).c_str());
      if (last) std::printf("\n");
      std::fflush(stdout);
    } else if (last || (s.batch_index + 1) % every_ == 0) {
      std::printf("epoch %d/%d batch %zu/%zu loss %.4f acc %.2f%% %.0f img/s%s ETA %s\n", epoch_ + 1,
                  epochs_, s.batch_index + 1, s.batches, s.running_loss, s.running_acc,
                  s.images_per_s, fewer_threads(s).c_str(), clock(eta).c_str());
      std::fflush(stdout);
    }
  }

 private:
  // While the thread governor runs fewer threads than allowed (other processes hold cores).
  static std::string fewer_threads(const StepReport& s) {
    if (s.threads == 0 || s.threads >= s.max_threads) return "";
    return " (" + std::to_string(s.threads) + " of " + std::to_string(s.max_threads) +
           " threads: cores busy)";
  }
  static std::string clock(double seconds) {
    int t = int(seconds + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    return buf;
  }
  int epoch_, epochs_;
  size_t every_;
  bool tty_;
};

}  // namespace mq::tools
