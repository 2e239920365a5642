// mqtrain's command line: parse flags, call the library. The reference's single-dash
// multi-letter flags (-bs, -lr, -bw, -ad, -meta, -hidden, -nfc) are accepted beside the long names.
#include "tools/cli/mqtrain_cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>

#include "engine/io/npy.h"
#include "engine/io/pth.h"
#include "engine/parallel.h"
#include "meta/golden_quant.h"
#include "kernels/quantize/quantizer_table.h"
#include "tools/progress.h"

namespace mq::tools {
namespace {

struct Options : RunSettings {
  int threads = 0;
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

int run_trials(Options o, bool quantized, const RunHooks& extra) {
  if (o.threads > 0) set_num_threads(o.threads);
  o.quantized = quantized;
  std::unique_ptr<Progress> bar;
  RunHooks hooks;
  hooks.epoch_start = [&](int epoch, int epochs) {
    bar = std::make_unique<Progress>(epoch, epochs);
    if (extra.epoch_start) extra.epoch_start(epoch, epochs);
  };
  hooks.after_step = [&](const StepReport& r, int64_t iterations, ResNetCifar& model) {
    bar->update(r);
    if (extra.after_step) extra.after_step(r, iterations, model);
  };
  std::vector<RunResult> results;
  for (int t = 0; t < o.trials; ++t) results.push_back(run_training(o, t, hooks));
  if (o.trials > 1) {
    const TrialSummary m = summarize_trials(results);
    std::printf("%d trials: best test acc %.3f (%.3f), last-10 epochs %.3f (%.3f)  [mean (var)]\n",
                o.trials, m.best_mean, m.best_var, m.last10_mean, m.last10_var);
  }
  return 0;
}

int run_eval(Options o, bool quantized) {
  if (o.threads > 0) set_num_threads(o.threads);
  o.quantized = quantized;
  size_t images = 0;
  const double acc = evaluate_saved_model(o, &images);
  std::printf("test accuracy %.2f%% (%zu images, %s)\n", acc, images,
              quantized ? "quantized" : "full precision");
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

int mqtrain_main(int argc, char** argv, const RunHooks& extra) {
  CLI::App app{"mqtrain: train weight-quantized ResNets with MetaQuant"};
  app.require_subcommand(1);
  Options o;

  auto* pretrain = app.add_subcommand("pretrain", "train a full-precision model");
  add_common(*pretrain, o);
  add_training(*pretrain, o);
  pretrain->add_option("--save", o.save_dir, "directory for the final model state (.npy files)");

  // -q and -bw from the quantizer table (kernels/quantize/quantizer_table.h).
  const std::string quantizer_help = kernels::quantizer_names("|") + " (-q)";
  const std::string bits_help = fmt::format("weight bits {}..{} (-bw)", kernels::table_min_bits(),
                                            kernels::table_max_bits());
  const CLI::Range bits_range(kernels::table_min_bits(), kernels::table_max_bits());
  auto* quantize = app.add_subcommand("quantize", "quantize a model: STE baseline or MetaQuant");
  add_common(*quantize, o);
  add_training(*quantize, o);
  quantize->add_option("--backward,--meta", o.backward, "ste|MultiFC|FC-Grad|LSTMFC (-meta)")
      ->capture_default_str();
  quantize->add_option("--quantize", o.quantizer, quantizer_help)
      ->capture_default_str();
  quantize->add_option("--bits", o.bits, bits_help)->check(bits_range)
      ->capture_default_str();
  quantize->add_option("--hidden", o.hidden, "meta network hidden size (-hidden)")
      ->check(CLI::Range(1, 100000))->capture_default_str();
  quantize->add_option("--nfc", o.num_fc, "MultiFC layers >= 2 (-nfc)")->check(CLI::Range(2, 64))
      ->capture_default_str();
  quantize->add_option("--meta-act", o.meta_act, "none|relu|tanh")->capture_default_str();
  quantize->add_flag("--meta-lr-follows-lr", o.meta_lr_follows_lr,
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
  eval->add_option("--quantize", o.quantizer, quantizer_help);
  eval->add_option("--bits", o.bits, bits_help)->check(bits_range);

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
    if (*pretrain) return run_trials(o, false, extra);
    if (*quantize) return run_trials(o, true, extra);
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

}  // namespace mq::tools
