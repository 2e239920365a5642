// Hostile golden directories (issue 18): manifests with absurd or mistyped hyper-parameters,
// case names that are paths, a directory or a symbolic-link loop where a file belongs, missing
// or misshapen tensor files. Each is one mq::Error naming the file and field, or a FAIL of
// verify-golden; none runs a replay, so these are quick.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/io/npy.h"
#include "kernels/base/error.h"
#include "meta/golden/golden_quant.h"
#include "test_data_util.h"

using namespace mq;
using Catch::Matchers::Contains;
using nlohmann::json;
using mq::test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kShipped = std::string(MQ_TEST_DATA) + "/golden/metaquant-ref";

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected an mq::Error, got a std::exception: " << e.what());
  }
  FAIL("expected an mq::Error");
  return {};
}

// A golden directory in a temporary folder: the shipped manifest (for the test to edit), the
// inputs, and on request init/ and case folders copied from the shipped set.
struct GoldenCopy {
  TempDir tmp;
  json manifest;

  GoldenCopy() {
    std::ifstream in(kShipped + "/manifest.json");
    manifest = json::parse(in);
    for (const char* f : {"inputs_x.npy", "inputs_y.npy"})
      fs::copy_file(kShipped + "/" + f, tmp.file(f));
  }
  std::string dir() const { return tmp.str(); }
  std::string path(const std::string& rel) const { return tmp.file(rel); }
  json& case_named(const std::string& name) {
    for (auto& c : manifest["cases"])
      if (c.value("name", std::string()) == name) return c;
    FAIL("no case " << name);
    return manifest;
  }
  void copy_folder(const std::string& name) {
    fs::copy(kShipped + "/" + name, tmp.file(name), fs::copy_options::recursive);
  }
  std::string write() const {
    std::ofstream(tmp.file("manifest.json")) << manifest.dump(1);
    return tmp.str();
  }
};

// The message of loading the shipped manifest with one edit.
template <class Edit>
std::string load_error(Edit&& edit) {
  GoldenCopy g;
  edit(g.manifest);
  return error_of([&] { golden::load_set(g.write()); });
}

}  // namespace

TEST_CASE("hostile golden manifests: the unedited copy loads", "[golden][hostile]") {
  GoldenCopy g;
  const golden::Set s = golden::load_set(g.write());
  CHECK(s.cases.size() == 21);
  CHECK(s.hidden == 100);
}

TEST_CASE("hostile golden manifests: hyper-parameters are range-checked like mqtrain's flags",
          "[golden][hostile]") {
  const std::string file = "manifest.json";
  struct Edit {
    const char* key;
    json value;
    const char* expect;
  };
  const Edit edits[] = {
      {"hidden", 1000000000, "1..4096"},
      {"hidden", 10000000000LL, "1..4096"},
      {"hidden", 1e9, "an integer"},
      {"hidden", 0, "1..4096"},
      {"num_fc", 100000, "2..64"},
      {"num_fc", 1, "2..64"},
      {"batch", 10000000000LL, "1..65536"},
      {"steps", 1000000000, "1..100000"},
      {"steps", -4, "1..100000"},
      {"lr", -1.0, "a positive number"},
      {"lr", "0.001", "a positive number"},
      {"meta_lr", nullptr, "a positive number"},
      {"adam_weight_decay", 0.1, "0.0005"},
      {"adam_weight_decay", 0.0, "0.0005"},
      {"meta_nonlinear", "sigmoid", "unknown meta activation"},
      {"meta_nonlinear", 3, "a string or null"},
      {"cases", json::array(), "a non-empty array"},
      {"cases", "fp-sgd", "a non-empty array"},
  };
  for (const Edit& e : edits) {
    INFO(e.key << " = " << e.value.dump());
    const std::string msg = load_error([&](json& m) { m[e.key] = e.value; });
    CHECK_THAT(msg, Contains(file) && Contains(std::string("'") + e.key + "'") &&
                        Contains(e.expect));
  }
  CHECK_THAT(load_error([](json& m) { m.erase("hidden"); }),
             Contains("'hidden'") && Contains("missing"));
}

