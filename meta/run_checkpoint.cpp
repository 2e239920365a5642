#include "meta/run_checkpoint.h"

#include "engine/io/checkpoint.h"

namespace mq {
namespace {

constexpr const char* kKind = "mq-training-run";

nlohmann::json progress_json(const RunProgress& p) {
  return {{"epochs_done", p.epochs_done},
          {"iterations", p.iterations},
          {"lr", p.lr},
          {"schedule", {{"best", p.schedule.best}, {"have_best", p.schedule.have_best},
                        {"bad", p.schedule.bad}}},
          {"test_acc", p.test_acc},
          {"best", p.best},
          {"finished", p.finished}};
}

RunProgress parse_progress(const nlohmann::json& meta, const std::string& path) {
  MQ_CHECK(meta.is_object() && meta.value("kind", "") == kKind && meta.contains("progress"),
           "{}: not a training-run checkpoint (no '{}' metadata); pass the checkpoint.mqck of a "
           "run directory", path, kKind);
  try {
    const auto& j = meta.at("progress");
    RunProgress p;
    p.epochs_done = j.at("epochs_done").get<int>();
    p.iterations = j.at("iterations").get<int64_t>();
    p.lr = j.at("lr").get<double>();
    p.schedule = {j.at("schedule").at("best").get<double>(),
                  j.at("schedule").at("have_best").get<bool>(),
                  j.at("schedule").at("bad").get<int>()};
    p.test_acc = j.at("test_acc").get<std::vector<double>>();
    p.best = j.at("best").get<double>();
    p.finished = j.at("finished").get<bool>();
    MQ_CHECK(p.epochs_done >= 0 && p.iterations >= 0 &&
                 p.test_acc.size() == static_cast<size_t>(p.epochs_done),
             "{}: inconsistent progress ({} epochs done, {} test accuracies)", path,
             p.epochs_done, p.test_acc.size());
    return p;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed run progress metadata: {}", path, e.what());
  }
}

}  // namespace

void save_run_checkpoint(const std::string& path, const ResNetCifar& model,
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

RunProgress load_run_checkpoint(const std::string& path, ResNetCifar& model,
                                QuantTrainer& trainer, const nlohmann::json& identity) {
  Checkpoint ck = load_checkpoint(path);
  RunProgress p = parse_progress(ck.meta, path);
  const nlohmann::json saved = ck.meta.value("identity", nlohmann::json::object());
  for (const auto& [key, value] : identity.items()) {
    if (!saved.contains(key)) continue;
    MQ_CHECK(saved[key] == value,
             "{}: cannot resume: this run has {} = {} but the checkpoint was made with {}; use "
             "the original settings, or start a new run without --resume",
             path, key, value.dump(), saved[key].dump());
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
