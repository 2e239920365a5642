#include "meta/run/run_checkpoint.h"

#include <cmath>
#include <cstdint>

#include "engine/io/checkpoint.h"

namespace mq {
namespace {

constexpr const char* kKind = "mq-training-run";

nlohmann::json progress_json(const RunProgress& p) {
  nlohmann::json j = {{"epochs_done", p.epochs_done},
          {"iterations", p.iterations},
          {"lr", p.lr},
          {"schedule", {{"best", p.schedule.best}, {"have_best", p.schedule.have_best},
                        {"bad", p.schedule.bad}}},
          {"test_acc", p.test_acc},
          {"best", p.best},
          {"finished", p.finished}};
  // Complete, or not at all (a run resumed from a checkpoint without them).
  if (p.train_loss.size() == p.test_acc.size()) j["train_loss"] = p.train_loss;
  return j;
}

// Typed reads of the progress metadata: a field that is missing, of the wrong type or out of
// range is an error naming the file and the field (the CRC only says the bytes are the ones
// written, not that a writer wrote sensible values).
class Fields {
 public:
  Fields(const nlohmann::json& j, std::string path, std::string where)
      : j_(j), path_(std::move(path)), where_(std::move(where)) {}

  const nlohmann::json& at(const char* key) const {
    MQ_CHECK(j_.is_object(), "{}: malformed run checkpoint: '{}' is a {}, not an object", path_,
             where_, j_.type_name());
    auto it = j_.find(key);
    MQ_CHECK(it != j_.end(), "{}: malformed run checkpoint: '{}.{}' is missing", path_, where_,
             key);
    return *it;
  }
  Fields object(const char* key) const { return Fields(at(key), path_, where_ + "." + key); }
  int64_t integer(const char* key, int64_t lo, int64_t hi) const {
    const nlohmann::json& v = at(key);
    MQ_CHECK(v.is_number_integer(),
             "{}: malformed run checkpoint: '{}.{}' must be an integer, "
             "found {} {}",
             path_, where_, key, v.type_name(), short_dump(v));
    MQ_CHECK(!(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) &&
                 v.get<int64_t>() >= lo && v.get<int64_t>() <= hi,
             "{}: malformed run checkpoint: '{}.{}' = {} is outside [{}, {}]", path_, where_, key,
             short_dump(v), lo, hi);
    return v.get<int64_t>();
  }
  double real(const nlohmann::json& v, const std::string& name) const {
    MQ_CHECK(v.is_number(), "{}: malformed run checkpoint: '{}' must be a number, found {} {}",
             path_, name, v.type_name(), short_dump(v));
    double d = v.get<double>();
    MQ_CHECK(std::isfinite(d), "{}: malformed run checkpoint: '{}' = {} is not finite", path_, name,
             d);
    return d;
  }
  double real(const char* key) const { return real(at(key), where_ + "." + key); }
  bool boolean(const char* key) const {
    const nlohmann::json& v = at(key);
    MQ_CHECK(v.is_boolean(),
             "{}: malformed run checkpoint: '{}.{}' must be true or false, "
             "found {} {}",
             path_, where_, key, v.type_name(), short_dump(v));
    return v.get<bool>();
  }
  std::vector<double> reals(const char* key) const {
    const nlohmann::json& v = at(key);
    MQ_CHECK(v.is_array(),
             "{}: malformed run checkpoint: '{}.{}' must be a list of numbers, "
             "found {} {}",
             path_, where_, key, v.type_name(), short_dump(v));
    std::vector<double> out;
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(real(v[i], fmt::format("{}.{}[{}]", where_, key, i)));
    return out;
  }

