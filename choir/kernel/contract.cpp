#include "choir/kernel/contract.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <set>

#include "choir/core/yaml.hpp"

namespace choir::kernel {
namespace {

class kernel_category_impl final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "choir.kernel"; }
  [[nodiscard]] std::string message(int ev) const override {
    switch (static_cast<kernel_errc>(ev)) {
      case kernel_errc::invalid_contract: return "invalid contract";
      case kernel_errc::no_contract: return "no contract";
      case kernel_errc::not_admitted: return "not admitted";
      case kernel_errc::denied: return "denied";
      case kernel_errc::no_audit_key: return "no audit key";
      case kernel_errc::audit_broken: return "audit log broken";
    }
    return "unknown kernel error";
  }
};

/// Reads one contract document, failing with the location of the first bad field.
class contract_reader {
 public:
  explicit contract_reader(const yaml_document& doc) : doc_(doc) {}

  result<contract_report> read() {
    const value& root = doc_.root();
    CHOIR_CHECK(only(root, "",
                     {"apiVersion", "kind", "name", "description", "class", "modes", "capabilities", "compute",
                      "modelPolicy", "memory", "security", "observability", "budget"}));
    if (!root.contains("apiVersion") || root["apiVersion"] != "agentos/v0.2") {
      return fail("apiVersion", "expected agentos/v0.2");
    }
    contract_report out;
    agent_contract& c = out.contract;
    CHOIR_TRY(c.name, name_field(root, "name"));
    if (root.contains("description") && !root["description"].is_string()) return fail("description", "expected text");

    if (!root.contains("class")) return fail("class", "a contract needs its class (latency: HRT, SRT or DT)");
    CHOIR_CHECK(mapping(root["class"], "class"));
    CHOIR_CHECK(only(root["class"], "class", {"latency", "slo"}));
    CHOIR_CHECK(read_class(root["class"], "class", c.latency, c.slo));
    if (c.latency == graph::latency_class::hrt && !c.slo.deadline_ms) {
      return fail("class", "an HRT agent needs slo.deadline_ms: every step's deadline");
    }

    if (root.contains("modes")) {
      const value& modes = root["modes"];
      CHOIR_CHECK(mapping(modes, "modes"));
      std::set<std::string> taken;  // each action in one mode at most
      for (const auto& [mode_name, spec] : modes.items()) {
        const std::string path = "modes." + mode_name;
        const bool well_formed = !mode_name.empty() && mode_name.size() <= 64 &&
                                 std::all_of(mode_name.begin(), mode_name.end(), [](char ch) {
                                   return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                                          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
                                 });
        if (!well_formed) return fail(path, "a mode's name is letters, digits, '_' and '-' (1 to 64)");
        CHOIR_CHECK(mapping(spec, path));
        CHOIR_CHECK(only(spec, path, {"latency", "slo", "actions"}));
        mode_class m;
        m.name = mode_name;
        CHOIR_CHECK(read_class(spec, path, m.latency, m.slo));
        CHOIR_TRY(m.actions, strings(spec, path, "actions"));
        if (m.actions.empty()) return fail(path + ".actions", "name the actions that run in this mode");
        for (std::size_t i = 0; i < m.actions.size(); ++i) {
          if (!taken.insert(m.actions[i]).second) {
            return fail(path + ".actions." + std::to_string(i),
                        "action " + m.actions[i] + " is in another mode already (one mode per action)");
          }
        }
        if (m.latency == graph::latency_class::hrt && !m.slo.deadline_ms && !c.slo.deadline_ms) {
          return fail(path, "an HRT mode needs slo.deadline_ms (its own, or the agent's): every step's deadline");
        }
        c.modes.push_back(std::move(m));
      }
    }

    if (root.contains("capabilities")) {
      const value& caps = root["capabilities"];
      if (!caps.is_array()) return fail("capabilities", "expected a list of capability names");
      std::set<std::string> seen;
      for (std::size_t i = 0; i < caps.size(); ++i) {
        const std::string path = "capabilities." + std::to_string(i);
        capability cap;
        if (caps[i].is_string()) {
          cap.name = caps[i].get<std::string>();
        } else if (caps[i].is_object()) {
          CHOIR_CHECK(only(caps[i], path, {"name", "allow"}));
          if (!caps[i].contains("name") || !caps[i]["name"].is_string()) return fail(path + ".name", "expected a name");
          cap.name = caps[i]["name"].get<std::string>();
          CHOIR_TRY(cap.allow, strings(caps[i], path, "allow"));
          if (cap.allow.empty()) return fail(path + ".allow", "an empty allow list grants nothing; leave it out");
        } else {
          return fail(path, "expected a capability name, or {name, allow}");
        }
        CHOIR_CHECK(capability_name(cap.name, path));
        if (!seen.insert(cap.name).second) return fail(path, "'" + cap.name + "' is listed twice");
        c.capabilities.push_back(std::move(cap));
      }
    }

    if (root.contains("compute")) {
      const value& compute = root["compute"];
      CHOIR_CHECK(mapping(compute, "compute"));
      CHOIR_CHECK(only(compute, "compute", {"cpu", "mem", "gpu_mem"}));
      if (compute.contains("cpu")) {
        CHOIR_TRY(c.cpu, cpu(compute["cpu"]));
      }
      if (compute.contains("mem")) {
        CHOIR_TRY(c.mem_bytes, bytes(compute["mem"], "compute.mem"));
      }
      if (compute.contains("gpu_mem")) {
        CHOIR_TRY(c.gpu_mem_bytes, bytes(compute["gpu_mem"], "compute.gpu_mem"));
        out.not_enforced.emplace_back("compute.gpu_mem: this node reserves no GPU memory yet");
      }
    }

    if (root.contains("modelPolicy")) {
      const value& mp = root["modelPolicy"];
      CHOIR_CHECK(mapping(mp, "modelPolicy"));
      CHOIR_CHECK(only(mp, "modelPolicy", {"allow", "max_context_tokens", "placement"}));
      CHOIR_TRY(c.models_allowed, strings(mp, "modelPolicy", "allow"));
      CHOIR_TRY(c.max_context_tokens, positive_int(mp, "modelPolicy", "max_context_tokens", 100'000'000));
      CHOIR_TRY(c.placement, strings(mp, "modelPolicy", "placement"));
      // `allow` is admission's model clause; `max_context_tokens` is checked by the gate before
      // each model call.
      if (!c.placement.empty()) {
        out.not_enforced.emplace_back("modelPolicy.placement: every model of the gateway is equally placed yet");
      }
    }

    if (root.contains("memory")) {
      const value& mem = root["memory"];
      CHOIR_CHECK(mapping(mem, "memory"));
      CHOIR_CHECK(only(mem, "memory", {"namespace", "retention_days", "rag"}));
      if (mem.contains("namespace")) {
        CHOIR_TRY(c.memory_namespace, name_field(mem, "namespace", "memory."));
      }
      CHOIR_TRY(c.retention_days, positive_int(mem, "memory", "retention_days", 36'500, true));
      if (mem.contains("rag")) {
        const value& rag = mem["rag"];
        CHOIR_CHECK(mapping(rag, "memory.rag"));
        CHOIR_CHECK(only(rag, "memory.rag", {"top_k", "require_grounding"}));
        CHOIR_TRY(c.rag_top_k, positive_int(rag, "memory.rag", "top_k", 1000));
        if (rag.contains("require_grounding")) {
          if (!rag["require_grounding"].is_boolean())
            return fail("memory.rag.require_grounding", "expected true or false");
          c.rag_require_grounding = rag["require_grounding"].get<bool>();
        }
      }
      out.not_enforced.emplace_back("memory: the memory service does not exist yet");
    }

    if (root.contains("security")) {
      const value& sec = root["security"];
      CHOIR_CHECK(mapping(sec, "security"));
      CHOIR_CHECK(only(sec, "security", {"consent_for", "data_scopes"}));
      CHOIR_TRY(c.consent_for, strings(sec, "security", "consent_for"));
      for (std::size_t i = 0; i < c.consent_for.size(); ++i) {
        const std::string path = "security.consent_for." + std::to_string(i);
        CHOIR_CHECK(capability_name(c.consent_for[i], path));
        if (!c.allows(c.consent_for[i])) {
          return fail(path, "'" + c.consent_for[i] + "' is not among the contract's capabilities");
        }
      }
      CHOIR_TRY(c.data_scopes, strings(sec, "security", "data_scopes"));
      if (!c.data_scopes.empty()) out.not_enforced.emplace_back("security.data_scopes: nothing scopes data yet");
    }

    if (root.contains("observability")) {
      const value& obs = root["observability"];
      CHOIR_CHECK(mapping(obs, "observability"));
      CHOIR_CHECK(only(obs, "observability", {"tracing", "log_fields"}));
      if (obs.contains("tracing")) {
        if (!obs["tracing"].is_string() || (obs["tracing"] != "opentelemetry" && obs["tracing"] != "none")) {
          return fail("observability.tracing", "expected opentelemetry or none");
        }
        c.tracing = obs["tracing"].get<std::string>();
      }
      CHOIR_TRY(c.log_fields, strings(obs, "observability", "log_fields"));
      if (c.tracing == "opentelemetry") {
        out.not_enforced.emplace_back("observability.tracing: tracing comes with telemetry");
      }
    }

    if (root.contains("budget")) {
      const value& b = root["budget"];
      CHOIR_CHECK(mapping(b, "budget"));
      CHOIR_CHECK(only(b, "budget", {"max_tokens_per_turn", "max_tokens_per_run", "max_cost_usd_per_run"}));
      CHOIR_TRY(c.max_tokens_per_turn, positive_int(b, "budget", "max_tokens_per_turn", 1'000'000'000));
      CHOIR_TRY(c.max_tokens_per_run, positive_int(b, "budget", "max_tokens_per_run", 1'000'000'000'000));
      CHOIR_TRY(c.max_cost_usd_per_run, number(b, "budget", "max_cost_usd_per_run", 0, 1e9));
    }
    return out;
  }

 private:
  [[nodiscard]] error fail(const std::string& path, const std::string& message) const {
    return make_error(kernel_errc::invalid_contract, doc_.locate(path) + ": " + path + ": " + message);
  }

  /// `latency` and `slo` of a class (`class:`, or a mode's).
  result<void> read_class(const value& cls, const std::string& path, graph::latency_class& latency,
                          service_level& slo) const {
    if (!cls.contains("latency") || !cls["latency"].is_string()) {
      return fail(path + ".latency", "expected HRT, SRT or DT");
    }
    const auto parsed = graph::parse_latency_class(cls["latency"].get<std::string>());
    if (!parsed) return fail(path + ".latency", "expected HRT, SRT or DT");
    latency = *parsed;
    if (!cls.contains("slo")) return {};
    const value& levels = cls["slo"];
    const std::string at = path + ".slo";
    CHOIR_CHECK(mapping(levels, at));
    CHOIR_CHECK(only(levels, at, {"onset_ms", "turn_ms", "jitter_p95_pct", "deadline_ms"}));
    CHOIR_TRY(slo.onset_ms, positive_int(levels, at, "onset_ms", 86'400'000));
    CHOIR_TRY(slo.turn_ms, positive_int(levels, at, "turn_ms", 86'400'000));
    CHOIR_TRY(slo.deadline_ms, positive_int(levels, at, "deadline_ms", 86'400'000));
    CHOIR_TRY(slo.jitter_p95_pct, number(levels, at, "jitter_p95_pct", 0, 100));
    if (slo.onset_ms && slo.turn_ms && *slo.onset_ms > *slo.turn_ms) {
      return fail(at + ".onset_ms", "the onset cannot be later than the whole turn (turn_ms)");
    }
    return {};
  }

  result<void> mapping(const value& v, const std::string& path) const {
    if (!v.is_object()) return fail(path, "expected a mapping");
    return {};
  }

  result<void> only(const value& v, const std::string& path, std::initializer_list<std::string_view> known) const {
    if (!v.is_object()) return fail(path.empty() ? "kind" : path, "expected a mapping");
    for (const auto& [key, item] : v.items()) {
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::string list;
        for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        const std::string at = path.empty() ? key : path + "." + key;
        return fail(at, "unknown field (known: " + list + ")");
      }
    }
    return {};
  }

  result<std::string> name_field(const value& v, const std::string& key, const std::string& prefix = "") const {
    const std::string path = prefix + key;
    if (!v.contains(key) || !v[key].is_string()) return fail(path, "expected a name");
    const std::string text = v[key].get<std::string>();
    const bool well_formed = !text.empty() && text.size() <= 128 && std::all_of(text.begin(), text.end(), [](char ch) {
      return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
             ch == '-' || ch == '.';
    });
    if (!well_formed) return fail(path, "expected letters, digits, '_', '-' or '.' (1 to 128)");
    return text;
  }

  result<void> capability_name(const std::string& text, const std::string& path) const {
    const bool well_formed = !text.empty() && text.size() <= 256 &&
                             std::islower(static_cast<unsigned char>(text[0])) != 0 &&
                             std::all_of(text.begin(), text.end(), [](char ch) {
                               return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
                                      ch == '-' || ch == ':' || ch == '/';
                             });
    if (!well_formed) {
      return fail(path, "'" + text + "' is not a capability name (lowercase, digits, '_', '.', '-', ':', '/')");
    }
    return {};
  }

  result<std::vector<std::string>> strings(const value& v, const std::string& parent, const std::string& key) const {
    std::vector<std::string> out;
    if (!v.contains(key)) return out;
    const std::string path = parent + "." + key;
    if (!v[key].is_array()) return fail(path, "expected a list of strings");
    for (std::size_t i = 0; i < v[key].size(); ++i) {
      const value& item = v[key][i];
      if (!item.is_string() || item.get<std::string>().empty()) {
        return fail(path + "." + std::to_string(i), "expected a non-empty string");
      }
      out.push_back(item.get<std::string>());
    }
    return out;
  }

  result<std::optional<std::int64_t>> positive_int(const value& v, const std::string& parent, const std::string& key,
                                                   std::int64_t max, bool zero_ok = false) const {
    if (!v.contains(key)) return std::optional<std::int64_t>();
    const std::string path = parent + "." + key;
    const value& n = v[key];
    if (!n.is_number_integer()) return fail(path, "expected an integer");
    const auto x = n.get<std::int64_t>();
    if (x < (zero_ok ? 0 : 1) || x > max) {
      return fail(path, "expected an integer from " + std::to_string(zero_ok ? 0 : 1) + " to " + std::to_string(max));
    }
    return std::optional<std::int64_t>(x);
  }

  result<std::optional<double>> number(const value& v, const std::string& parent, const std::string& key, double lo,
                                       double hi) const {
    if (!v.contains(key)) return std::optional<double>();
    const std::string path = parent + "." + key;
    if (!v[key].is_number()) return fail(path, "expected a number");
    const double x = v[key].get<double>();
    if (!std::isfinite(x) || x < lo || x > hi) return fail(path, "out of range");
    return std::optional<double>(x);
  }

  /// `2`, `0.5`, `"2"` or `"500m"` (millicores).
  result<std::optional<double>> cpu(const value& v) const {
    double cores = 0;
    if (v.is_number()) {
      cores = v.get<double>();
    } else if (v.is_string()) {
      std::string text = v.get<std::string>();
      const bool milli = !text.empty() && text.back() == 'm';
      if (milli) text.pop_back();
      char* end = nullptr;
      cores = std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size())
        return fail("compute.cpu", "expected cores: 2, 0.5 or 500m");
      if (milli) cores /= 1000;
    } else {
      return fail("compute.cpu", "expected cores: 2, 0.5 or 500m");
    }
    if (!std::isfinite(cores) || cores <= 0 || cores > 4096) return fail("compute.cpu", "expected 0 < cores ≤ 4096");
    return std::optional<double>(cores);
  }

  /// `4GiB`, `512MiB`, `2GB`, `1024` (bytes).
  result<std::optional<std::uint64_t>> bytes(const value& v, const std::string& path) const {
    if (v.is_number_integer() && v.get<std::int64_t>() > 0) {
      return std::optional<std::uint64_t>(static_cast<std::uint64_t>(v.get<std::int64_t>()));
    }
    if (!v.is_string()) return fail(path, "expected a size such as 4GiB or 512MiB");
    const std::string text = v.get<std::string>();
    std::size_t digits = 0;
    while (digits < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[digits])) != 0 || text[digits] == '.')) {
      ++digits;
    }
    const std::string unit = text.substr(digits);
    static const std::pair<const char*, double> units[] = {{"", 1},
                                                           {"B", 1},
                                                           {"KiB", 1024.0},
                                                           {"MiB", 1048576.0},
                                                           {"GiB", 1073741824.0},
                                                           {"TiB", 1099511627776.0},
                                                           {"KB", 1e3},
                                                           {"MB", 1e6},
                                                           {"GB", 1e9},
                                                           {"TB", 1e12},
                                                           {"Ki", 1024.0},
                                                           {"Mi", 1048576.0},
                                                           {"Gi", 1073741824.0}};
    double scale = 0;
    for (const auto& [name, factor] : units) {
      if (unit == name) scale = factor;
    }
    char* end = nullptr;
    const std::string number_text = text.substr(0, digits);
    const double n = std::strtod(number_text.c_str(), &end);
    if (digits == 0 || scale == 0 || end != number_text.c_str() + number_text.size()) {
      return fail(path, "expected a size such as 4GiB or 512MiB");
    }
    const double total = n * scale;
    if (!std::isfinite(total) || total < 1 || total > 1.0e18) return fail(path, "out of range");
    return std::optional<std::uint64_t>(static_cast<std::uint64_t>(total));
  }

  const yaml_document& doc_;
};

}  // namespace

