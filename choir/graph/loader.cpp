#include "choir/graph/loader.hpp"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "choir/core/yaml.hpp"
#include "choir/graph/errors.hpp"

namespace choir::graph {
namespace {

/// Locates fields below one action (`actions.<name>.<field>`) in its document.
class yaml_locator final : public action_decl::locator {
 public:
  yaml_locator(const yaml_document& doc, std::string base) : doc_(doc), base_(std::move(base)) {}
  [[nodiscard]] std::string locate(std::string_view field) const override {
    return doc_.locate(field.empty() ? base_ : base_ + "." + std::string(field));
  }

 private:
  const yaml_document& doc_;
  std::string base_;
};

/// Reports errors at `file:line:col: <path>: message` for one document.
struct document_context {
  const yaml_document& yaml;

  error fail(std::string_view path, std::string_view message) const {
    std::string out = yaml.locate(path);
    if (!path.empty()) {
      out += ": ";
      out += path;
    }
    out += ": ";
    out += message;
    return make_error(graph_errc::invalid_document, std::move(out));
  }
};

result<std::vector<std::string>> string_list(const value& v, const document_context& doc, const std::string& path) {
  std::vector<std::string> out;
  if (v.is_string()) return std::vector<std::string>{v.get<std::string>()};
  if (!v.is_array()) return doc.fail(path, "expected a list of strings");
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) return doc.fail(path + "." + std::to_string(i), "expected a string");
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

const std::set<std::string>& common_action_fields() {
  static const std::set<std::string> fields = {"type", "description", "reads",   "writes", "inputs",
                                               "tags", "cost_ms",     "latency", "retry",  "on_error"};
  return fields;
}

result<action_spec> parse_common(const std::string& name, const value& config, const document_context& doc) {
  const std::string base = "actions." + name;
  action_spec spec;
  spec.name = name;
  if (!config.contains("type")) return doc.fail(base, "an action needs a 'type'");
  if (!config["type"].is_string()) return doc.fail(base + ".type", "expected a string");
  spec.type = config["type"].get<std::string>();
  if (config.contains("reads")) {
    CHOIR_TRY(spec.reads, string_list(config["reads"], doc, base + ".reads"));
  }
  if (config.contains("writes")) {
    CHOIR_TRY(spec.writes, string_list(config["writes"], doc, base + ".writes"));
  }
  if (config.contains("tags")) {
    CHOIR_TRY(spec.tags, string_list(config["tags"], doc, base + ".tags"));
  }
  if (config.contains("inputs")) {
    const value& inputs = config["inputs"];
    const std::string path = base + ".inputs";
    if (inputs.is_array() || inputs.is_string()) {
      CHOIR_TRY(auto names, string_list(inputs, doc, path));
      for (auto& n : names) spec.inputs.push_back({std::move(n), true, value()});
    } else if (inputs.is_object()) {
      for (const auto& [input_name, decl] : inputs.items()) {
        const std::string input_path = path + "." + input_name;
        if (decl.is_null()) {
          spec.inputs.push_back({input_name, true, value()});
        } else if (decl.is_object()) {
          for (const auto& [field, _] : decl.items()) {
            if (field != "default" && field != "required") {
              return doc.fail(input_path + "." + field, "unknown field (an input has 'default' and 'required')");
            }
          }
          bool required = !decl.contains("default");
          if (decl.contains("required")) {
            if (!decl["required"].is_boolean()) return doc.fail(input_path + ".required", "expected true or false");
            required = decl["required"].get<bool>();
          }
          spec.inputs.push_back({input_name, required, decl.value("default", value())});
        } else {
          return doc.fail(input_path, "expected a mapping with 'default' and/or 'required', or nothing");
        }
      }
    } else {
      return doc.fail(path, "expected a list of input names or a mapping of inputs");
    }
  }
  if (config.contains("cost_ms")) {
    const value& cost = config["cost_ms"];
    if (!cost.is_number() || cost.get<double>() < 0) return doc.fail(base + ".cost_ms", "expected a number >= 0");
    spec.cost_ms = cost.get<double>();
  }
  if (config.contains("latency")) {
    const value& lat = config["latency"];
    auto parsed = lat.is_string() ? parse_latency_class(lat.get<std::string>()) : std::nullopt;
    if (!parsed) return doc.fail(base + ".latency", "expected HRT, SRT or DT");
    spec.latency = parsed;
  }
  if (config.contains("retry")) {
    const value& retry = config["retry"];
    const std::string path = base + ".retry";
    if (!retry.is_object())
      return doc.fail(path, "expected a mapping (max_attempts, backoff_ms, multiplier, max_backoff_ms)");
    for (const auto& [field, v] : retry.items()) {
      const std::string field_path = path + "." + field;
      if (field == "max_attempts") {
        if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > 100) {
          return doc.fail(field_path, "expected an integer from 1 to 100");
        }
        spec.retry.max_attempts = v.get<int>();
      } else if (field == "backoff_ms" || field == "max_backoff_ms") {
        if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > 86'400'000) {
          return doc.fail(field_path, "expected milliseconds from 0 to 86400000");
        }
        (field == "backoff_ms" ? spec.retry.initial_backoff : spec.retry.max_backoff) =
            std::chrono::milliseconds(v.get<std::int64_t>());
      } else if (field == "multiplier") {
        if (!v.is_number() || v.get<double>() < 1 || v.get<double>() > 100) {
          return doc.fail(field_path, "expected a number from 1 to 100");
        }
        spec.retry.multiplier = v.get<double>();
      } else {
        return doc.fail(field_path, "unknown field (retry has max_attempts, backoff_ms, multiplier, max_backoff_ms)");
      }
    }
  }
  if (config.contains("on_error")) {
    const value& route = config["on_error"];
    const std::string path = base + ".on_error";
    if (route.is_string()) {
      spec.on_error = error_route{route.get<std::string>(), "error"};
    } else if (route.is_object() && route.contains("to") && route["to"].is_string()) {
      spec.on_error = error_route{route["to"].get<std::string>(), "error"};
      for (const auto& [field, v] : route.items()) {
        if (field == "capture") {
          if (!v.is_string() || v.get<std::string>().empty()) return doc.fail(path + ".capture", "expected a key name");
          spec.on_error->capture = v.get<std::string>();
        } else if (field != "to") {
          return doc.fail(path + "." + field, "unknown field (on_error has 'to' and 'capture')");
        }
      }
    } else {
      return doc.fail(path, "expected an action name, or a mapping with 'to' and optionally 'capture'");
    }
  }
  return spec;
}

