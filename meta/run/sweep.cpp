#include "meta/run/sweep.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kernels/base/text.h"

namespace mq {
namespace {

struct Key {
  const char* name;
  void (*apply)(RunSettings&, const std::string&);
};

double number(const std::string& key, const std::string& v) {
  double d = 0;
  MQ_CHECK(parse_whole(v, d), "--grid {}={}: not a number", key, v);
  return d;
}
int integer(const std::string& key, const std::string& v) {
  const double d = number(key, v);
  MQ_CHECK(d == double(int(d)), "--grid {}={}: not an integer", key, v);
  return int(d);
}

const Key kKeys[] = {
    {"meta", [](RunSettings& s, const std::string& v) { s.backward = v; }},
    {"optimizer", [](RunSettings& s, const std::string& v) { s.optimizer = v; }},
    {"quantize", [](RunSettings& s, const std::string& v) { s.quantizer = v; }},
    {"bits", [](RunSettings& s, const std::string& v) { s.bits = integer("bits", v); }},
    {"lr", [](RunSettings& s, const std::string& v) { s.lr = number("lr", v); }},
    {"lr-adjust", [](RunSettings& s, const std::string& v) { s.lr_adjust = v; }},
    {"hidden", [](RunSettings& s, const std::string& v) { s.hidden = integer("hidden", v); }},
    {"nfc", [](RunSettings& s, const std::string& v) { s.num_fc = integer("nfc", v); }},
    {"model", [](RunSettings& s, const std::string& v) { s.model = ascii_lower(v); }},
};

const Key& find_key(const std::string& name) {
  for (const Key& k : kKeys)
    if (name == k.name) return k;
  fail("--grid {}=...: unknown setting; use one of {}", name, sweep_keys());
}

// A value as part of a run directory name: letters, digits, '.', '-' and '+' kept.
std::string name_part(const std::string& v) {
  std::string out;
  for (char c : v) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+') ? c : '_';
  return out;
}

std::string result_json(const RunResult& r) {
  return nlohmann::json{{"best", r.best}, {"test_acc", r.test_acc}, {"train_loss", r.train_loss}}
      .dump();
}
RunResult result_from(const nlohmann::json& j) {
  return {j.at("best").get<double>(), j.at("test_acc").get<std::vector<double>>(),
          j.at("train_loss").get<std::vector<double>>()};
}

}  // namespace

std::string sweep_keys() {
  std::string out;
  for (const Key& k : kKeys) out += (out.empty() ? "" : ", ") + std::string(k.name);
  return out;
}

SweepAxis parse_sweep_axis(const std::string& text) {
  const size_t eq = text.find('=');
  MQ_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < text.size(),
           "--grid '{}': expected KEY=V1,V2,... (KEY one of {})", text, sweep_keys());
  SweepAxis a;
  a.key = text.substr(0, eq);
  find_key(a.key);
  std::string rest = text.substr(eq + 1);
  for (size_t at = 0; at <= rest.size();) {
    const size_t comma = std::min(rest.find(',', at), rest.size());
    const std::string v = rest.substr(at, comma - at);
    MQ_CHECK(!v.empty(), "--grid '{}': an empty value", text);
    for (const std::string& seen : a.values)
      MQ_CHECK(seen != v, "--grid '{}': the value '{}' twice", text, v);
    a.values.push_back(v);
    at = comma + 1;
  }
  MQ_CHECK(a.values.size() <= 64, "--grid '{}': {} values; at most 64 per setting", text,
           a.values.size());
  return a;
}

std::vector<SweepSetting> expand_grid(const RunSettings& base, const std::vector<SweepAxis>& axes) {
  MQ_CHECK(!axes.empty(), "sweep: no --grid KEY=V1,V2,... given");
  for (size_t i = 0; i < axes.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      MQ_CHECK(axes[i].key != axes[j].key, "--grid {}: given twice; list all its values once",
               axes[i].key);
  std::vector<SweepSetting> out{{"", "", base, {}}};
  for (const SweepAxis& a : axes) {
    std::vector<SweepSetting> next;
    for (const SweepSetting& s : out)
      for (const std::string& v : a.values) {
        SweepSetting t = s;
        find_key(a.key).apply(t.settings, v);
        t.label += (t.label.empty() ? "" : " ") + a.key + "=" + v;
        t.run_name += (t.run_name.empty() ? "" : "_") + a.key + "-" + name_part(v);
        t.values.push_back(v);
        next.push_back(std::move(t));
      }
    out = std::move(next);
    MQ_CHECK(out.size() <= 4096, "sweep: more than 4096 settings");
  }
  for (SweepSetting& s : out) {
    s.settings.run_name = s.run_name.substr(0, kMaxRunName - 20);
    try {
      validate_run_settings(s.settings);
    } catch (const Error& e) {
      fail("--grid setting '{}': {}", s.label, e.what());
    }
  }
  return out;
}

std::vector<SweepResult> run_sweep(const std::vector<SweepSetting>& settings, Communicator& comm,
                                   const RunHooks& hooks) {
  MQ_CHECK(!settings.empty(), "sweep: no settings");
  const int trials = settings.front().settings.trials;
  const int jobs = static_cast<int>(settings.size()) * trials;
  // Job j: setting j / trials, trial j % trials, on rank j % N.
  nlohmann::json mine = nlohmann::json::array();
  for (int j = comm.rank(); j < jobs; j += comm.size()) {
    const SweepSetting& s = settings[size_t(j / trials)];
    std::printf("sweep: job %d of %d on rank %d: %s, trial %d\n", j + 1, jobs, comm.rank(),
                s.label.c_str(), j % trials);
    mine.push_back(result_json(run_training(s.settings, j % trials, hooks)));
  }
  const std::vector<std::string> all = comm.allgather(mine.dump());
  std::vector<nlohmann::json> per_rank;
  for (const std::string& text : all) per_rank.push_back(nlohmann::json::parse(text));
  std::vector<SweepResult> out;
  for (const SweepSetting& s : settings) out.push_back({s, {}, {}});
  for (int j = 0; j < jobs; ++j) {
    const nlohmann::json& r = per_rank[size_t(j % comm.size())].at(size_t(j / comm.size()));
    out[size_t(j / trials)].trials.push_back(
        result_from(nlohmann::json::parse(r.get<std::string>())));
  }
  for (SweepResult& r : out) r.summary = summarize_trials(r.trials);
  return out;
}

std::string sweep_table(const std::vector<SweepAxis>& axes, const std::vector<SweepResult>& results) {
  std::string md = "|", rule = "|";
  for (const SweepAxis& a : axes) {
    md += " " + a.key + " |";
    rule += "---|";
  }
  md += " trials | best test acc % (mean) | (var) | last-10-epoch test acc % (mean) | (var) |\n" +
        rule + "---:|---:|---:|---:|---:|\n";
  for (const SweepResult& r : results) {
    md += "|";
    for (const std::string& v : r.setting.values) md += " " + v + " |";
    md += fmt::format(" {} | {:.2f} | {:.3f} | {:.2f} | {:.3f} |\n", r.trials.size(),
                      r.summary.best_mean, r.summary.best_var, r.summary.last10_mean,
                      r.summary.last10_var);
  }
  return md;
}

}  // namespace mq