const std::error_category& kernel_category() noexcept {
  static const kernel_category_impl category;
  return category;
}

std::error_code make_error_code(kernel_errc e) noexcept { return {static_cast<int>(e), kernel_category()}; }

bool agent_contract::allows(std::string_view capability_name) const {
  return std::any_of(capabilities.begin(), capabilities.end(),
                     [&](const capability& c) { return c.name == capability_name; });
}

const mode_class* agent_contract::mode_of(std::string_view action) const {
  for (const auto& m : modes) {
    if (std::find(m.actions.begin(), m.actions.end(), action) != m.actions.end()) return &m;
  }
  return nullptr;
}

std::pair<graph::latency_class, service_level> agent_contract::class_of(std::string_view action) const {
  const mode_class* m = mode_of(action);
  if (m == nullptr) return {latency, slo};
  service_level levels = m->slo;
  if (!levels.onset_ms) levels.onset_ms = slo.onset_ms;
  if (!levels.turn_ms) levels.turn_ms = slo.turn_ms;
  if (!levels.jitter_p95_pct) levels.jitter_p95_pct = slo.jitter_p95_pct;
  if (!levels.deadline_ms) levels.deadline_ms = slo.deadline_ms;
  return {m->latency, levels};
}

namespace {
value slo_to_json(const service_level& slo) {
  value out = value::object();
  if (slo.onset_ms) out["onset_ms"] = *slo.onset_ms;
  if (slo.turn_ms) out["turn_ms"] = *slo.turn_ms;
  if (slo.jitter_p95_pct) out["jitter_p95_pct"] = *slo.jitter_p95_pct;
  if (slo.deadline_ms) out["deadline_ms"] = *slo.deadline_ms;
  return out;
}
}  // namespace