result<condition> parse_condition(const value& when, const document_context& doc, const std::string& path) {
  if (when.is_string()) {
    condition c = condition::expr(when.get<std::string>());
    if (auto e = c.compile_error()) return doc.fail(path, e->message);
    return c;
  }
  if (when.is_object() && !when.empty()) return condition::when(when);
  return doc.fail(path, "expected an expression string, or a mapping of key: value pairs that must all be equal");
}

}  // namespace

error action_decl::fail(std::string_view field, std::string_view message) const {
  std::string out = where_->locate(field);
  out += ": actions.";
  out += spec_.name;
  if (!field.empty()) {
    out += ".";
    out += field;
  }
  out += ": ";
  out += message;
  return make_error(graph_errc::invalid_document, std::move(out));
}

void action_registry::add(std::string type, std::vector<std::string> fields, action_factory factory) {
  for (auto& e : entries_) {
    if (e.type == type) {
      e.fields = std::move(fields);
      e.factory = std::move(factory);
      return;
    }
  }
  entries_.push_back({std::move(type), std::move(fields), std::move(factory)});
}

bool action_registry::contains(std::string_view type) const { return find(type) != nullptr; }

std::vector<std::string> action_registry::types() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.type);
  std::sort(out.begin(), out.end());
  return out;
}

const action_registry::entry* action_registry::find(std::string_view type) const {
  for (const auto& e : entries_) {
    if (e.type == type) return &e;
  }
  return nullptr;
}

class graph_loader {
 public:
  static result<graph_document> load(std::string_view text, std::string_view file, const action_registry& registry);
};