 private:
  static std::string short_dump(const nlohmann::json& v) {
    std::string s = v.dump();
    return s.size() > 40 ? s.substr(0, 40) + "..." : s;
  }
  const nlohmann::json& j_;
  std::string path_, where_;
};

const nlohmann::json& run_metadata(const nlohmann::json& meta, const std::string& path) {
  const bool is_run = meta.is_object() && meta.contains("kind") && meta["kind"].is_string() &&
                      meta["kind"].get<std::string>() == kKind && meta.contains("progress");
  MQ_CHECK(is_run,
           "{}: not a training-run checkpoint (no '{}' metadata); pass the checkpoint.mqck of a "
           "run directory",
           path, kKind);
  return meta;
}

RunProgress parse_progress(const nlohmann::json& meta, const std::string& path) {
  const Fields j = Fields(run_metadata(meta, path), path, "metadata").object("progress");
  const Fields schedule = j.object("schedule");
  RunProgress p;
  p.epochs_done = static_cast<int>(j.integer("epochs_done", 0, INT32_MAX));
  p.iterations = j.integer("iterations", 0, INT64_MAX);
  p.lr = j.real("lr");
  p.schedule = {schedule.real("best"), schedule.boolean("have_best"),
                static_cast<int>(schedule.integer("bad", 0, INT32_MAX))};
  p.test_acc = j.reals("test_acc");
  // Checkpoints of earlier versions have no train_loss: those epochs' losses stay unknown.
  if (run_metadata(meta, path).at("progress").contains("train_loss")) {
    p.train_loss = j.reals("train_loss");
    MQ_CHECK(p.train_loss.size() == p.test_acc.size(),
             "{}: inconsistent progress ({} training losses, {} test accuracies)", path,
             p.train_loss.size(), p.test_acc.size());
  }
  p.best = j.real("best");
  p.finished = j.boolean("finished");
  MQ_CHECK(p.test_acc.size() == static_cast<size_t>(p.epochs_done),
           "{}: inconsistent progress ({} epochs done, {} test accuracies)", path, p.epochs_done,
           p.test_acc.size());
  return p;
}

}  // namespace

void save_run_checkpoint(const std::string& path, const Model& model,
                         const QuantTrainer& trainer, const RunProgress& progress,
                         const nlohmann::json& identity) {
  TensorMap tensors;
  add_prefixed(tensors, "model.", model.state_dict());
  add_prefixed(tensors, "trainer.", trainer.state_dict());
  save_checkpoint(path, tensors,
                  {{"kind", kKind}, {"identity", identity}, {"progress", progress_json(progress)}});
}

RunProgress read_run_progress(const std::string& path) {
  return parse_progress(load_checkpoint(path).meta, path);
}

RunProgress load_run_checkpoint(const std::string& path, Model& model,
                                QuantTrainer& trainer, const nlohmann::json& identity) {
  Checkpoint ck = load_checkpoint(path);
  RunProgress p = parse_progress(ck.meta, path);
  // Without its identity a checkpoint cannot show it belongs to this run: refused, not resumed
  // with whatever settings it was made with.
  MQ_CHECK(ck.meta.contains("identity") && ck.meta["identity"].is_object(),
           "{}: cannot resume: the checkpoint has no run identity (its settings), so it cannot be "
           "checked against this run's; start a new run without --resume",
           path);
  const nlohmann::json& saved = ck.meta["identity"];
  for (const auto& [key, value] : identity.items()) {
    if (!saved.contains(key)) continue;
    MQ_CHECK(saved[key] == value,
             "{}: cannot resume: this run has {} = {} but the checkpoint was made with {}{}; use "
             "the original settings, or start a new run without --resume",
             path, key, value.dump(), saved[key].dump(),
             key == "batch_slices" ? " (the ranks of mpirun -np times --accumulate)" : "");
  }
  for (const auto& [k, v] : ck.tensors)
    MQ_CHECK(k.starts_with("model.") || k.starts_with("trainer."),
             "{}: unexpected tensor '{}' in a training-run checkpoint", path, k);
  try {
    model.load_state_dict(strip_prefix(ck.tensors, "model."), true);
    trainer.load_state_dict(strip_prefix(ck.tensors, "trainer."));
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  return p;
}

}  // namespace mq
