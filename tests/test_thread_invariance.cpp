// A training run gives the same bits at any thread count: every CPU kernel splits its sums into
// fixed pieces (per channel, per group of images, per chunk), never per thread, and the oneDNN
// passes run on fixed groups of images too (engine/cpu/conv_onednn.cpp). So a run resumed with
// another --threads continues bit for bit, and a loaded machine changes nothing but the time.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "tool_runs.h"

namespace fs = std::filesystem;

TEST_CASE("training: --threads 1 and --threads 2 give byte-identical runs", "[run]") {
  struct Mode {
    const char* name;  // also a folder name: no spaces (the arguments are split on them)
    const char* args;
  };
  const Mode modes[] = {
      {"fp-sgd", "pretrain -o SGD --lr 0.05"},
      {"multifc-sgd", "quantize -meta MultiFC -o SGD --lr 0.01"},
  };
  for (const Mode& m : modes) {
    DYNAMIC_SECTION(m.name) {
      const fs::path base = mq::test::fresh_dir("threads", m.name);
      std::string logs[2], checkpoints[2];
      for (int t = 1; t <= 2; ++t) {
        const fs::path dir = base / std::to_string(t);
        fs::create_directories(dir);
        const mq::test::Exit e = mq::test::mqtrain(
            dir, std::string(m.args) + " -d synthetic:160 -bs 64 -n 1 --seed 5 --run r --threads " +
                     std::to_string(t) + " --results " + (dir / "results").string());
        INFO(e.output);
        REQUIRE(e.code == 0);
        fs::path run;
        for (const auto& entry : fs::recursive_directory_iterator(dir / "results"))
          if (entry.path().filename() == "checkpoint.mqck") run = entry.path().parent_path();
        REQUIRE(!run.empty());
        logs[t - 1] = mq::test::slurp(run / "loss.txt");
        checkpoints[t - 1] = mq::test::slurp(run / "checkpoint.mqck");
      }
      CHECK(logs[0] == logs[1]);
      CHECK(checkpoints[0] == checkpoints[1]);
      fs::remove_all(base);
    }
  }
}
