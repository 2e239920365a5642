// Replays the full-precision golden cases of the MetaQuant reference (tests/data/golden,
// tolerances of its README; see meta/golden.h).
#include <iostream>

#include "meta/golden.h"
#include "op_test.h"

using namespace mq;

namespace {
const golden::Set& golden_set() {
  static const golden::Set set = golden::load_set(std::string(MQ_TEST_DATA) +
                                                  "/golden/metaquant-ref");
  return set;
}

void check_case(const std::string& name, DType dtype = DType::f32) {
  const golden::Set& set = golden_set();
  golden::Verdict v = golden::verify_fp(set, set.find(name), dtype);
  std::string report;
  for (const auto& line : v.lines) report += line + "\n";
  INFO("golden case " << name << ":\n" << report);
  std::cout << "golden " << name << (v.ok ? " PASS" : " FAIL") << "\n" << report;
  REQUIRE(v.ok);
}
}  // namespace

TEST_CASE("golden manifest loads", "[golden]") {
  const golden::Set& set = golden_set();
  REQUIRE(set.steps == 4);
  REQUIRE(set.batch == 8);
  REQUIRE(set.lr == 1e-3);
  REQUIRE(set.find("fp-sgd").optimizer == "SGD");
  REQUIRE(set.find("fp-adam").losses.size() == 4);
  REQUIRE(set.batch_x(3).shape() == Shape{8, 3, 32, 32});
  REQUIRE(set.batch_y(1).dtype() == DType::i64);
  REQUIRE_THROWS_WITH(set.find("fp-rmsprop"), Catch::Contains("cases: fp-sgd, fp-adam"));
}

TEST_CASE("golden comparison rules", "[golden]") {
  using golden::Rule;
  Tensor b = Tensor::from_vector<float>({1, -2, 3, 4}, {4});
  Tensor a = Tensor::from_vector<float>({1, -2, 3.00005f, 4}, {4});
  REQUIRE(golden::compare_tensor("t", a, b, Rule::max_abs).ok);
  Tensor far = Tensor::from_vector<float>({1, -2, 3.0002f, 4}, {4});
  auto d = golden::compare_tensor("t", far, b, Rule::max_abs);
  REQUIRE(!d.ok);
  REQUIRE(d.worst_index == 2);
  REQUIRE_THAT(d.str(), Catch::Contains("[2]"));
  REQUIRE(golden::compare_tensor("t", far, b, Rule::allclose).ok);  // 1e-5 + 1e-4 * 3
  // Adam rule: one outlier in 1000 is allowed if within 1e-2; one in 500 is not.
  std::vector<float> ref(1000, 0.5f), got = ref;
  got[17] += 5e-3f;
  Tensor r = Tensor::from_vector(ref, {1000});
  REQUIRE(golden::compare_tensor("w", Tensor::from_vector(got, {1000}), r, Rule::adam_final).ok);
  got[18] += 5e-3f;
  REQUIRE(!golden::compare_tensor("w", Tensor::from_vector(got, {1000}), r, Rule::adam_final).ok);
  got[18] = 0.5f, got[17] = 0.52f;
  REQUIRE(!golden::compare_tensor("w", Tensor::from_vector(got, {1000}), r, Rule::adam_final).ok);
  auto rep = golden::compare_state({{"x", a}}, {{"x", b}, {"y", b}}, Rule::max_abs);
  REQUIRE(!rep.ok);
  REQUIRE_THAT(rep.str(), Catch::Contains("y: missing"));
  REQUIRE(golden::worst_loss_rel({1.0, 2.0002}, {1.0, 2.0}) == Approx(1e-4));
}

TEST_CASE("golden fp-sgd: ResNet20 full precision, SGD", "[golden]") { check_case("fp-sgd"); }
TEST_CASE("golden fp-adam: ResNet20 full precision, Adam", "[golden]") { check_case("fp-adam"); }

// Diagnostic: the same replay in double precision (hidden; run with "[golden-f64]").
TEST_CASE("golden fp-sgd in f64", "[.golden-f64]") { check_case("fp-sgd", DType::f64); }
TEST_CASE("golden fp-adam in f64", "[.golden-f64]") { check_case("fp-adam", DType::f64); }