TEST_CASE("hostile golden manifests: every case field is checked", "[golden][hostile]") {
  struct Edit {
    const char* name;  // the case edited
    const char* key;
    json value;
    const char* expect;
  };
  const Edit edits[] = {
      {"ste-dorefa-sgd", "bitW", 99, "bitW"},
      {"ste-dorefa-sgd", "bitW", 0, "bitW"},
      {"ste-dorefa-sgd", "bitW", "1", "an integer"},
      {"fp-sgd", "bitW", 4, "an integer in 1..1"},
      {"fp-sgd", "quantize", "dorefa", "null (an fp case is not quantized)"},
      {"fp-sgd", "meta", "MultiFC", "only metaquant cases"},
      {"ste-bwn-sgd", "quantize", "int8", "one of dorefa"},
      {"ste-bwn-sgd", "quantize", nullptr, "one of dorefa"},
      {"ste-bwn-sgd", "mode", "train", "one of fp, ste, metaquant"},
      {"ste-bwn-sgd", "optimizer", "SGD-M", "SGD or Adam"},
      {"ste-bwn-sgd", "optimizer", 7, "a string"},
      {"metaquant-bwn-sgd-LSTMFC", "meta", nullptr, "a metaquant case has a meta network"},
      {"metaquant-bwn-sgd-LSTMFC", "meta", "GRU", "unknown meta network"},
      {"fp-adam", "losses", json::array({1.0, 2.0, 3.0}), "an array of 4 losses"},
      {"fp-adam", "losses", json::array({1.0, 2.0, "x", 3.0}), "losses[2]"},
      {"fp-adam", "name", "../evil", "not a plain name"},
      {"fp-adam", "name", "a/b", "golden case name"},
      {"fp-adam", "name", "", "golden case name"},
      {"fp-adam", "name", "fp-sgd", "appears twice"},
      {"fp-adam", "name", "init", "names a file or folder of the set itself"},
  };
  for (const Edit& e : edits) {
    INFO(e.name << "." << e.key << " = " << e.value.dump());
    const std::string msg = load_error([&](json& m) {
      for (auto& c : m["cases"])
        if (c.value("name", std::string()) == e.name) c[e.key] = e.value;
    });
    CHECK_THAT(msg, Contains("manifest.json") && Contains(e.expect));
  }
  CHECK_THAT(load_error([](json& m) { m["cases"].push_back(5); }), Contains("'cases[21]'"));
}

TEST_CASE("hostile golden manifests: meta networks too large to replay are refused",
          "[golden][hostile]") {
  // Within mqtrain's ranges, but a replay would keep 270k x 24000 floats per step.
  const std::string msg = load_error([](json& m) { m["hidden"] = 4000; });
  CHECK_THAT(msg, Contains("activations per weight") && Contains("1024"));
  CHECK_THAT(load_error([](json& m) {
               m["hidden"] = 100;
               m["num_fc"] = 64;
             }),
             Contains("MultiFC") && Contains("6400"));
  // A set without metaquant cases does not build a meta network.
  GoldenCopy g;
  g.manifest["hidden"] = 4000;
  json kept = json::array();
  for (auto& c : g.manifest["cases"])
    if (c.value("mode", std::string()) != "metaquant") kept.push_back(c);
  g.manifest["cases"] = kept;
  CHECK(golden::load_set(g.write()).cases.size() == 7);
}