result<graph_document> graph_loader::load(std::string_view text, std::string_view file,
                                          const action_registry& registry) {
  auto docs = parse_yaml(text, file);
  if (!docs.ok()) return make_error(graph_errc::invalid_document, docs.err().message);

  graph_document out;
  const yaml_document* graph_doc = nullptr;
  for (const auto& d : *docs) {
    if (!d.root().is_object()) {
      return make_error(graph_errc::invalid_document, d.locate("") + ": a document must be a mapping");
    }
    const auto kind = d.root().find("kind");
    if (kind == d.root().end() || !kind->is_string()) {
      return make_error(graph_errc::invalid_document, d.locate("") + ": a document needs a 'kind'");
    }
    if (*kind == "Graph") {
      if (graph_doc != nullptr) {
        return make_error(graph_errc::invalid_document,
                          d.locate("") + ": a file holds at most one 'kind: Graph' document");
      }
      graph_doc = &d;
    } else {
      out.other_kinds.push_back(kind->get<std::string>());
    }
  }
  if (graph_doc == nullptr) {
    return make_error(graph_errc::invalid_document, std::string(file) + ": no 'kind: Graph' document");
  }
  const document_context doc{*graph_doc};
  const value& root = graph_doc->root();

  static const std::set<std::string> top_fields = {"apiVersion", "kind",  "name",    "description",
                                                   "entrypoint", "state", "actions", "transitions"};
  for (const auto& [field, _] : root.items()) {
    if (!top_fields.count(field)) {
      return doc.fail(field,
                      "unknown field (a Graph has apiVersion, kind, name, description, entrypoint, state, "
                      "actions, transitions)");
    }
  }
  if (!root.contains("apiVersion") || root["apiVersion"] != "agentos/v0.2") {
    return doc.fail(root.contains("apiVersion") ? "apiVersion" : "", "apiVersion must be agentos/v0.2");
  }
  if (!root.contains("name") || !root["name"].is_string() || root["name"].get<std::string>().empty()) {
    return doc.fail(root.contains("name") ? "name" : "", "a Graph needs a non-empty string 'name'");
  }
  out.name = root["name"].get<std::string>();
  if (root.contains("description")) {
    if (!root["description"].is_string()) return doc.fail("description", "expected a string");
    out.description = root["description"].get<std::string>();
  }
  if (!root.contains("entrypoint") || !root["entrypoint"].is_string()) {
    return doc.fail(root.contains("entrypoint") ? "entrypoint" : "", "a Graph needs an 'entrypoint' action name");
  }
  if (root.contains("state")) {
    if (!root["state"].is_object() && !root["state"].is_null()) return doc.fail("state", "expected a mapping");
    out.builder.with_state(root["state"].is_null() ? value::object() : root["state"]);
  }
  if (!root.contains("actions") || !root["actions"].is_object() || root["actions"].empty()) {
    return doc.fail(root.contains("actions") ? "actions" : "", "a Graph needs a mapping of 'actions'");
  }

  // Actions, in the order they appear in the file.
  for (const std::string& name : graph_doc->keys_in_order("actions")) {
    const value& config = root["actions"][name];
    const std::string base = "actions." + name;
    if (!config.is_object()) return doc.fail(base, "an action is a mapping with at least a 'type'");
    CHOIR_TRY(action_spec spec, parse_common(name, config, doc));
    const action_registry::entry* type = registry.find(spec.type);
    if (type == nullptr) {
      std::string known;
      for (const auto& t : registry.types()) known += (known.empty() ? "" : ", ") + t;
      return doc.fail(base + ".type", "unknown action type '" + spec.type + "' (known: " + known + ")");
    }
    for (const auto& [field, _] : config.items()) {
      if (!common_action_fields().count(field) &&
          std::find(type->fields.begin(), type->fields.end(), field) == type->fields.end()) {
        return doc.fail(base + "." + field, "unknown field for an action of type '" + spec.type + "'");
      }
    }
    yaml_locator where(*graph_doc, base);
    action_decl decl(std::move(spec), config, where);
    auto made = type->factory(decl);
    if (!made.ok()) return std::move(made).err();
    out.builder.with_action(std::move(made).value());
  }
  out.builder.with_entrypoint(root["entrypoint"].get<std::string>());

  if (root.contains("transitions")) {
    const value& transitions = root["transitions"];
    if (!transitions.is_array()) return doc.fail("transitions", "expected a list of transitions");
    for (std::size_t i = 0; i < transitions.size(); ++i) {
      const value& t = transitions[i];
      const std::string path = "transitions." + std::to_string(i);
      if (!t.is_object()) return doc.fail(path, "a transition is a mapping with 'from', 'to' and optionally 'when'");
      for (const auto& [field, _] : t.items()) {
        if (field != "from" && field != "to" && field != "when") {
          return doc.fail(path + "." + field, "unknown field (a transition has from, to, when)");
        }
      }
      if (!t.contains("from")) return doc.fail(path, "a transition needs 'from'");
      if (!t.contains("to") || !t["to"].is_string()) return doc.fail(path, "a transition needs a 'to' action name");
      CHOIR_TRY(auto from, string_list(t["from"], doc, path + ".from"));
      condition when = condition::always();
      if (t.contains("when")) {
        CHOIR_TRY(when, parse_condition(t["when"], doc, path + ".when"));
      }
      out.builder.with_transition(std::move(from), t["to"].get<std::string>(), when);
    }
  }

  // Report graph-level problems at the document's position.
  auto built = out.builder.build_graph();
  if (!built.ok()) {
    return make_error(built.err().code, graph_doc->locate("") + ": graph '" + out.name + "': " + built.err().message);
  }
  return out;
}

result<graph_document> load_graph(std::string_view text, std::string_view file, const action_registry& registry) {
  try {
    return graph_loader::load(text, file, registry);
  } catch (const nlohmann::json::exception& e) {
    return make_error(graph_errc::invalid_document, std::string(file) + ": " + e.what());
  }
}

}  // namespace choir::graph
