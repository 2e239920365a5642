#include "meta/run/training_run.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "data/registry.h"
#include "engine/cuda/cuda_api.h"
#include "engine/dist/job.h"
#include "engine/io/checkpoint.h"
#include "engine/io/file.h"
#include "engine/io/pth.h"
#include "engine/optim/optimizer.h"
#include "engine/parallel.h"
#include "meta/quantized_layers.h"
#include "models/zoo.h"
#include "meta/run/run_checkpoint.h"
#include "meta/run/run_lock.h"
#include "meta/run/run_log.h"
#include "meta/data_parallel.h"
#include "meta/trainers.h"

namespace mq {
namespace {

std::string mode_name(const RunSettings& s, const QuantSpec& spec) {
  if (!s.quantized) return "full precision";
  return s.backward == "ste" ? spec_str(spec) + ", STE" : spec_str(spec) + ", MetaQuant " + s.backward;
}

void check_pretrained_exists(const std::string& path) {
  std::error_code ec;
  const bool found = std::filesystem::exists(path, ec);
  MQ_CHECK(found, "--pretrained {}: no such file or directory{}", path,
           ec && ec != std::errc::no_such_file_or_directory ? " (" + ec.message() + ")" : "");
}

bool uses_meta(const RunSettings& s) { return s.quantized && s.backward != "ste"; }

// What a resumed run must share with the checkpoint (lr, epochs and device may change).
// batch_slices: ranks x --accumulate, the slicing of every batch (meta/data_parallel.h); the
// same slicing over other ranks (-np 2 for --accumulate 2) computes the same run.
nlohmann::json run_identity(const RunSettings& s, const std::string& mode, uint64_t seed,
                            int batch_slices) {
  nlohmann::json id = {{"model", s.model}, {"dataset", s.dataset}, {"mode", mode},
                       {"optimizer", s.optimizer}, {"lr_adjust", s.lr_adjust},
                       {"batch", s.batch}, {"seed", seed}, {"train_subset", s.train_subset},
                       {"batch_slices", batch_slices}};
  if (uses_meta(s)) {
    id["hidden"] = s.hidden;
    id["meta_act"] = s.meta_act;
    if (parse_meta_kind(s.backward) == MetaKind::multi_fc) id["num_fc"] = s.num_fc;
    id["meta_lr_follows_lr"] = s.meta_lr_follows_lr;
  }
  return id;
}

std::string run_dir_name(const RunSettings& s, const QuantSpec& spec, uint64_t seed, int trial) {
  if (!s.run_name.empty())
    return s.trials > 1 ? fmt::format("{}-trial{}", s.run_name, trial) : s.run_name;
  return fmt::format("{}-{}-{}-seed{}", s.quantized ? s.backward : "fp",
                     s.quantized ? spec_str(spec) : "32bit", s.optimizer, seed);
}

}  // namespace

namespace {
// The reference's second name of a weight (kReferenceWeightAlias) holds the weight itself, so it
// is dropped rather than refused as an unexpected key.
TensorMap without_weight_aliases(TensorMap state) {
  const std::string_view suffix = kReferenceWeightAlias;
  for (auto it = state.begin(); it != state.end();) {
    const std::string& key = it->first;
    auto weight = key.ends_with(suffix)
                      ? state.find(key.substr(0, key.size() - suffix.size()) + ".weight")
                      : state.end();
    it = weight != state.end() && weight->second.shape() == it->second.shape() ? state.erase(it)
                                                                              : std::next(it);
  }
  return state;
}
}  // namespace

TensorMap load_model_state(const std::string& path) {
  namespace fs = std::filesystem;
  check_pretrained_exists(path);
  std::error_code ec;
  if (fs::is_directory(path, ec)) return without_weight_aliases(load_npy_dir(path, ""));
  if (path.ends_with(".pth") || path.ends_with(".pt") || path.ends_with(".tar"))
    return without_weight_aliases(load_pth(path));
  return load_checkpoint(path).tensors;
}

Device select_device(const std::string& name, bool tf32) {
  Device device = Device::parse(name);
  // One GPU per rank: under a launcher, "cuda" and "auto" mean this rank's GPU on its node
  // (the local rank, modulo the visible devices); cuda:N is taken as given.
  if (device.is_cuda() && (name == "cuda" || name == "auto") && launcher_world_size() > 1)
    device.index = launcher_local_rank().rank % std::max(1, cuda::device_count());
  if (device.is_cuda()) cuda::set_allow_tf32(tf32);
  return device;
}

namespace {

// `flag value` refused unless within [lo, hi].
template <class T>
void check_range(const char* flag, T value, T lo, T hi) {
  MQ_CHECK(value >= lo && value <= hi, "{} {}: expected {}..{}", flag, value, lo, hi);
}

// Paths and names longer than the file system takes are refused up front, naming the flag.
void check_length(const char* flag, const std::string& value, size_t limit) {
  MQ_CHECK(value.size() <= limit, "{}: {} bytes is too long (at most {})", flag, value.size(),
           limit);
}

// Creates and removes a file in `dir`: the one test of "writable" that also holds for root, for
// read-only mounts and for ACLs.
void probe_writable(const std::filesystem::path& dir, const char* flag, const std::string& value) {
  static std::atomic<uint64_t> counter{0};
  const std::string probe = (dir / fmt::format(".mq-write-probe.{}.{}",
                                               static_cast<long>(::getpid()), counter++)).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  MQ_CHECK(fd >= 0, "{} {}: cannot write in {} ({}); choose a writable place", flag, value,
           dir.string(), std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

// Not there (a file on the way, ENOTDIR, is found when the walk up reaches it).
bool missing(const std::error_code& ec) {
  return ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory;
}

// An output directory (--save, --results): refused when a file (or anything not a directory)
// is in its place or on its way, or when the directory it will be created in (or replaced in)
// is not writable.
void check_output_directory(const char* flag, const std::string& value) {
  namespace fs = std::filesystem;
  std::string text = value;
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  const fs::path target = text.empty() ? fs::path(".") : fs::path(text);
  std::error_code ec;
  const fs::file_status st = fs::status(target, ec);
  MQ_CHECK(!ec || missing(ec), "{} {}: cannot look at it: {}", flag, value, ec.message());
  if (fs::exists(st)) {
    MQ_CHECK(fs::is_directory(st), "{} {}: exists and is not a directory; remove it or choose "
             "another place", flag, value);
    probe_writable(target, flag, value);
  }
  // Where it is created or replaced: its parent, or the nearest ancestor that exists.
  auto parent = [](const fs::path& p) {
    return p.has_parent_path() ? p.parent_path() : p.is_absolute() ? p : fs::path(".");
  };
  fs::path place = parent(target);
  for (;;) {
    const fs::file_status ps = fs::status(place, ec);
    MQ_CHECK(!ec || missing(ec), "{} {}: cannot look at {}: {}", flag, value, place.string(),
             ec.message());
    if (fs::exists(ps)) {
      MQ_CHECK(fs::is_directory(ps), "{} {}: {} is not a directory", flag, value, place.string());
      break;
    }
    const fs::path up = parent(place);
    MQ_CHECK(up != place, "{} {}: no existing directory on its path", flag, value);
    place = up;
  }
  probe_writable(place, flag, value);
}

}  // namespace

void validate_run_settings(const RunSettings& s) {
  // The library's own checks, their messages prefixed with the flag the value came from.
  auto named = [](const char* flag, auto&& check) {
    try {
      check();
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.starts_with(flag)) throw;
      fail("{}: {}", flag, what);
    }
  };
  check_length("--model", s.model, 64);
  MQ_CHECK(has_model(s.model), "--model '{}': not a model of the zoo; choose one of {}", s.model,
           model_list());
  check_length("--dataset", s.dataset, 256);
  named("--dataset", [&] { dataset_classes(s.dataset); });  // the name, synthetic:N's count
  check_length("--device", s.device, 64);
  named("--device", [&] { Device::parse(s.device); });
  check_range("--batch-size", s.batch, 1, kMaxBatch);
  check_range("--epochs", s.epochs, 1, kMaxEpochs);
  check_range("--trials", s.trials, 1, kMaxTrials);
  check_range("--accumulate", s.accumulate, 1, kMaxAccumulate);
  check_range("--check-sync", s.check_sync, 0, 1 << 30);
  MQ_CHECK(s.train_subset >= 0, "--train-subset {}: expected a positive image count",
           s.train_subset);
  MQ_CHECK(std::isfinite(s.lr) && s.lr > 0, "--lr {}: expected a positive finite number", s.lr);
  check_length("--optimizer", s.optimizer, 64);
  named("--optimizer", [&] { make_optimizer(s.optimizer, {}, s.lr, false); });
  check_length("--lr-adjust", s.lr_adjust, 64);
  named("--lr-adjust", [&] { LrSchedule::parse(s.lr_adjust); });
  check_length("--quantize", s.quantizer, 64);
  named("--quantize", [&] { parse_quantizer(s.quantizer); });
  named("--bits", [&] { validate(QuantSpec{parse_quantizer(s.quantizer), s.bits}); });
  if (s.quantized) {
    check_length("--backward", s.backward, 64);
    if (s.backward != "ste") {
      named("--backward", [&] { parse_meta_kind(s.backward); });
      check_length("--meta-act", s.meta_act, 64);
      named("--meta-act", [&] { parse_meta_act(s.meta_act); });
      check_range("--hidden", s.hidden, 1, kMaxHidden);
      check_range("--nfc", s.num_fc, kMinNumFc, kMaxNumFc);
    }
  }
  if (!s.run_name.empty()) {
    check_length("--run", s.run_name, kMaxRunName);
    check_plain_name(s.run_name, "--run");
  }
  for (const auto& [flag, path] : {std::pair{"--results", &s.results}, {"--save", &s.save_dir},
                                   {"--data", &s.data_dir}, {"--pretrained", &s.pretrained}})
    check_length(flag, *path, 4000);
  MQ_CHECK(!s.results.empty(), "--results is empty; it names the root of the run logs");
}

void check_run_paths(const RunSettings& s) {
  if (!s.pretrained.empty() && !s.resume) check_pretrained_exists(s.pretrained);
  // --results first: the default --save lies inside it.
  check_output_directory("--results", s.results);
  if (!s.save_dir.empty()) check_output_directory("--save", s.save_dir);
}

RunResult run_training(const RunSettings& s, int trial, const RunHooks& hooks, Communicator& comm) {
  validate_run_settings(s);
  const bool lead = comm.rank() == 0;  // writes the run's files
  if (lead) check_run_paths(s);
  // An MPI job of one rank keeps its communicator (mpirun -np 1 exercises the reduce path).
  const DataParallel parallel{&comm == &single_process() ? nullptr : &comm, s.accumulate,
                              s.check_sync};
  const uint64_t seed = s.seed + trial;
  const Device device = select_device(s.device, s.tf32);
  const int classes = dataset_classes(s.dataset);
  Dataset train_set = load_dataset(s.dataset, s.data_dir, Split::train);
  MQ_CHECK(s.train_subset <= 0 || size_t(s.train_subset) <= train_set.size(),
           "--train-subset {}: the training set of {} has only {} images; use at most {}",
           s.train_subset, s.dataset, train_set.size(), train_set.size());
  if (s.train_subset > 0) train_set.keep_first(size_t(s.train_subset));
  check_slices_fill(s.batch, int64_t(train_set.size()), parallel);
  Dataset test_set = load_dataset(s.dataset, s.data_dir, Split::test);
  const Normalization norm = dataset_normalization(s.dataset);
  DataLoader train(train_set, {.batch = size_t(s.batch), .shuffle = true, .augment = true,
                               .augmentation = {}, .seed = seed, .normalization = norm,
                               .part = parallel.rank(), .parts = parallel.ranks()});
  DataLoader test(test_set, {.batch = size_t(s.batch), .shuffle = false, .augment = false,
                             .augmentation = {}, .seed = seed, .normalization = norm});
  const QuantSpec spec{parse_quantizer(s.quantizer), s.bits};
  QuantizedLayerFactory qfactory(spec);
  const LayerFactory& factory = s.quantized ? qfactory : default_layer_factory();
  const std::unique_ptr<Model> built =
      make_model(s.model, {.classes = classes, .in_channels = train_set.channels,
                           .height = train_set.height, .width = train_set.width,
                           .layers = &factory}, seed);
  Model& model = *built;
  MQ_CHECK(!s.quantized || !quantized_layers(model).empty(),
           "--model {}: the model has no quantized layer, so quantize would train it in full "
           "precision; its builder must make its convs and linears with the LayerFactory of "
           "ModelArgs (docs/custom-models.md)", s.model);
  if (!s.pretrained.empty() && !s.resume) model.load_state_dict(load_model_state(s.pretrained), true);

  // Only now, with data and model ready, the run directory: claimed (a new one) and locked, by
  // rank 0, which tells the others its name and whether there is a checkpoint to resume from.
  std::string dir;
  std::unique_ptr<RunLock> lock;
  std::error_code ec;
  std::string shared;
  if (lead) {
    dir = claim_run_directory(s.results, s.model, s.dataset, run_dir_name(s, spec, seed, trial),
                              s.resume);
    lock = std::make_unique<RunLock>(dir);
    remove_stale_temporaries(dir);
    const bool found = s.resume && std::filesystem::exists(dir + "/" + kRunCheckpointName, ec);
    shared = (found ? "1" : "0") + dir;
  }
  comm.broadcast(shared, 0);
  dir = shared.substr(1);
  const std::string checkpoint = dir + "/" + kRunCheckpointName;
  const bool from_checkpoint = shared[0] == '1';
  if (s.resume && !from_checkpoint) {
    // Killed before its first checkpoint: nothing to keep, so the run starts again in place.
    std::printf("mqtrain: %s has no checkpoint yet (the run stopped before its first epoch "
                "ended): starting it from the first epoch\n", dir.c_str());
    if (!s.pretrained.empty()) model.load_state_dict(load_model_state(s.pretrained), true);
  }
  model.to(device);

  std::unique_ptr<MetaNet> meta;
  std::unique_ptr<QuantTrainer> trainer;
  if (uses_meta(s)) {
    meta = std::make_unique<MetaNet>(MetaNetConfig{parse_meta_kind(s.backward), s.hidden, s.num_fc,
                                                   parse_meta_act(s.meta_act)},
                                     seed);
    meta->to(device);
    trainer = std::make_unique<MetaQuantTrainer>(
        model, *meta, MetaQuantOptions{s.optimizer, s.lr, 1e-3, s.meta_lr_follows_lr});
  } else {
    trainer = std::make_unique<SteTrainer>(model, s.optimizer, s.lr);  // FP when not quantized
  }
  trainer->set_parallel(parallel);
  const std::string what = mode_name(s, spec);
  const nlohmann::json identity = run_identity(s, what, seed, parallel.slices());
  nlohmann::json config = identity;
  config.update({{"lr", s.lr}, {"epochs", s.epochs}, {"device", device.str()},
                 {"pretrained", s.pretrained}, {"ranks", parallel.ranks()},
                 {"accumulate", parallel.accumulate}});
  RunProgress progress;
  progress.lr = s.lr;
  if (from_checkpoint) {
    progress = load_run_checkpoint(checkpoint, model, *trainer, identity);
    trainer->set_lr(progress.lr);
    std::printf("mqtrain: resuming %s after epoch %d (lr %g)\n", dir.c_str(),
                progress.epochs_done, progress.lr);
  }
  std::unique_ptr<RunLog> log;
  if (lead) log = std::make_unique<RunLog>(dir, config, progress.iterations, progress.epochs_done);
  const std::string slicing =
      parallel.slices() == 1 ? std::string()
                             : fmt::format(" ({} rank(s) x {} micro-batch(es), {})", parallel.ranks(),
                                           parallel.accumulate, comm.describe());
  std::printf("mqtrain: %s, %s on %s (%zu train / %zu test), %s lr %g, batch %d%s, %d epochs, "
              "device %s, %d threads; logs in %s\n",
              s.model.c_str(), what.c_str(), s.dataset.c_str(), train_set.size(), test_set.size(),
              s.optimizer.c_str(), progress.lr, s.batch, slicing.c_str(), s.epochs,
              device.str().c_str(), num_threads(), dir.c_str());
  LrSchedule schedule = LrSchedule::parse(s.lr_adjust);
  schedule.restore(progress.schedule);
  // Ranks of a data-parallel job wait for each other, so their step times say little about
  // their own cores: only a single CPU process governs its thread count.
  std::unique_ptr<ThreadGovernor> governor;
  if (!s.fixed_threads && device.is_cpu() && comm.size() == 1)
    governor = std::make_unique<ThreadGovernor>(num_threads());
  int64_t iter = progress.iterations;
  const int first_epoch = progress.epochs_done;
  bool stop = progress.finished && progress.epochs_done >= s.epochs;
  for (int e = progress.epochs_done; e < s.epochs && !stop; ++e) {
    if (hooks.epoch_start) hooks.epoch_start(e, s.epochs);
    const double lr = trainer->lr();
    const struct {
      int64_t iterations;
      CommStats comm;
    } before{iter, comm.stats()};
    auto on_step = [&](const StepReport& r) {
      if (log) log->iteration(iter, r.running_loss, r.running_acc, lr);
      ++iter;
      if (hooks.after_step) hooks.after_step(r, iter, model);
    };
    EpochResult r;
    try {
      r = train_epoch(*trainer, train, device, e, on_step, governor.get());
    } catch (const Error& err) {
      try {
        if (log) log->flush();  // the lines so far, for the user (the checkpoint does not cover them)
      } catch (const Error&) {
      }
      if (progress.epochs_done == 0) throw;
      fail("{}\nthe last good checkpoint (after epoch {}) is kept in {}; `--resume` continues "
           "from it", err.what(), progress.epochs_done, checkpoint);
    }
    const CommStats reduced = comm.stats();
    const double acc = evaluate(model, test, device, parallel.comm);
    progress.best = std::max(progress.best, acc);
    progress.test_acc.push_back(acc);
    if (progress.train_loss.size() + 1 == progress.test_acc.size())
      progress.train_loss.push_back(r.loss);
    std::printf("epoch %d/%d: train loss %.4f, train acc %.2f%%, test acc %.2f%% (best %.2f%%), "
                "%.0f images/s, lr %g\n",
                e + 1, s.epochs, r.loss, r.acc, acc, progress.best, r.images_per_s, lr);
    if (parallel.comm && reduced.calls > before.comm.calls) {
      // The collectives' share of the epoch's training steps (evaluation excluded).
      const double steps = double(iter - before.iterations);
      std::printf("  collectives: %.2f MB and %.1f ms per step (%.1f%% of the step time)\n",
                  double(reduced.bytes - before.comm.bytes) / 1e6 / steps,
                  (reduced.seconds - before.comm.seconds) * 1e3 / steps,
                  100.0 * (reduced.seconds - before.comm.seconds) / std::max(r.seconds, 1e-9));
    }
    if (log)
      log->epoch(e, {{"epoch", e + 1}, {"train_loss", r.loss}, {"train_acc", r.acc},
                  {"test_acc", acc}, {"images_per_s", r.images_per_s}, {"lr", lr},
                  {"seconds", r.seconds}},
              acc);
    const double next = schedule.after_epoch(e, r.loss, lr);
    trainer->set_lr(next);
    if (LrSchedule::should_stop(next)) {
      std::printf("learning rate %g < 1e-6: stopping early\n", next);
      stop = true;
    }
    progress.epochs_done = e + 1;
    progress.iterations = iter;
    progress.lr = next;
    progress.schedule = schedule.state();
    progress.finished = stop || e + 1 == s.epochs;
    trainer->gather_state();  // on every rank: it may exchange rows of the trainer's state
    if (lead) save_run_checkpoint(checkpoint, model, *trainer, progress, identity);
  }
  if (s.resume && progress.epochs_done == first_epoch)
    std::printf("the run was already complete after %d epochs\n", progress.epochs_done);
  if (!progress.test_acc.empty())
    std::printf("final test accuracy %.2f%% (best %.2f%%)\n", progress.test_acc.back(),
                progress.best);
  if (lead && !s.save_dir.empty()) {
    const std::string out = s.trials > 1 ? s.save_dir + "/trial" + std::to_string(trial) : s.save_dir;
    std::filesystem::create_directories(out, ec);
    MQ_CHECK(!ec, "--save {}: cannot create {}: {}", s.save_dir, out, ec.message());
    model.save(out);
    std::printf("saved the model state to %s/\n", out.c_str());
  }
  return {progress.best, progress.test_acc, progress.train_loss};
}

TrialSummary summarize_trials(const std::vector<RunResult>& results) {
  auto mean_var = [](const std::vector<double>& v) {
    if (v.empty()) return std::pair{0.0, 0.0};
    const double m = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
    double s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return std::pair{m, s / double(v.size())};
  };
  std::vector<double> best, last10;
  for (const RunResult& r : results) {
    best.push_back(r.best);
    const size_t k = std::min<size_t>(10, r.test_acc.size());
    last10.insert(last10.end(), r.test_acc.end() - k, r.test_acc.end());
  }
  TrialSummary t;
  std::tie(t.best_mean, t.best_var) = mean_var(best);
  std::tie(t.last10_mean, t.last10_var) = mean_var(last10);
  return t;
}

std::string default_pretrained_base(const RunSettings& s) {
  const std::string name = s.model + "-" + s.dataset;
  return (std::filesystem::path(s.results) / name / (name + "-pretrain")).string();
}

std::string default_pretrained_state(const RunSettings& s) {
  std::error_code ec;
  const std::string base = default_pretrained_base(s);
  if (std::filesystem::is_regular_file(base + ".pth", ec)) return base + ".pth";
  if (std::filesystem::is_directory(base, ec)) return base;
  return "";
}

double evaluate_saved_model(const RunSettings& s, size_t* images) {
  MQ_CHECK(!s.pretrained.empty(), "eval: --pretrained PATH is required (.npy directory, "
           "mq checkpoint or .pth)");
  check_pretrained_exists(s.pretrained);
  const Device device = select_device(s.device, s.tf32);
  Dataset test_set = load_dataset(s.dataset, s.data_dir, Split::test);
  DataLoader test(test_set, {.batch = size_t(s.batch), .shuffle = false, .augment = false,
                             .augmentation = {}, .seed = s.seed,
                             .normalization = dataset_normalization(s.dataset)});
  QuantizedLayerFactory qfactory({parse_quantizer(s.quantizer), s.bits});
  const LayerFactory& layers = s.quantized ? qfactory : default_layer_factory();
  const std::unique_ptr<Model> model = make_model(
      s.model, {.classes = dataset_classes(s.dataset), .in_channels = test_set.channels,
                .height = test_set.height, .width = test_set.width, .layers = &layers}, s.seed);
  model->load_state_dict(load_model_state(s.pretrained), true);
  model->to(device);
  if (images) *images = test_set.size();
  return evaluate(*model, test, device);
}

}  // namespace mq
