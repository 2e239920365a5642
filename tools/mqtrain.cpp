// mqtrain: train and evaluate (quantized) ResNets. A thin main: parse flags, call the library.
// The reference's single-dash multi-letter flags (-bs, -lr, -bw, ...) are accepted beside the
// long names.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

#include "data/registry.h"
#include "engine/optim/optimizer.h"
#include "engine/parallel.h"
#include "meta/train_loop.h"
#include "tools/progress.h"

using namespace mq;

namespace {

struct CommonOptions {
  std::string model = "resnet20";
  std::string dataset = "synthetic";
  std::string data_dir;
  std::string device = "auto";
  int batch = 128;
  int threads = 0;
  uint64_t seed = 1;
};

void add_common(CLI::App& cmd, CommonOptions& o) {
  cmd.add_option("-m,--model", o.model, "resnet20|resnet32|resnet44|resnet56|resnet110")
      ->capture_default_str();
  cmd.add_option("-d,--dataset", o.dataset,
                 "cifar10|cifar100|fashion-mnist|synthetic[:N]")->capture_default_str();
  cmd.add_option("--data", o.data_dir, "dataset directory (fashion-mnist: Debian's by default)");
  cmd.add_option("--device", o.device, "cpu|cuda|cuda:N|auto")->capture_default_str();
  cmd.add_option("--batch-size", o.batch, "images per step (-bs)")
      ->check(CLI::Range(1, 65536))->capture_default_str();
  cmd.add_option("--threads", o.threads, "CPU threads (0 = all cores)")
      ->check(CLI::Range(0, 1024));
  cmd.add_option("--seed", o.seed, "drives initialization, shuffling and augmentation")
      ->capture_default_str();
}

int parse_depth(const std::string& model) {
  if (model.rfind("resnet", 0) == 0) {
    try {
      return std::stoi(model.substr(6));
    } catch (const std::exception&) {
    }
  }
  fail("--model '{}': expected resnet20, resnet32, resnet44, resnet56 or resnet110", model);
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<Tensor> params,
                                          double lr) {
  if (name == "SGD") return std::make_unique<SGD>(std::move(params), lr);
  if (name == "SGD-M") return std::make_unique<SGD>(std::move(params), lr, 0.9, 5e-4);
  if (name == "Adam") return std::make_unique<Adam>(std::move(params), lr);
  fail("--optimizer '{}': expected SGD, SGD-M or Adam", name);
}

// Rewrites the reference's single-dash long flags into CLI11's double-dash form.
std::vector<std::string> normalize_args(int argc, char** argv) {
  static const std::map<std::string, std::string> aliases = {
      {"-bs", "--batch-size"}, {"-lr", "--lr"},       {"-bw", "--bits"},
      {"-ad", "--lr-adjust"},  {"-meta", "--meta"},   {"-hidden", "--hidden"},
      {"-nfc", "--nfc"}};
  std::vector<std::string> out;
  for (int i = argc - 1; i >= 1; --i) {  // CLI11 wants reversed order for parse(vector)
    std::string a = argv[i];
    auto it = aliases.find(a);
    out.push_back(it != aliases.end() ? it->second : a);
  }
  return out;
}

int run_pretrain(const CommonOptions& c, int epochs, double lr, const std::string& opt_name,
                 int lr_adjust, const std::string& save_dir) {
  if (c.threads > 0) set_num_threads(c.threads);
  Device device = Device::parse(c.device);
  int classes = dataset_classes(c.dataset);
  Dataset train_set = load_dataset(c.dataset, c.data_dir, Split::train);
  Dataset test_set = load_dataset(c.dataset, c.data_dir, Split::test);
  Normalization norm = dataset_normalization(c.dataset);
  DataLoader train(train_set, {.batch = size_t(c.batch), .shuffle = true, .augment = true,
                               .seed = c.seed, .normalization = norm});
  DataLoader test(test_set, {.batch = size_t(c.batch), .shuffle = false, .augment = false,
                             .seed = c.seed, .normalization = norm});
  ResNetCifar model(parse_depth(c.model), classes, train_set.channels, c.seed);
  model.to(device);
  auto opt = make_optimizer(opt_name, model.parameters(), lr);
  std::printf("mqtrain pretrain: %s on %s (%zu train / %zu test images, %d classes), %s, "
              "lr %g, batch %d, %d epochs, device %s, %d threads\n",
              c.model.c_str(), c.dataset.c_str(), train_set.size(), test_set.size(), classes,
              opt_name.c_str(), lr, c.batch, epochs, device.str().c_str(), num_threads());
  double best = 0;
  for (int e = 0; e < epochs; ++e) {
    tools::Progress progress(e, epochs);
    EpochResult r = train_epoch(model, train, *opt, device, e,
                                [&](const StepReport& s) { progress.update(s); });
    double acc = evaluate(model, test, device);
    best = std::max(best, acc);
    std::printf("epoch %d/%d: train loss %.4f, train acc %.2f%%, test acc %.2f%%, %.0f images/s\n",
                e + 1, epochs, r.loss, r.acc, acc, r.images_per_s);
    if (lr_adjust > 0 && (e + 1) % lr_adjust == 0) opt->set_lr(opt->lr() * 0.1);
  }
  std::printf("best test accuracy %.2f%%\n", best);
  if (!save_dir.empty()) {
    std::filesystem::create_directories(save_dir);
    model.save(save_dir);
    std::printf("saved the model state to %s/\n", save_dir.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mqtrain: train weight-quantized ResNets with MetaQuant"};
  app.require_subcommand(1);

  CommonOptions pre;
  int epochs = 100, lr_adjust = 30;
  double lr = 1e-3;
  std::string opt_name = "SGD", save_dir;
  auto* pretrain = app.add_subcommand("pretrain", "train a full-precision model");
  add_common(*pretrain, pre);
  pretrain->add_option("-n,--epochs", epochs, "epochs")->check(CLI::Range(1, 100000))
      ->capture_default_str();
  pretrain->add_option("--lr", lr, "learning rate (-lr)")->check(CLI::PositiveNumber)
      ->capture_default_str();
  pretrain->add_option("-o,--optimizer", opt_name, "SGD|SGD-M|Adam")->capture_default_str();
  pretrain->add_option("--lr-adjust", lr_adjust, "multiply lr by 0.1 every N epochs (-ad)")
      ->capture_default_str();
  pretrain->add_option("--save", save_dir, "directory for the final model state (.npy files)");

  try {
    app.parse(normalize_args(argc, argv));
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*pretrain) return run_pretrain(pre, epochs, lr, opt_name, lr_adjust, save_dir);
  } catch (const Error& e) {
    std::fprintf(stderr, "mqtrain: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
