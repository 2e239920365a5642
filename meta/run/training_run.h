#pragma once
// A whole training run as library code (what `mqtrain pretrain|quantize` runs): data, model and
// trainer from the settings, the epoch loop with test evaluation, the reference's logs, a
// checkpoint after every epoch, the lr schedule, resume, and the divergence message that names
// the last good checkpoint. The tool parses flags and draws the progress bar through the hooks.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/dist/communicator.h"
#include "engine/io/npy.h"
#include "meta/train_loop.h"
#include "models/model.h"

namespace mq {

struct RunSettings {
  // model and data
  std::string model = "resnet20";  // a name of the zoo (models/zoo.h), any case
  std::string dataset = "synthetic", data_dir;
  std::string device = "auto";
  bool tf32 = false;
  int batch = 128, epochs = 100;
  uint64_t seed = 1;            // trial t uses seed + t
  int64_t train_subset = 0;     // > 0: the first N training images only
  // optimization
  double lr = 1e-3;
  std::string optimizer = "SGD", lr_adjust = "30";
  // quantization; quantized = false trains full precision
  bool quantized = false;
  std::string backward = "MultiFC";  // ste|MultiFC|FC-Grad|LSTMFC
  std::string quantizer = "dorefa", meta_act = "none";
  int bits = 1, hidden = 100, num_fc = 3;
  bool meta_lr_follows_lr = false;
  std::string pretrained;  // starting state: .npy directory, mq checkpoint or .pth
  // the run's files
  std::string results = "Results", run_name, save_dir;
  bool resume = false;
  int trials = 1;  // names the run directories and save directories of a multi-trial run
  // data parallel (docs/distributed.md): micro-batches per step on each rank, and how often
  // (steps) the ranks compare parameter checksums (0: never)
  int accumulate = 1, check_sync = 0;
  // CPU threads: keep every step on all of them even while another process holds a core
  // (default: a single-process CPU run times its steps and runs on fewer threads while that is
  // faster, engine/thread_governor.h; the results are the same either way)
  bool fixed_threads = false;
};

struct RunHooks {
  std::function<void(int epoch, int epochs)> epoch_start;
  // After every training iteration (logged): its report, the iterations done so far.
  std::function<void(const StepReport&, int64_t iterations, Model& model)> after_step;
};

struct RunResult {
  double best = 0;               // best test accuracy, percent
  std::vector<double> test_acc;  // per epoch
  std::vector<double> train_loss;  // per epoch (may be shorter after a resume of an old run)
};

// Trains trial `trial` (seed + trial) to the end, or continues it with settings.resume.
// Prints the run's header, one line per epoch and the final accuracy to stdout. Everything that
// can be checked before training is checked first (validate_run_settings, check_run_paths, the
// data and the model); then the run directory is claimed and locked (meta/run/run_lock.h: a busy
// run is refused). `--resume` of a run killed before its first checkpoint starts it afresh.
// With a communicator of N ranks, every rank calls it alike and they train the run together
// (meta/data_parallel.h): rank 0 writes the run directory, the logs, the checkpoints and --save
// and prints; the others read the checkpoint when resuming (so --results must be a file system
// all ranks see).
RunResult run_training(const RunSettings& settings, int trial, const RunHooks& hooks = {},
                       Communicator& comm = single_process());

// The settings alone, without touching a file: every value in its range and every name known,
// or mq::Error naming the flag. Cheap (no data, no model).
void validate_run_settings(const RunSettings& settings);

// What the run will read and write, before it trains: --pretrained exists (when not resuming),
// --save and --results can be created and written (an existing file there is refused; an
// existing --save directory is replaced at the end). Probes by creating and removing a file.
void check_run_paths(const RunSettings& settings);

// Limits of the settings (the command line's ranges; validate_run_settings enforces them).
// --hidden: the paper uses 100; the meta network keeps hidden floats per weight, so beyond 4096
// (lstm_bench's range) a ResNet20 needs more than 4 GB per meta layer.
inline constexpr int kMaxBatch = 65536, kMaxEpochs = 100000, kMaxTrials = 1000;
inline constexpr int kMaxAccumulate = 4096;
inline constexpr int kMaxHidden = 4096, kMinNumFc = 2, kMaxNumFc = 64;
inline constexpr size_t kMaxRunName = 200;  // a file name, with room for "-trialN-K"

// Mean and variance of the best and of the last-10-epoch test accuracies over trials, as the
// reference reports them.
struct TrialSummary {
  double best_mean = 0, best_var = 0, last10_mean = 0, last10_var = 0;
};
TrialSummary summarize_trials(const std::vector<RunResult>& results);

// The reference's place for a pretrained model, without extension:
// <results>/<model>-<dataset>/<model>-<dataset>-pretrain. `pretrain` saves there (a .npy
// directory) when given no --save; `quantize` without --pretrained starts from <that>.pth (the
// reference's file) or <that>/ when one exists (default_pretrained_state), else from random
// weights.
std::string default_pretrained_base(const RunSettings& settings);
std::string default_pretrained_state(const RunSettings& settings);  // "" when there is none

// Test accuracy (percent) of the state at settings.pretrained, quantized or not.
double evaluate_saved_model(const RunSettings& settings, size_t* images = nullptr);

// A model state from a directory of .npy files, an mq checkpoint or a PyTorch .pth file.
TensorMap load_model_state(const std::string& path);
// Resolves a device name and applies device-wide settings (TF32). Under an MPI launcher,
// "cuda" and "auto" pick the GPU of the rank's local rank (one GPU per rank).
Device select_device(const std::string& name, bool tf32);

}  // namespace mq
