// mqtrain: train and evaluate (quantized) ResNets. A thin main: parse flags, call the library.
// The reference's single-dash multi-letter flags (-bs, -lr, -bw, -ad, -meta, -hidden, -nfc)
// are accepted beside the long names.
#include <CLI/CLI.hpp>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>

#include "data/registry.h"
#include "engine/cuda/cuda_api.h"
#include "engine/io/checkpoint.h"
#include "engine/io/npy.h"
#include "engine/io/pth.h"
#include "engine/optim/optimizer.h"
#include "engine/parallel.h"
#include "meta/golden_quant.h"
#include "meta/run_checkpoint.h"
#include "meta/run_log.h"
#include "meta/trainers.h"
#include "tools/progress.h"

using namespace mq;

namespace {

struct Options {
  std::string model = "resnet20", dataset = "synthetic", data_dir, device = "auto";
  int batch = 128, threads = 0, epochs = 100, trials = 1;
  uint64_t seed = 1;
  double lr = 1e-3;
  std::string optimizer = "SGD", lr_adjust = "30", save_dir, results = "Results";
  // quantize
  std::string backward = "MultiFC", quantizer = "dorefa", pretrained, meta_act = "none";
  int bits = 1, hidden = 100, num_fc = 3;
  bool meta_lr_follows = false;
  bool tf32 = false;
  // runs
  bool resume = false;
  std::string run_name;
  int64_t train_subset = 0;
};

void add_common(CLI::App& cmd, Options& o) {
  cmd.add_option("-m,--model", o.model, "resnet20|resnet32|resnet44|resnet56|resnet110 (resnet8: quick tests)")
      ->capture_default_str();
  cmd.add_option("-d,--dataset", o.dataset, "cifar10|cifar100|fashion-mnist|synthetic[:N]")
      ->capture_default_str();
  cmd.add_option("--data", o.data_dir, "dataset directory (fashion-mnist: Debian's by default)");
  cmd.add_option("--device", o.device, "cpu|cuda|cuda:N|auto")->capture_default_str();
  cmd.add_option("--batch-size", o.batch, "images per step (-bs)")
      ->check(CLI::Range(1, 65536))->capture_default_str();
  cmd.add_option("--threads", o.threads, "CPU threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd.add_option("--seed", o.seed, "drives initialization, shuffling and augmentation")
      ->capture_default_str();
  cmd.add_flag("--tf32", o.tf32, "allow TF32 tensor-core math on CUDA (off by default)");
}

// Resolves --device and applies device-wide settings.
Device select_device(const Options& o) {
  Device device = Device::parse(o.device);
  if (device.is_cuda()) cuda::set_allow_tf32(o.tf32);
  return device;
}

void add_training(CLI::App& cmd, Options& o) {
  cmd.add_option("-n,--epochs", o.epochs, "epochs")->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd.add_option("--lr", o.lr, "learning rate (-lr)")->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("-o,--optimizer", o.optimizer, "SGD|SGD-M|Adam")->capture_default_str();
  cmd.add_option("--lr-adjust", o.lr_adjust, "N (x0.1 every N epochs) or adaptive (-ad)")
      ->capture_default_str();
  cmd.add_option("--trials", o.trials, "independent runs (seeds seed..seed+N-1)")
      ->check(CLI::Range(1, 1000));
  cmd.add_option("--results", o.results, "root of the run logs")->capture_default_str();
  cmd.add_option("--run", o.run_name, "run directory name (default: from the settings and seed)");
  cmd.add_flag("--resume", o.resume,
               "continue the last run of these settings from its checkpoint (last complete epoch)");
  cmd.add_option("--train-subset", o.train_subset, "train on the first N training images only")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
}

int parse_depth(const std::string& model) {
  if (model.rfind("resnet", 0) == 0) {
    try {
      size_t used = 0;
      int d = std::stoi(model.substr(6), &used);
      if (used == model.size() - 6) return d;
    } catch (const std::exception&) {
    }
  }
  fail("--model '{}': expected resnet8, resnet20, resnet32, resnet44, resnet56 or resnet110", model);
}

// A model state from a directory of .npy files, an mq checkpoint or a PyTorch .pth file.
TensorMap load_state_any(const std::string& path) {
  namespace fs = std::filesystem;
  MQ_CHECK(fs::exists(path), "--pretrained {}: no such file or directory", path);
  if (fs::is_directory(path)) return load_npy_dir(path, "");
  if (path.ends_with(".pth") || path.ends_with(".pt") || path.ends_with(".tar")) return load_pth(path);
  return load_checkpoint(path).tensors;
}

struct TrialResult {
  double best = 0;
  std::vector<double> test_acc;
};

// Test-only fault injection (docs/cli.md): MQ_TEST_FAULT=kill@N sends SIGKILL to this process
// once N training iterations are done; nan@N turns the weights into NaN there (divergence).
struct Fault {
  enum Kind { none, kill, nan } kind = none;
  int64_t at = 0;
  static Fault from_env() {
    const char* v = std::getenv("MQ_TEST_FAULT");
    if (!v || !*v) return {};
    std::string s(v);
    size_t at = s.find('@');
    Fault f;
    try {
      f.at = at == std::string::npos ? -1 : std::stoll(s.substr(at + 1));
    } catch (const std::exception&) {
      f.at = -1;
    }
    std::string kind = s.substr(0, at);
    f.kind = kind == "kill" ? kill : kind == "nan" ? nan : none;
    MQ_CHECK(f.kind != none && f.at >= 0, "MQ_TEST_FAULT='{}': expected kill@N or nan@N", s);
    return f;
  }
  void maybe_fire(int64_t iterations_done, ResNetCifar& model) const {
    if (kind == none || iterations_done != at) return;
    if (kind == kill) {
      std::fflush(stdout);
      std::raise(SIGKILL);
    }
    for (Tensor& p : model.parameters()) p.fill_(std::nan(""));
  }
};

TrialResult run_trial(const Options& o, bool quantized, int trial) {
  uint64_t seed = o.seed + trial;
  Device device = select_device(o);
  int classes = dataset_classes(o.dataset);
  Dataset train_set = load_dataset(o.dataset, o.data_dir, Split::train);
  if (o.train_subset > 0) train_set.keep_first(size_t(o.train_subset));
  Dataset test_set = load_dataset(o.dataset, o.data_dir, Split::test);
  Normalization norm = dataset_normalization(o.dataset);
  DataLoader train(train_set, {.batch = size_t(o.batch), .shuffle = true, .augment = true,
                               .augmentation = {}, .seed = seed, .normalization = norm});
  DataLoader test(test_set, {.batch = size_t(o.batch), .shuffle = false, .augment = false,
                             .augmentation = {}, .seed = seed, .normalization = norm});
  QuantSpec spec{parse_quantizer(o.quantizer), o.bits};
  QuantizedLayerFactory qfactory(spec);
  const LayerFactory& factory = quantized ? qfactory : default_layer_factory();
  ResNetCifar model(parse_depth(o.model), classes, train_set.channels, seed, factory);
  if (!o.pretrained.empty() && !o.resume) model.load_state_dict(load_state_any(o.pretrained), true);
  model.to(device);

  std::unique_ptr<MetaNet> meta;
  std::unique_ptr<QuantTrainer> trainer;
  if (quantized && o.backward != "ste") {
    meta = std::make_unique<MetaNet>(
        MetaNetConfig{parse_meta_kind(o.backward), o.hidden, o.num_fc, parse_meta_act(o.meta_act)},
        seed);
    meta->to(device);
    trainer = std::make_unique<MetaQuantTrainer>(
        model, *meta, MetaQuantOptions{o.optimizer, o.lr, 1e-3, o.meta_lr_follows});
  } else {
    trainer = std::make_unique<SteTrainer>(model, o.optimizer, o.lr);  // FP when not quantized
  }
  std::string what = !quantized ? "full precision"
                     : o.backward == "ste" ? spec_str(spec) + ", STE"
                                           : spec_str(spec) + ", MetaQuant " + o.backward;
  // What a resumed run must share with the checkpoint (lr, epochs and device may change).
  nlohmann::json identity = {{"model", o.model}, {"dataset", o.dataset}, {"mode", what},
                             {"optimizer", o.optimizer}, {"lr_adjust", o.lr_adjust},
                             {"batch", o.batch}, {"seed", seed}, {"train_subset", o.train_subset}};
  if (quantized && o.backward != "ste") {
    identity["hidden"] = o.hidden;
    identity["meta_act"] = o.meta_act;
    if (parse_meta_kind(o.backward) == MetaKind::multi_fc) identity["num_fc"] = o.num_fc;
    identity["meta_lr_follows_lr"] = o.meta_lr_follows;
  }
  nlohmann::json config = identity;
  config.update({{"lr", o.lr}, {"epochs", o.epochs}, {"device", device.str()},
                 {"pretrained", o.pretrained}});
  std::string run = o.run_name.empty()
                        ? fmt::format("{}-{}-{}-seed{}", quantized ? o.backward : "fp",
                                      quantized ? spec_str(spec) : "32bit", o.optimizer, seed)
                        : (o.trials > 1 ? fmt::format("{}-trial{}", o.run_name, trial) : o.run_name);
  const std::string dir = run_directory(o.results, o.model, o.dataset, run, o.resume);
  const std::string checkpoint = dir + "/" + kRunCheckpointName;
  RunProgress progress;
  progress.lr = o.lr;
  if (o.resume) {
    MQ_CHECK(std::filesystem::exists(checkpoint),
             "--resume: {} has no checkpoint (the run stopped before its first epoch ended); "
             "start it again without --resume", dir);
    progress = load_run_checkpoint(checkpoint, model, *trainer, identity);
    trainer->set_lr(progress.lr);
    std::printf("mqtrain: resuming %s after epoch %d (lr %g)\n", dir.c_str(),
                progress.epochs_done, progress.lr);
  }
  RunLog log(dir, config, progress.iterations, progress.epochs_done);
  std::printf("mqtrain: %s, %s on %s (%zu train / %zu test), %s lr %g, batch %d, %d epochs, "
              "device %s, %d threads; logs in %s\n",
              o.model.c_str(), what.c_str(), o.dataset.c_str(), train_set.size(), test_set.size(),
              o.optimizer.c_str(), progress.lr, o.batch, o.epochs, device.str().c_str(),
              num_threads(), log.dir().c_str());
  LrSchedule schedule = LrSchedule::parse(o.lr_adjust);
  schedule.restore(progress.schedule);
  const Fault fault = Fault::from_env();
  int64_t iter = progress.iterations;
  const int first_epoch = progress.epochs_done;
  bool stop = progress.finished && progress.epochs_done >= o.epochs;
  for (int e = progress.epochs_done; e < o.epochs && !stop; ++e) {
    tools::Progress bar(e, o.epochs);
    double lr = trainer->lr();
    auto on_step = [&](const StepReport& s) {
      bar.update(s);
      log.iteration(iter++, s.running_loss, s.running_acc, lr);
      fault.maybe_fire(iter, model);
    };
    EpochResult r;
    try {
      r = train_epoch(*trainer, train, device, e, on_step);
    } catch (const Error& err) {
      log.flush();
      if (progress.epochs_done == 0) throw;
      fail("{}\nthe last good checkpoint (after epoch {}) is kept in {}; `--resume` continues "
           "from it", err.what(), progress.epochs_done, checkpoint);
    }
    double acc = evaluate(model, test, device);
    progress.best = std::max(progress.best, acc);
    progress.test_acc.push_back(acc);
    std::printf("epoch %d/%d: train loss %.4f, train acc %.2f%%, test acc %.2f%% (best %.2f%%), "
                "%.0f images/s, lr %g\n",
                e + 1, o.epochs, r.loss, r.acc, acc, progress.best, r.images_per_s, lr);
    log.epoch(e, {{"epoch", e + 1}, {"train_loss", r.loss}, {"train_acc", r.acc},
                  {"test_acc", acc}, {"images_per_s", r.images_per_s}, {"lr", lr},
                  {"seconds", r.seconds}},
              acc);
    double next = schedule.after_epoch(e, r.loss, lr);
    trainer->set_lr(next);
    if (LrSchedule::should_stop(next)) {
      std::printf("learning rate %g < 1e-6: stopping early\n", next);
      stop = true;
    }
    progress.epochs_done = e + 1;
    progress.iterations = iter;
    progress.lr = next;
    progress.schedule = schedule.state();
    progress.finished = stop || e + 1 == o.epochs;
    save_run_checkpoint(checkpoint, model, *trainer, progress, identity);
  }
  if (o.resume && progress.epochs_done == first_epoch)
    std::printf("the run was already complete after %d epochs\n", progress.epochs_done);
  if (!progress.test_acc.empty())
    std::printf("final test accuracy %.2f%% (best %.2f%%)\n", progress.test_acc.back(),
                progress.best);
  if (!o.save_dir.empty()) {
    std::string out = o.trials > 1 ? o.save_dir + "/trial" + std::to_string(trial) : o.save_dir;
    std::filesystem::create_directories(out);
    model.save(out);
    std::printf("saved the model state to %s/\n", out.c_str());
  }
  return {progress.best, progress.test_acc};
}

int run_trials(const Options& o, bool quantized) {
  if (o.threads > 0) set_num_threads(o.threads);
  std::vector<TrialResult> results;
  for (int t = 0; t < o.trials; ++t) results.push_back(run_trial(o, quantized, t));
  if (o.trials > 1) {
    auto mean_var = [](const std::vector<double>& v) {
      double m = std::accumulate(v.begin(), v.end(), 0.0) / v.size(), s = 0;
      for (double x : v) s += (x - m) * (x - m);
      return std::pair{m, s / v.size()};
    };
    std::vector<double> best, last10;
    for (auto& r : results) {
      best.push_back(r.best);
      size_t k = std::min<size_t>(10, r.test_acc.size());
      last10.insert(last10.end(), r.test_acc.end() - k, r.test_acc.end());
    }
    auto [bm, bv] = mean_var(best);
    auto [lm, lv] = mean_var(last10);
    std::printf("%d trials: best test acc %.3f (%.3f), last-10 epochs %.3f (%.3f)  [mean (var)]\n",
                o.trials, bm, bv, lm, lv);
  }
  return 0;
}

int run_eval(const Options& o, bool quantized) {
  if (o.threads > 0) set_num_threads(o.threads);
  MQ_CHECK(!o.pretrained.empty(), "eval: --pretrained PATH is required (.npy directory, "
           "mq checkpoint or .pth)");
  Device device = select_device(o);
  Dataset test_set = load_dataset(o.dataset, o.data_dir, Split::test);
  DataLoader test(test_set, {.batch = size_t(o.batch), .shuffle = false, .augment = false,
                             .augmentation = {}, .seed = o.seed,
                             .normalization = dataset_normalization(o.dataset)});
  QuantizedLayerFactory qfactory({parse_quantizer(o.quantizer), o.bits});
  ResNetCifar model(parse_depth(o.model), dataset_classes(o.dataset), test_set.channels, o.seed,
                    quantized ? static_cast<const LayerFactory&>(qfactory) : default_layer_factory());
  model.load_state_dict(load_state_any(o.pretrained), true);
  model.to(device);
  std::printf("test accuracy %.2f%% (%zu images, %s)\n", evaluate(model, test, device),
              test_set.size(), quantized ? "quantized" : "full precision");
  return 0;
}

std::vector<std::string> normalize_args(int argc, char** argv) {
  static const std::map<std::string, std::string> aliases = {
      {"-bs", "--batch-size"}, {"-lr", "--lr"},     {"-bw", "--bits"}, {"-ad", "--lr-adjust"},
      {"-meta", "--meta"},     {"-hidden", "--hidden"}, {"-nfc", "--nfc"}, {"-q", "--quantize"}};
  std::vector<std::string> out;
  for (int i = argc - 1; i >= 1; --i) {  // CLI11 parses a reversed vector
    auto it = aliases.find(argv[i]);
    out.push_back(it != aliases.end() ? it->second : argv[i]);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mqtrain: train weight-quantized ResNets with MetaQuant"};
  app.require_subcommand(1);
  Options o;

  auto* pretrain = app.add_subcommand("pretrain", "train a full-precision model");
  add_common(*pretrain, o);
  add_training(*pretrain, o);
  pretrain->add_option("--save", o.save_dir, "directory for the final model state (.npy files)");

  auto* quantize = app.add_subcommand("quantize", "quantize a model: STE baseline or MetaQuant");
  add_common(*quantize, o);
  add_training(*quantize, o);
  quantize->add_option("--backward,--meta", o.backward, "ste|MultiFC|FC-Grad|LSTMFC (-meta)")
      ->capture_default_str();
  quantize->add_option("--quantize", o.quantizer, "dorefa|bwn|bwn-f|ternary (-q)")
      ->capture_default_str();
  quantize->add_option("--bits", o.bits, "weight bits 1..8 (-bw)")->check(CLI::Range(1, 8))
      ->capture_default_str();
  quantize->add_option("--hidden", o.hidden, "meta network hidden size (-hidden)")
      ->check(CLI::Range(1, 100000))->capture_default_str();
  quantize->add_option("--nfc", o.num_fc, "MultiFC layers >= 2 (-nfc)")->check(CLI::Range(2, 64))
      ->capture_default_str();
  quantize->add_option("--meta-act", o.meta_act, "none|relu|tanh")->capture_default_str();
  quantize->add_flag("--meta-lr-follows-lr", o.meta_lr_follows,
                     "decay the meta lr with the base lr (the paper) instead of keeping it");
  quantize->add_option("--pretrained", o.pretrained,
                       "full-precision state: .npy directory, mq checkpoint or .pth");
  quantize->add_option("--save", o.save_dir, "directory for the final model state (.npy files)");

  auto* eval = app.add_subcommand("eval", "test accuracy of a saved model");
  add_common(*eval, o);
  bool eval_quantized = false;
  eval->add_option("--pretrained", o.pretrained, "model state: .npy directory, checkpoint or .pth")
      ->required();
  eval->add_flag("--quantized", eval_quantized, "evaluate with quantized weights Q(A(W))");
  eval->add_option("--quantize", o.quantizer, "dorefa|bwn|bwn-f|ternary (-q)");
  eval->add_option("--bits", o.bits, "weight bits 1..8 (-bw)")->check(CLI::Range(1, 8));

  std::string pth_in, pth_out;
  auto* import = app.add_subcommand("import-pth", "convert a PyTorch state dict to .npy files");
  import->add_option("FILE", pth_in, "PyTorch checkpoint (.pth, zip or legacy format)")->required();
  import->add_option("OUT", pth_out, "output directory of <name>.npy files")->required();

  std::string golden_dir, golden_case;
  auto* verify = app.add_subcommand("verify-golden", "replay golden reference traces");
  verify->add_option("DIR", golden_dir, "golden directory (with manifest.json)")->required();
  verify->add_option("--case", golden_case, "run only this case");
  int verify_threads = 0;
  verify->add_option("--threads", verify_threads, "CPU threads")->check(CLI::Range(0, 1024));

  try {
    app.parse(normalize_args(argc, argv));
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*pretrain) return run_trials(o, false);
    if (*quantize) return run_trials(o, true);
    if (*eval) return run_eval(o, eval_quantized);
    if (*import) {
      PthInfo info;
      TensorMap state = load_pth(pth_in, &info);
      save_npy_dir(pth_out, state);
      std::printf("imported %zu tensors from %s (%s format%s) into %s/\n", state.size(),
                  pth_in.c_str(), info.format.c_str(),
                  info.wrapper_key.empty() ? "" : (", under '" + info.wrapper_key + "'").c_str(),
                  pth_out.c_str());
      return 0;
    }
    if (*verify) {
      if (verify_threads > 0) set_num_threads(verify_threads);
      return golden::verify_golden_dir(golden_dir, golden_case, std::cout) ? 0 : 1;
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "mqtrain: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
