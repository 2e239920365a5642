// Replays the quantized golden cases of the MetaQuant reference (ste-* and metaquant-* of
// tests/data/golden/metaquant-ref; tolerances of its README, see meta/golden/golden_quant.h). Each case
// is its own test case: `mq_tests "golden metaquant-bwn-adam-LSTMFC"` runs one.
#include <iostream>
#include <sstream>

#include "meta/golden/golden_quant.h"
#include "op_test.h"

using namespace mq;

namespace {
const golden::Set& golden_set() {
  static const golden::Set set =
      golden::load_set(std::string(MQ_TEST_DATA) + "/golden/metaquant-ref");
  return set;
}

void check_case(const std::string& name) {
  const golden::Set& set = golden_set();
  golden::Verdict v = golden::verify_quant(set, set.find(name));
  std::string report;
  for (const auto& line : v.lines) report += line + "\n";
  INFO("golden case " << name << ":\n" << report);
  std::cout << "golden " << name << (v.ok ? " PASS" : " FAIL") << "\n" << report;
  REQUIRE(v.ok);
}
}  // namespace

#define MQ_GOLDEN_CASE(name) \
  TEST_CASE("golden " name, "[golden][golden-quant]") { check_case(name); }

MQ_GOLDEN_CASE("ste-dorefa-sgd")
MQ_GOLDEN_CASE("ste-dorefa-adam")
MQ_GOLDEN_CASE("ste-bwn-sgd")
MQ_GOLDEN_CASE("ste-bwn-adam")
MQ_GOLDEN_CASE("ste-dorefa2-sgd")
MQ_GOLDEN_CASE("metaquant-dorefa-sgd-MultiFC")
MQ_GOLDEN_CASE("metaquant-dorefa-sgd-FC-Grad")
MQ_GOLDEN_CASE("metaquant-dorefa-sgd-LSTMFC")
MQ_GOLDEN_CASE("metaquant-dorefa-adam-MultiFC")
MQ_GOLDEN_CASE("metaquant-dorefa-adam-FC-Grad")
MQ_GOLDEN_CASE("metaquant-dorefa-adam-LSTMFC")
MQ_GOLDEN_CASE("metaquant-bwn-sgd-MultiFC")
MQ_GOLDEN_CASE("metaquant-bwn-sgd-FC-Grad")
MQ_GOLDEN_CASE("metaquant-bwn-sgd-LSTMFC")
MQ_GOLDEN_CASE("metaquant-bwn-adam-MultiFC")
MQ_GOLDEN_CASE("metaquant-bwn-adam-FC-Grad")
MQ_GOLDEN_CASE("metaquant-bwn-adam-LSTMFC")
MQ_GOLDEN_CASE("metaquant-dorefa2-sgd-MultiFC")
MQ_GOLDEN_CASE("metaquant-dorefa2-adam-LSTMFC")

TEST_CASE("golden: every quantized case of the manifest has a test", "[golden]") {
  const char* covered[] = {"ste-dorefa-sgd", "ste-dorefa-adam", "ste-bwn-sgd", "ste-bwn-adam",
                           "ste-dorefa2-sgd", "metaquant-dorefa-sgd-MultiFC",
                           "metaquant-dorefa-sgd-FC-Grad", "metaquant-dorefa-sgd-LSTMFC",
                           "metaquant-dorefa-adam-MultiFC", "metaquant-dorefa-adam-FC-Grad",
                           "metaquant-dorefa-adam-LSTMFC", "metaquant-bwn-sgd-MultiFC",
                           "metaquant-bwn-sgd-FC-Grad", "metaquant-bwn-sgd-LSTMFC",
                           "metaquant-bwn-adam-MultiFC", "metaquant-bwn-adam-FC-Grad",
                           "metaquant-bwn-adam-LSTMFC", "metaquant-dorefa2-sgd-MultiFC",
                           "metaquant-dorefa2-adam-LSTMFC"};
  for (const auto& c : golden_set().cases) {
    if (c.mode == "fp") continue;
    bool found = false;
    for (const char* n : covered) found = found || c.name == n;
    INFO("case " << c.name);
    CHECK(found);
  }
}

TEST_CASE("golden: verify_golden_dir selects cases and reports", "[golden]") {
  std::ostringstream out;
  const std::string dir = std::string(MQ_TEST_DATA) + "/golden/metaquant-ref";
  REQUIRE(golden::verify_golden_dir(dir, "ste-bwn-sgd", out));
  REQUIRE_THAT(out.str(), Catch::Contains("PASS ste-bwn-sgd"));
  REQUIRE_THAT(out.str(), Catch::Contains("1 of 1 golden case(s) pass"));
  REQUIRE_THROWS_WITH(golden::verify_golden_dir(dir, "no-such-case", out),
                      Catch::Contains("cases: fp-sgd"));
}