TEST_CASE("hostile golden manifests: not JSON, not an object, wrong inputs", "[golden][hostile]") {
  GoldenCopy g;
  const std::string dir = g.write();
  SECTION("not valid JSON") {
    std::ofstream(g.path("manifest.json")) << "{\"lr\": 0.001, ";
    CHECK_THAT(error_of([&] { golden::load_set(dir); }),
               Contains("manifest.json") && Contains("not valid JSON"));
  }
  SECTION("not an object") {
    std::ofstream(g.path("manifest.json")) << "[1, 2]";
    CHECK_THAT(error_of([&] { golden::load_set(dir); }), Contains("must be a JSON object"));
  }
  SECTION("labels outside 0..9") {
    Tensor y = load_npy(g.path("inputs_y.npy"));
    y.data<int64_t>()[5] = 12;
    save_npy(g.path("inputs_y.npy"), y);
    CHECK_THAT(error_of([&] { golden::load_set(dir); }),
               Contains("inputs_y.npy") && Contains("label 12"));
  }
  SECTION("a batch the inputs do not have") {
    g.manifest["batch"] = 9;
    g.write();
    CHECK_THAT(error_of([&] { golden::load_set(dir); }),
               Contains("inputs_x.npy") && Contains("batch=9"));
  }
  SECTION("missing inputs, a directory as the inputs") {
    fs::remove(g.path("inputs_x.npy"));
    CHECK_THAT(error_of([&] { golden::load_set(dir); }),
               Contains(g.path("inputs_x.npy")) && Contains("not found"));
    fs::create_directory(g.path("inputs_x.npy"));
    CHECK_THAT(error_of([&] { golden::load_set(dir); }),
               Contains(g.path("inputs_x.npy")) && Contains("is a directory"));
  }
}

TEST_CASE("hostile golden directories: a directory or a symbolic-link loop where a file belongs",
          "[golden][hostile]") {
  GoldenCopy g;
  const std::string dir = g.write();
  SECTION("a directory as manifest.json") {
    fs::remove(g.path("manifest.json"));
    fs::create_directory(g.path("manifest.json"));
    CHECK_THAT(error_of([&] { golden::load_set(dir); }),
               Contains(g.path("manifest.json")) && Contains("is a directory"));
  }
  SECTION("a symbolic-link loop as manifest.json, as the golden directory") {
    fs::remove(g.path("manifest.json"));
    fs::create_symlink(g.path("manifest.json"), g.path("manifest.json"));
    CHECK_THAT(error_of([&] { golden::load_set(dir); }),
               Contains(g.path("manifest.json")) && Contains("symlink loop"));
    fs::create_symlink(g.path("loop"), g.path("loop"));
    CHECK_THAT(error_of([&] { golden::load_set(g.path("loop")); }),
               Contains(g.path("loop")) && Contains("symlink loop"));
  }
  SECTION("a symbolic-link loop as init/ and as a tensor file of a case") {
    g.copy_folder("fp-sgd");
    fs::create_symlink(g.path("init"), g.path("init"));
    const golden::Set set = golden::load_set(dir);
    CHECK_THAT(error_of([&] { set.init(); }),
               Contains(g.path("init")) && Contains("symlink loop"));
    const std::string t = g.path("fp-sgd/final.fc.bias.npy");
    fs::remove(t);
    fs::create_symlink(t, t);
    CHECK_THAT(error_of([&] { golden::check_case_files(set, set.find("fp-sgd")); }),
               Contains(g.path("fp-sgd")));
    std::ostringstream out;
    CHECK_FALSE(golden::verify_golden_dir(dir, "fp-sgd", out));
    CHECK_THAT(out.str(), Contains("FAIL fp-sgd"));
  }
}

