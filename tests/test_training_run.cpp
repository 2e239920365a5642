// The training run as library code (meta/run/training_run.h), driven in-process: epochs, hooks,
// checkpoint and logs, the saved model's evaluation, the multi-trial summary, bad settings.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>

#include "meta/run/run_checkpoint.h"
#include "meta/run/training_run.h"
#include "models/zoo.h"

using namespace mq;
namespace fs = std::filesystem;

TEST_CASE("training run: epochs, hooks, checkpoint, logs and the saved model", "[run]") {
  const fs::path root = fs::temp_directory_path() / ("mq_test_run_" + std::to_string(getpid()));
  fs::remove_all(root);
  RunSettings s;
  s.model = "resnet8";
  s.dataset = "synthetic:96";
  s.device = "cpu";
  s.batch = 32;
  s.epochs = 2;
  s.quantized = true;
  s.backward = "ste";
  s.results = (root / "results").string();
  s.run_name = "in-process";
  s.save_dir = (root / "saved").string();
  int epochs_started = 0;
  int64_t steps = 0, last_iterations = 0;
  RunHooks hooks;
  hooks.epoch_start = [&](int epoch, int epochs) {
    CHECK(epoch == epochs_started);
    CHECK(epochs == 2);
    ++epochs_started;
  };
  hooks.after_step = [&](const StepReport& r, int64_t iterations, Model&) {
    ++steps;
    last_iterations = iterations;
    CHECK(std::isfinite(r.running_loss));
  };
  const RunResult result = run_training(s, 0, hooks);
  CHECK(epochs_started == 2);
  CHECK(steps == 2 * 3);  // 96 images in batches of 32
  CHECK(last_iterations == steps);
  REQUIRE(result.test_acc.size() == 2);
  CHECK(result.best == std::max(result.test_acc[0], result.test_acc[1]));

  const fs::path dir = root / "results" / "resnet8-synthetic:96" / "runs-Quant" / "in-process";
  const RunProgress p = read_run_progress((dir / kRunCheckpointName).string());
  CHECK(p.epochs_done == 2);
  CHECK(p.iterations == 6);
  CHECK(p.finished);
  CHECK(p.test_acc == result.test_acc);
  for (const char* log : {"loss.txt", "train-acc.txt", "lr.txt", "test-acc.txt"})
    CHECK(fs::exists(dir / log));

  // The saved state evaluates (quantized) to the run's last test accuracy.
  RunSettings e = s;
  e.pretrained = s.save_dir;
  CHECK(evaluate_saved_model(e) == Approx(result.test_acc.back()).margin(1e-9));
  fs::remove_all(root);
}

TEST_CASE("training run: trial summary and bad settings", "[run]") {
  std::vector<RunResult> r = {{50, {10, 20, 50}, {}}, {70, {70, 30}, {}}};
  const TrialSummary t = summarize_trials(r);
  CHECK(t.best_mean == Approx(60));
  CHECK(t.best_var == Approx(100));
  CHECK(t.last10_mean == Approx(36));  // 10, 20, 50, 70, 30
  CHECK(t.last10_var == Approx(464));
  CHECK(has_model("resnet56"));
  CHECK(has_model("ResNet56"));
  CHECK(!has_model("vgg16"));
  CHECK_THROWS_WITH(load_model_state("/nonexistent/state"),
                    Catch::Contains("--pretrained /nonexistent/state: no such file"));
  RunSettings s;
  CHECK_THROWS_WITH(evaluate_saved_model(s), Catch::Contains("--pretrained PATH is required"));
}