value agent_contract::to_json() const {
  value caps = value::array();
  for (const auto& c : capabilities) {
    caps.push_back(c.allow.empty() ? value(c.name) : value{{"name", c.name}, {"allow", c.allow}});
  }
  const std::string latency_name(graph::to_string(latency));
  value out = {{"apiVersion", "agentos/v0.2"},
               {"kind", "AgentContract"},
               {"name", name},
               {"class", {{"latency", latency_name}, {"slo", slo_to_json(slo)}}},
               {"capabilities", caps}};
  if (!modes.empty()) {
    out["modes"] = value::object();
    for (const auto& m : modes) {
      out["modes"][m.name] = {
          {"latency", std::string(graph::to_string(m.latency))}, {"slo", slo_to_json(m.slo)}, {"actions", m.actions}};
    }
  }
  if (cpu || mem_bytes || gpu_mem_bytes) {
    out["compute"] = value::object();
    if (cpu) out["compute"]["cpu"] = *cpu;
    if (mem_bytes) out["compute"]["mem"] = *mem_bytes;
    if (gpu_mem_bytes) out["compute"]["gpu_mem"] = *gpu_mem_bytes;
  }
  if (!models_allowed.empty() || max_context_tokens || !placement.empty()) {
    out["modelPolicy"] = {{"allow", models_allowed}};
    if (max_context_tokens) out["modelPolicy"]["max_context_tokens"] = *max_context_tokens;
    if (!placement.empty()) out["modelPolicy"]["placement"] = placement;
  }
  if (!memory_namespace.empty() || retention_days || rag_top_k || rag_require_grounding) {
    out["memory"] = value::object();
    if (!memory_namespace.empty()) out["memory"]["namespace"] = memory_namespace;
    if (retention_days) out["memory"]["retention_days"] = *retention_days;
    if (rag_top_k || rag_require_grounding) {
      out["memory"]["rag"] = {{"require_grounding", rag_require_grounding}};
      if (rag_top_k) out["memory"]["rag"]["top_k"] = *rag_top_k;
    }
  }
  if (!consent_for.empty() || !data_scopes.empty()) {
    out["security"] = value::object();
    if (!consent_for.empty()) out["security"]["consent_for"] = consent_for;
    if (!data_scopes.empty()) out["security"]["data_scopes"] = data_scopes;
  }
  if (!tracing.empty() || !log_fields.empty()) {
    out["observability"] = value::object();
    if (!tracing.empty()) out["observability"]["tracing"] = tracing;
    if (!log_fields.empty()) out["observability"]["log_fields"] = log_fields;
  }
  if (max_tokens_per_turn || max_tokens_per_run || max_cost_usd_per_run) {
    out["budget"] = value::object();
    if (max_tokens_per_turn) out["budget"]["max_tokens_per_turn"] = *max_tokens_per_turn;
    if (max_tokens_per_run) out["budget"]["max_tokens_per_run"] = *max_tokens_per_run;
    if (max_cost_usd_per_run) out["budget"]["max_cost_usd_per_run"] = *max_cost_usd_per_run;
  }
  return out;
}

result<contract_report> load_contract(std::string_view text, std::string_view file) {
  CHOIR_TRY(auto docs, parse_yaml(text, file));
  const yaml_document* found = nullptr;
  for (const auto& doc : docs) {
    const value& root = doc.root();
    if (root.is_object() && root.contains("kind") && root["kind"] == "AgentContract") {
      if (found != nullptr) {
        return make_error(kernel_errc::invalid_contract,
                          doc.locate("kind") + ": kind: a file holds one AgentContract; this is a second one");
      }
      found = &doc;
    }
  }
  if (found == nullptr) {
    return make_error(kernel_errc::no_contract, std::string(file) + ": no kind: AgentContract document");
  }
  return contract_reader(*found).read();
}

}  // namespace choir::kernel