TEST_CASE("hostile golden cases: a missing, extra or misshapen tensor file fails verify-golden",
          "[golden][hostile]") {
  GoldenCopy g;
  g.copy_folder("init");
  for (const char* c : {"fp-sgd", "ste-bwn-adam", "metaquant-dorefa-sgd-MultiFC"})
    g.copy_folder(c);
  const std::string dir = g.write();
  const golden::Set set = golden::load_set(dir);
  for (const char* c : {"fp-sgd", "ste-bwn-adam", "metaquant-dorefa-sgd-MultiFC"})
    golden::check_case_files(set, set.find(c));  // complete as shipped

  struct Damage {
    const char* name;
    const char* file;
    const char* expect;
  };
  const Damage damages[] = {
      {"fp-sgd", "final.fc.bias.npy", "missing"},
      {"fp-sgd", "step1.grad.layer2.0.conv1.weight.npy", "missing"},
      {"fp-sgd", "step1.logits.npy", "not found"},
      {"ste-bwn-adam", "final.layer1.0.bn1.running_var.npy", "missing"},
      {"metaquant-dorefa-sgd-MultiFC", "meta_final.network.Linear1.weight.npy", "missing"},
      {"metaquant-dorefa-sgd-MultiFC", "meta_init.network.Linear2.weight.npy", "missing"},
  };
  for (const Damage& d : damages) {
    INFO(d.name << "/" << d.file);
    const std::string f = g.path(std::string(d.name) + "/" + d.file);
    const std::string kept = f + ".kept";
    fs::rename(f, kept);
    CHECK_THAT(error_of([&] { golden::check_case_files(set, set.find(d.name)); }),
               Contains(d.file) && Contains(d.expect));
    std::ostringstream out;
    CHECK_FALSE(golden::verify_golden_dir(dir, d.name, out));
    CHECK_THAT(out.str(), Contains(std::string("FAIL ") + d.name) && Contains(d.file) &&
                              Contains("0 of 1 golden case(s) pass"));
    fs::rename(kept, f);
  }

  SECTION("an extra tensor file") {
    fs::copy_file(g.path("fp-sgd/final.fc.bias.npy"), g.path("fp-sgd/final.fc.extra.npy"));
    CHECK_THAT(error_of([&] { golden::check_case_files(set, set.find("fp-sgd")); }),
               Contains("final.fc.extra.npy") && Contains("has no tensor"));
  }
  SECTION("a tensor of the wrong shape") {
    save_npy(g.path("fp-sgd/final.fc.bias.npy"), Tensor::zeros({11}, DType::f32));
    CHECK_THAT(error_of([&] { golden::check_case_files(set, set.find("fp-sgd")); }),
               Contains("final.fc.bias.npy") && Contains("[10]"));
    save_npy(g.path("fp-sgd/step1.logits.npy"), Tensor::zeros({8, 11}, DType::f32));
    fs::copy_file(kShipped + "/fp-sgd/final.fc.bias.npy", g.path("fp-sgd/final.fc.bias.npy"),
                  fs::copy_options::overwrite_existing);
    CHECK_THAT(error_of([&] { golden::check_case_files(set, set.find("fp-sgd")); }),
               Contains("step1.logits.npy") && Contains("[8, 10]"));
  }
  SECTION("a missing case folder") {
    fs::remove_all(g.path("fp-sgd"));
    std::ostringstream out;
    CHECK_FALSE(golden::verify_golden_dir(dir, "fp-sgd", out));
    CHECK_THAT(out.str(), Contains("FAIL fp-sgd") && Contains("not found"));
  }
}

TEST_CASE("golden comparison: an engine tensor without its golden file fails", "[golden][hostile]") {
  Tensor a = Tensor::from_vector<float>({1, 2}, {2});
  CHECK(golden::compare_state({{"x", a}}, {{"x", a}}, golden::Rule::final_sgd).ok);
  const golden::Report r =
      golden::compare_state({{"x", a}, {"y", a}}, {{"x", a}}, golden::Rule::final_sgd);
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.str(), Contains("y: no golden file"));
  // Integer state (BN's num_batches_tracked) has no golden file by design.
  CHECK(golden::compare_state({{"x", a}, {"n", Tensor::zeros({1}, DType::i64)}}, {{"x", a}},
                              golden::Rule::final_sgd)
            .ok);
}

TEST_CASE("the shipped golden cases have every tensor file they need", "[golden]") {
  const golden::Set set = golden::load_set(kShipped);
  for (const auto& c : set.cases) {
    INFO("case " << c.name);
    CHECK_NOTHROW(golden::check_case_files(set, c));
  }
}
