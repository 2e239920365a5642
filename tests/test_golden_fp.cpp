// Replays the full-precision golden cases of the MetaQuant reference (tests/data/golden,
// tolerances of its README; see meta/golden/golden.h).
#include <iostream>

#include "meta/golden/golden.h"
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
  REQUIRE(golden::compare_tensor("t", a, b, Rule::final_sgd).ok);
  Tensor far = Tensor::from_vector<float>({1, -2, 3.0002f, 4}, {4});  // 1e-4 + 1e-5 * 3 < 2e-4
  auto d = golden::compare_tensor("t", far, b, Rule::final_sgd);
  REQUIRE(!d.ok);
  REQUIRE(d.worst_index == 2);
  REQUIRE_THAT(d.str(), Catch::Contains("[2]"));
  REQUIRE(golden::compare_tensor("t", far, b, Rule::allclose).ok);  // 1e-5 + 1e-4 * 3
  // Relative where values are large (a running variance of 2000): tol = 1e-4 + 2e-2.
  Tensor var = Tensor::from_vector<float>({2000}, {1});
  REQUIRE(golden::compare_tensor("v", Tensor::from_vector<float>({2000.015f}, {1}), var,
                                 Rule::final_sgd).ok);
  REQUIRE(!golden::compare_tensor("v", Tensor::from_vector<float>({2000.03f}, {1}), var,
                                  Rule::final_sgd).ok);
  // Adam rule: every element within 1e-2 + 1e-3|x|, and 99.9% of all the case's final elements
  // (counted over every report) within tol. One outlier in 1000 is allowed; two are not, unless
  // another report's elements make up the fraction.
  std::vector<float> ref(1000, 0.5f), got = ref;
  got[17] += 5e-3f;
  Tensor r = Tensor::from_vector(ref, {1000});
  auto adam = [&](const std::vector<float>& v) {
    return golden::compare_state({{"w", Tensor::from_vector(v, {1000})}}, {{"w", r}},
                                 Rule::final_adam);
  };
  golden::Report one = adam(got);
  REQUIRE(one.ok);
  REQUIRE(golden::adam_fraction({&one}).ok);
  got[18] += 5e-3f;
  golden::Report two = adam(got);
  REQUIRE(two.ok);
  REQUIRE(!golden::adam_fraction({&two}).ok);
  golden::Report clean = adam(ref);
  REQUIRE(golden::adam_fraction({&two, &clean}).ok);  // 1998 of 2000
  REQUIRE_THAT(golden::adam_fraction({&two}).str(), Catch::Contains("99.8000%"));
  got[18] = 0.5f, got[17] = 0.52f;  // beyond 1e-2 + 1e-3 * 0.5
  REQUIRE(!adam(got).ok);
  auto rep = golden::compare_state({{"x", a}}, {{"x", b}, {"y", b}}, Rule::final_sgd);
  REQUIRE(!rep.ok);
  REQUIRE_THAT(rep.str(), Catch::Contains("y: missing"));
  REQUIRE(golden::worst_loss_rel({1.0, 2.0002}, {1.0, 2.0}) == Approx(1e-4));
}

TEST_CASE("golden fp-sgd: ResNet20 full precision, SGD", "[golden]") { check_case("fp-sgd"); }
TEST_CASE("golden fp-adam: ResNet20 full precision, Adam", "[golden]") { check_case("fp-adam"); }

// Diagnostic: the same replay in double precision (hidden; run with "[golden-f64]").
TEST_CASE("golden fp-sgd in f64", "[.golden-f64]") { check_case("fp-sgd", DType::f64); }
TEST_CASE("golden fp-adam in f64", "[.golden-f64]") { check_case("fp-adam", DType::f64); }
