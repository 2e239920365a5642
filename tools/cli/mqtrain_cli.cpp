// mqtrain's command line: parse flags into a command, validate it, call the library. The
// reference's single-dash multi-letter flags (-bs, -lr, -bw, -ad, -meta, -hidden, -nfc) are
// accepted beside the long names.
#include "tools/cli/mqtrain_cli.h"

#include "kernels/base/text.h"
#include "models/zoo.h"

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <new>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/dist/job.h"
#include "engine/io/checkpoint.h"
#include "engine/io/file.h"
#include "engine/io/npy.h"
#include "engine/io/pth.h"
#include "engine/parallel.h"
#include "meta/golden/golden_quant.h"
#include "kernels/quantize/quantizer_table.h"
#include "meta/run/sweep.h"
#include "models/quantize_op.h"
#include "tools/cli/svg_chart.h"
#include "tools/progress.h"

namespace mq::tools {
namespace {

// No argument is longer than a path may be (PATH_MAX); longer ones are refused before parsing.
constexpr size_t kMaxArgument = 4096;

// CLI11 reads unsigned numbers with strtoull, which takes "-1" as 2^64 - 1.
std::string not_negative(const std::string& value) {
  return value.find('-') == std::string::npos ? "" : "must not be negative";
}

void add_common(CLI::App& cmd, MqtrainCommand& c) {
  RunSettings& o = c.settings;
  cmd.add_option("-m,--model", o.model, "a model of the zoo: " + model_list())
      ->capture_default_str();
  cmd.add_option("-d,--dataset", o.dataset, "cifar10|cifar100|fashion-mnist|synthetic[:N]")
      ->capture_default_str();
  cmd.add_option("--data", o.data_dir, "dataset directory (fashion-mnist: Debian's by default)");
  cmd.add_option("--device", o.device, "cpu|cuda|cuda:N|auto")->capture_default_str();
  cmd.add_option("--batch-size", o.batch, "images per step (-bs)")
      ->check(CLI::Range(1, kMaxBatch))->capture_default_str();
  cmd.add_option("--threads", c.threads, "CPU threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd.add_option("--seed", o.seed, "drives initialization, shuffling and augmentation")
      ->check(not_negative)->capture_default_str();
  cmd.add_flag("--tf32", o.tf32, "allow TF32 tensor-core math on CUDA (off by default)");
}

void add_training(CLI::App& cmd, MqtrainCommand& c) {
  RunSettings& o = c.settings;
  cmd.add_option("-n,--epochs", o.epochs, "epochs")->check(CLI::Range(1, kMaxEpochs))
      ->capture_default_str();
  // A positive finite number: validate_run_settings says so (CLI11's PositiveNumber lets NaN by).
  cmd.add_option("--lr", o.lr, "learning rate (-lr)")->capture_default_str();
  cmd.add_option("-o,--optimizer", o.optimizer, "SGD|SGD-M|Adam")->capture_default_str();
  cmd.add_option("--lr-adjust", o.lr_adjust, "N (x0.1 every N epochs) or adaptive (-ad)")
      ->capture_default_str();
  cmd.add_option("--trials", o.trials, "independent runs (seeds seed..seed+N-1)")
      ->check(CLI::Range(1, kMaxTrials));
  cmd.add_option("--results", o.results, "root of the run logs")->capture_default_str();
  cmd.add_option("--run", o.run_name, "run directory name (default: from the settings and seed)");
  cmd.add_flag("--resume", o.resume,
               "continue the last run of these settings from its checkpoint (last complete epoch)");
  cmd.add_option("--train-subset", o.train_subset, "train on the first N training images only")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd.add_option("--accumulate", o.accumulate,
                 "micro-batches per step (gradient accumulation; the batch stays -bs)")
      ->check(CLI::Range(1, kMaxAccumulate))->capture_default_str();
  cmd.add_option("--check-sync", o.check_sync,
                 "under mpirun: compare the ranks' parameter checksums every N steps (0: never)")
      ->check(CLI::Range(0, 1 << 30));
  cmd.add_flag("--fixed-threads", o.fixed_threads,
               "keep every step on all --threads even while other processes hold cores (default: "
               "fewer threads while that is faster; results are identical either way)");
  cmd.add_flag("--spread-trials", c.spread_trials,
               "under mpirun: run the --trials on the ranks side by side (trial t on rank t % N) "
               "instead of training each trial on all ranks");
}

// --threads, or by default the cores shared among the job's ranks on this node.
void set_job_threads(int threads) {
  if (threads > 0) {
    set_num_threads(threads);
  } else if (job().size() > 1) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    set_num_threads(std::max(1, cores / launcher_local_rank().size));
  }
}

// The reference's defaults: pretrain saves where quantize looks for a pretrained model.
void apply_reference_defaults(RunSettings& o, bool say) {
  if (!o.quantized && o.save_dir.empty()) o.save_dir = default_pretrained_base(o);
  if (o.quantized && o.pretrained.empty() && !o.resume) {
    o.pretrained = default_pretrained_state(o);
    if (!say) {
    } else if (o.pretrained.empty())
      std::printf("no --pretrained, and no pretrained state at %s(.pth): starting from random "
                  "weights\n", default_pretrained_base(o).c_str());
    else
      std::printf("no --pretrained: starting from %s (where pretrain saves by default)\n",
                  o.pretrained.c_str());
  }
}

// Per setting, the mean of `field` over the trials per epoch with its min/max band.
ChartSeries per_epoch(const SweepResult& r, std::vector<double> RunResult::*field) {
  ChartSeries s;
  for (const std::string& v : r.setting.values) s.label += (s.label.empty() ? "" : ", ") + v;
  for (size_t e = 0;; ++e) {
    double sum = 0, lo = 0, hi = 0;
    size_t n = 0;
    for (const RunResult& t : r.trials) {
      if (e >= (t.*field).size()) continue;
      const double v = (t.*field)[e];
      lo = n ? std::min(lo, v) : v;
      hi = n ? std::max(hi, v) : v;
      sum += v;
      ++n;
    }
    if (n == 0) break;
    s.x.push_back(double(e + 1));
    s.mean.push_back(sum / double(n));
    s.lo.push_back(lo);
    s.hi.push_back(hi);
  }
  return s;
}

int run_sweep_command(RunSettings o, int threads, const std::vector<std::string>& grid,
                      std::string out) {
  Communicator& comm = job();
  const bool lead = comm.rank() == 0;
  apply_reference_defaults(o, lead);
  set_job_threads(threads);
  std::vector<SweepAxis> axes;
  for (const std::string& g : grid) axes.push_back(parse_sweep_axis(g));
  const std::vector<SweepSetting> settings = expand_grid(o, axes);
  if (out.empty()) out = (std::filesystem::path(o.results) / (o.model + "-" + o.dataset) / "sweep").string();
  if (lead) {
    check_run_paths(o);
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    MQ_CHECK(!ec, "--out {}: cannot create it: {}", out, ec.message());
    std::printf("sweep: %zu settings x %d trials = %zu runs on %d rank(s); table and figures in "
                "%s/\n", settings.size(), o.trials, settings.size() * size_t(o.trials),
                comm.size(), out.c_str());
  }
  const std::vector<SweepResult> results = run_sweep(settings, comm);
  if (!lead) return 0;
  const std::string table = sweep_table(axes, results);
  write_file_atomic(out + "/table.md", table);
  std::vector<ChartSeries> acc, loss;
  for (const SweepResult& r : results) {
    acc.push_back(per_epoch(r, &RunResult::test_acc));
    loss.push_back(per_epoch(r, &RunResult::train_loss));
  }
  const std::string what = o.model + " / " + o.dataset + ", " +
                           spec_str({parse_quantizer(o.quantizer), o.bits});
  write_file_atomic(out + "/test-acc.svg",
                    svg_line_chart({"test accuracy, " + what, "epoch", "test accuracy (%)"}, acc));
  write_file_atomic(out + "/loss.svg",
                    svg_line_chart({"training loss, " + what, "epoch", "mean training loss"}, loss));
  std::printf("\n%s\nwrote %s/table.md, test-acc.svg and loss.svg (mean over trials, min-max band)\n",
              table.c_str(), out.c_str());
  return 0;
}

int run_trials(RunSettings o, int threads, bool spread, const RunHooks& extra) {
  Communicator& comm = job();
  const bool lead = comm.rank() == 0;
  apply_reference_defaults(o, lead);
  set_job_threads(threads);
  std::unique_ptr<Progress> bar;
  RunHooks hooks;
  hooks.epoch_start = [&](int epoch, int epochs) {
    bar = std::make_unique<Progress>(epoch, epochs);
    if (extra.epoch_start) extra.epoch_start(epoch, epochs);
  };
  hooks.after_step = [&](const StepReport& r, int64_t iterations, Model& model) {
    if (comm.size() == 1) bar->update(r);  // ranks would draw over each other
    if (extra.after_step) extra.after_step(r, iterations, model);
  };
  // Every trial's paths before the first one trains (each trial checks its own again).
  if (lead || spread) check_run_paths(o);
  std::vector<RunResult> results;
  if (spread && comm.size() > 1) {
    // Each trial a whole run in one process: a sweep of one setting.
    results = run_sweep({{"trials", o.run_name, o, {}}}, comm, hooks).front().trials;
  } else {
    for (int t = 0; t < o.trials; ++t) results.push_back(run_training(o, t, hooks, comm));
  }
  if (o.trials > 1 && lead) {
    const TrialSummary m = summarize_trials(results);
    std::printf("%d trials: best test acc %.3f (%.3f), last-10 epochs %.3f (%.3f)  [mean (var)]\n",
                o.trials, m.best_mean, m.best_var, m.last10_mean, m.last10_var);
  }
  return 0;
}

int run_eval(const RunSettings& o, int threads, bool quantized) {
  set_job_threads(threads);
  size_t images = 0;
  const double acc = evaluate_saved_model(o, &images);
  std::printf("test accuracy %.2f%% (%zu images, %s)\n", acc, images,
              quantized ? "quantized" : "full precision");
  return 0;
}

// The reference's short flags as long ones, reversed (CLI11 parses a reversed vector).
std::vector<std::string> normalize_args(const std::vector<std::string>& args) {
  static const std::map<std::string, std::string> aliases = {
      {"-bs", "--batch-size"}, {"-lr", "--lr"},     {"-bw", "--bits"}, {"-ad", "--lr-adjust"},
      {"-meta", "--meta"},     {"-hidden", "--hidden"}, {"-nfc", "--nfc"}, {"-q", "--quantize"}};
  std::vector<std::string> out;
  for (size_t i = args.size(); i-- > 0;) {
    MQ_CHECK(args[i].size() <= kMaxArgument, "argument {} ('{}...') is {} bytes long; at most {}",
             i + 1, args[i].substr(0, 20), args[i].size(), kMaxArgument);
    auto it = aliases.find(args[i]);
    out.push_back(it != aliases.end() ? it->second : args[i]);
  }
  return out;
}

std::ostream& null_stream() {
  static std::ostream sink(nullptr);  // no buffer: every write fails silently
  return sink;
}

void quiet_stdout() {
  std::fflush(stdout);
  if (!std::freopen("/dev/null", "w", stdout)) std::fprintf(stderr, "cannot silence stdout\n");
}

}  // namespace

MqtrainCommand parse_mqtrain_args(const std::vector<std::string>& args, std::ostream& out,
                                  std::ostream& err, const CliDefaults& defaults) {
  CLI::App app{defaults.program + ": train weight-quantized networks with MetaQuant",
               defaults.program};
  app.require_subcommand(1);
  MqtrainCommand c;
  RunSettings& o = c.settings;
  o.model = defaults.model;
  o.dataset = defaults.dataset;

  auto* pretrain = app.add_subcommand("pretrain", "train a full-precision model");
  add_common(*pretrain, c);
  add_training(*pretrain, c);
  pretrain->add_option("--save", o.save_dir, "directory for the final model state (.npy files; "
                       "default RESULTS/<model>-<dataset>/<model>-<dataset>-pretrain)");

  // -q and -bw from the quantizer table (kernels/quantize/quantizer_table.h).
  const std::string quantizer_help = kernels::quantizer_names("|") + " (-q)";
  const std::string bits_help = fmt::format("weight bits {}..{} (-bw)", kernels::table_min_bits(),
                                            kernels::table_max_bits());
  const CLI::Range bits_range(kernels::table_min_bits(), kernels::table_max_bits());
  auto add_quantize = [&](CLI::App& cmd) {
    add_common(cmd, c);
    add_training(cmd, c);
    cmd.add_option("--backward,--meta", o.backward, "ste|MultiFC|FC-Grad|LSTMFC (-meta)")
        ->capture_default_str();
    cmd.add_option("--quantize", o.quantizer, quantizer_help)->capture_default_str();
    cmd.add_option("--bits", o.bits, bits_help)->check(bits_range)->capture_default_str();
    cmd.add_option("--hidden", o.hidden, "meta network hidden size (-hidden)")
        ->check(CLI::Range(1, kMaxHidden))->capture_default_str();
    cmd.add_option("--nfc", o.num_fc, "MultiFC layers >= 2 (-nfc)")
        ->check(CLI::Range(kMinNumFc, kMaxNumFc))->capture_default_str();
    cmd.add_option("--meta-act", o.meta_act, "none|relu|tanh")->capture_default_str();
    cmd.add_flag("--meta-lr-follows-lr", o.meta_lr_follows_lr,
                 "decay the meta lr with the base lr (the paper) instead of keeping it");
    cmd.add_option("--pretrained", o.pretrained,
                   "full-precision state: .npy directory, mq checkpoint or .pth");
  };
  auto* quantize = app.add_subcommand("quantize", "quantize a model: STE baseline or MetaQuant");
  add_quantize(*quantize);
  quantize->add_option("--save", o.save_dir, "directory for the final model state (.npy files)");

  auto* sweep = app.add_subcommand(
      "sweep", "quantize a grid of settings x --trials, spread over the ranks of mpirun; writes "
               "the table (best and last-10-epoch accuracy, mean and variance) and figures");
  add_quantize(*sweep);
  sweep->add_option("--grid", c.grid, "KEY=V1,V2,... (repeatable; KEY one of " + sweep_keys() + ")")
      ->required();
  sweep->add_option("--out", c.sweep_out,
                    "directory for table.md, test-acc.svg, loss.svg (default "
                    "RESULTS/<model>-<dataset>/sweep)");

  auto* eval = app.add_subcommand("eval", "test accuracy of a saved model");
  add_common(*eval, c);
  eval->add_option("--pretrained", o.pretrained, "model state: .npy directory, checkpoint or .pth")
      ->required();
  eval->add_flag("--quantized", c.eval_quantized, "evaluate with quantized weights Q(A(W))");
  eval->add_option("--quantize", o.quantizer, quantizer_help);
  eval->add_option("--bits", o.bits, bits_help)->check(bits_range);

  auto* import = app.add_subcommand("import-pth", "convert a PyTorch state dict to .npy files");
  import->add_option("FILE", c.pth_in, "PyTorch checkpoint (.pth, zip or legacy format)")->required();
  import->add_option("OUT", c.pth_out, "output directory of <name>.npy files")->required();

  auto* verify = app.add_subcommand("verify-golden", "replay golden reference traces");
  verify->add_option("DIR", c.golden_dir, "golden directory (with manifest.json)")->required();
  verify->add_option("--case", c.golden_case, "run only this case");
  verify->add_option("--skip", c.golden_skip, "leave out this case (repeatable)");
  verify->add_option("--threads", c.threads, "CPU threads")->check(CLI::Range(0, 1024));

  try {
    app.parse(normalize_args(args));
  } catch (const CLI::ParseError& e) {
    c.command = Command::none;
    c.exit_code = app.exit(e, out, err);
    return c;
  }
  // Model and dataset names are case-insensitive (the reference's spellings: -m ResNet20
  // -d CIFAR10); runs are filed under the lower-case name.
  o.model = ascii_lower(o.model);
  o.dataset = ascii_lower(o.dataset);
  CLI::App* run = *pretrain ? pretrain : *quantize ? quantize : *sweep ? sweep : nullptr;
  if (run) {
    c.command = run == pretrain ? Command::pretrain : run == quantize ? Command::quantize
                                                                      : Command::sweep;
    o.quantized = run != pretrain;
    // An explicit --run must be a plain name: validate_run_settings takes "" as the default.
    if (run->count("--run")) check_plain_name(o.run_name, "--run");
    validate_run_settings(o);
  } else if (*eval) {
    c.command = Command::eval;
    o.quantized = c.eval_quantized;
    validate_run_settings(o);
  } else if (*import) {
    c.command = Command::import_pth;
  } else if (*verify) {
    c.command = Command::verify_golden;
  }
  return c;
}

int run_mqtrain_command(const MqtrainCommand& c, const RunHooks& extra) {
  // Under mpirun, the commands that do not train run once, on rank 0 (N copies of import-pth
  // would write the same files at once).
  const bool trains = c.command == Command::pretrain || c.command == Command::quantize ||
                      c.command == Command::sweep;
  if (!trains && job().rank() != 0) return 0;
  switch (c.command) {
    case Command::none:
      return c.exit_code;
    case Command::pretrain:
    case Command::quantize:
      return run_trials(c.settings, c.threads, c.spread_trials, extra);
    case Command::sweep:
      return run_sweep_command(c.settings, c.threads, c.grid, c.sweep_out);
    case Command::eval:
      return run_eval(c.settings, c.threads, c.eval_quantized);
    case Command::import_pth: {
      PthInfo info;
      TensorMap state = load_pth(c.pth_in, &info);
      save_npy_dir(c.pth_out, state);
      std::printf("imported %zu tensors from %s (%s format%s) into %s/\n", state.size(),
                  c.pth_in.c_str(), info.format.c_str(),
                  info.wrapper_key.empty() ? "" : (", under '" + info.wrapper_key + "'").c_str(),
                  c.pth_out.c_str());
      return 0;
    }
    case Command::verify_golden:
      if (c.threads > 0) set_num_threads(c.threads);
      return golden::verify_golden_dir(c.golden_dir, c.golden_case, std::cout, c.golden_skip)
                 ? 0
                 : 1;
  }
  return 0;
}

int mqtrain_main(int argc, char** argv, const RunHooks& extra, const CliDefaults& defaults) {
  auto error = [&](const std::string& message) {
    std::fflush(stdout);  // the run's output so far, before the message
    Communicator& comm = job();
    if (comm.size() == 1) {
      std::fprintf(stderr, "%s: error: %s\n", defaults.program.c_str(), message.c_str());
      return 1;
    }
    // One rank failing alone would leave the others waiting in their next collective: the
    // whole job ends here.
    std::fprintf(stderr, "%s (rank %d of %d): error: %s\n", defaults.program.c_str(), comm.rank(),
                 comm.size(), message.c_str());
    comm.abort(1);
    return 1;  // not reached: abort ends the process
  };
  // Every failure becomes a message and exit code 1: no `terminate`, whatever the input.
  try {
    Communicator& comm = init_job();
    const MqtrainCommand c =
        parse_mqtrain_args(std::vector<std::string>(argv + std::min(argc, 1), argv + argc),
                           comm.rank() == 0 ? std::cout : null_stream(),
                           comm.rank() == 0 ? std::cerr : null_stream(), defaults);
    // Data parallel: rank 0 speaks for the job (the others' errors still reach stderr).
    // Trials and sweeps run whole runs on every rank, each of which reports its own.
    if (comm.rank() != 0 && !c.spread_trials && c.command != Command::sweep) quiet_stdout();
    const int code = run_mqtrain_command(c, extra);
    finalize_job();
    return code;
  } catch (const Error& e) {
    return error(e.what());
  } catch (const std::filesystem::filesystem_error& e) {
    return error(e.what());
  } catch (const nlohmann::json::exception& e) {
    return error(std::string("malformed JSON: ") + e.what());
  } catch (const std::bad_alloc&) {
    return error("out of memory: the settings or the input need more memory than this machine "
                 "gives (a smaller --batch-size, dataset or model may fit)");
  } catch (const std::exception& e) {
    return error(e.what());
  } catch (...) {
    return error("unexpected failure (an unknown exception)");
  }
}

}  // namespace mq::tools
