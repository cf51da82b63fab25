#include "choir/graph/loader.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <set>
#include <utility>

#include "choir/graph/errors.hpp"

namespace choir::graph {
namespace {

constexpr std::size_t max_document_bytes = 4u << 20;
constexpr std::size_t max_nodes = 1'000'000;
constexpr int max_depth = 256;

/// The 1-based line and column (in bytes) of the first byte that is not valid UTF-8, if any.
std::optional<std::pair<int, int>> first_invalid_utf8(std::string_view text) {
  int line = 1;
  int column = 1;
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t len = 0;
    std::uint32_t min = 0;
    if (c < 0x80) {
      len = 1;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      min = 0x10000;
    } else {
      return std::make_pair(line, column);
    }
    if (i + len > text.size()) return std::make_pair(line, column);
    std::uint32_t cp = len == 1 ? c : (c & (0xFF >> (len + 1)));
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return std::make_pair(line, column);
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::make_pair(line, column);
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      column += static_cast<int>(len);
    }
    i += len;
  }
  return std::nullopt;
}

std::string position(std::string_view file, const YAML::Mark& mark) {
  std::string out(file);
  if (mark.line >= 0) {
    out += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }
  return out;
}

/// Resolves a plain (unquoted) scalar the way the YAML 1.2 core schema does.
value resolve_plain_scalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return value();
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  const char* digits = (*begin == '+') ? begin + 1 : begin;
  std::int64_t i = 0;
  if (auto [p, ec] = std::from_chars(digits, end, i); ec == std::errc() && p == end && digits != end) return i;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    std::uint64_t h = 0;
    if (auto [p, ec] = std::from_chars(begin + 2, end, h, 16);
        ec == std::errc() && p == end && h <= static_cast<std::uint64_t>(INT64_MAX)) {
      return static_cast<std::int64_t>(h);
    }
  }
  // Floats: digits with a '.' or an exponent; no inf/nan (JSON has neither).
  const bool looks_numeric = std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+';
  });
  if (looks_numeric) {
    double d = 0;
    if (auto [p, ec] = std::from_chars(digits, end, d); ec == std::errc() && p == end && std::isfinite(d)) return d;
  }
  return s;
}

struct conversion {
  std::string_view file;
  std::size_t nodes = 0;
};

result<value> convert(const YAML::Node& node, conversion& c, int depth) {
  if (++c.nodes > max_nodes) {
    return make_error(graph_errc::invalid_document,
                      position(c.file, node.Mark()) + ": the document expands to more than 1,000,000 nodes");
  }
  if (depth > max_depth) {
    return make_error(graph_errc::invalid_document, position(c.file, node.Mark()) + ": nested more than 256 deep");
  }
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: return value();
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") return node.Scalar();  // quoted: always a string
      if (node.Tag() == "!!str" || node.Tag() == "tag:yaml.org,2002:str") return node.Scalar();
      return resolve_plain_scalar(node.Scalar());
    case YAML::NodeType::Sequence: {
      value out = value::array();
      for (const auto& item : node) {
        CHOIR_TRY(value v, convert(item, c, depth + 1));
        out.push_back(std::move(v));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      value out = value::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          return make_error(graph_errc::invalid_document,
                            position(c.file, kv.first.Mark()) + ": a mapping key must be a plain string");
        }
        const std::string& key = kv.first.Scalar();
        if (out.contains(key)) {
          return make_error(graph_errc::invalid_document,
                            position(c.file, kv.first.Mark()) + ": the key '" + key + "' appears twice");
        }
        CHOIR_TRY(value v, convert(kv.second, c, depth + 1));
        out[key] = std::move(v);
      }
      return out;
    }
  }
  return value();
}

/// Finds the node at a dotted path below `root` (list items by index), for error positions.
YAML::Node node_at(const YAML::Node& root, std::string_view path) {
  YAML::Node current = root;
  while (!path.empty()) {
    const auto dot = path.find('.');
    const std::string part(path.substr(0, dot));
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
    YAML::Node next;
    if (current.IsMap()) {
      next = current[part];
    } else if (current.IsSequence()) {
      std::size_t idx = 0;
      auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), idx);
      if (ec != std::errc() || idx >= current.size()) break;
      next = current[idx];
    }
    if (!next.IsDefined()) break;
    current = next;
  }
  return current;
}

class yaml_locator final : public action_decl::locator {
 public:
  yaml_locator(std::string_view file, YAML::Node node) : file_(file), node_(std::move(node)) {}
  [[nodiscard]] std::string locate(std::string_view field) const override {
    return position(file_, node_at(node_, field).Mark());
  }

 private:
  std::string_view file_;
  YAML::Node node_;
};

/// Reports errors at `file:line:col: <path>: message` for one document.
struct document_context {
  std::string_view file;
  YAML::Node root;

  error fail(std::string_view path, std::string_view message) const {
    std::string out = position(file, node_at(root, path).Mark());
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
  if (text.size() > max_document_bytes) {
    return make_error(graph_errc::invalid_document, std::string(file) + ": larger than 4 MiB");
  }
  if (auto bad = first_invalid_utf8(text)) {
    return make_error(graph_errc::invalid_document, std::string(file) + ":" + std::to_string(bad->first) + ":" +
                                                        std::to_string(bad->second) + ": not valid UTF-8");
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    return make_error(graph_errc::invalid_document, position(file, e.mark) + ": " + e.msg);
  }

  graph_document out;
  std::optional<YAML::Node> graph_node;
  for (const auto& d : docs) {
    if (!d.IsMap()) {
      return make_error(graph_errc::invalid_document, position(file, d.Mark()) + ": a document must be a mapping");
    }
    const YAML::Node kind = d["kind"];
    if (!kind.IsDefined() || !kind.IsScalar()) {
      return make_error(graph_errc::invalid_document, position(file, d.Mark()) + ": a document needs a 'kind'");
    }
    if (kind.Scalar() == "Graph") {
      if (graph_node) {
        return make_error(graph_errc::invalid_document,
                          position(file, d.Mark()) + ": a file holds at most one 'kind: Graph' document");
      }
      graph_node = d;
    } else {
      out.other_kinds.push_back(kind.Scalar());
    }
  }
  if (!graph_node) return make_error(graph_errc::invalid_document, std::string(file) + ": no 'kind: Graph' document");

  const document_context doc{file, *graph_node};
  conversion c{file};
  value root;
  try {
    CHOIR_TRY(root, convert(*graph_node, c, 0));
  } catch (const YAML::Exception& e) {
    return make_error(graph_errc::invalid_document, position(file, e.mark) + ": " + e.msg);
  }

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
  const YAML::Node actions_node = (*graph_node)["actions"];
  for (const auto& kv : actions_node) {
    const std::string name = kv.first.Scalar();
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
    yaml_locator where(file, kv.second);
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
    return make_error(built.err().code,
                      position(file, graph_node->Mark()) + ": graph '" + out.name + "': " + built.err().message);
  }
  return out;
}

result<graph_document> load_graph(std::string_view text, std::string_view file, const action_registry& registry) {
  try {
    return graph_loader::load(text, file, registry);
  } catch (const YAML::Exception& e) {
    return make_error(graph_errc::invalid_document, position(file, e.mark) + ": " + e.msg);
  } catch (const nlohmann::json::exception& e) {
    return make_error(graph_errc::invalid_document, std::string(file) + ": " + e.what());
  }
}

result<value> yaml_to_json(std::string_view text, std::string_view file) {
  if (text.size() > max_document_bytes) {
    return make_error(graph_errc::invalid_document, std::string(file) + ": larger than 4 MiB");
  }
  try {
    const YAML::Node node = YAML::Load(std::string(text));
    conversion c{file};
    return convert(node, c, 0);
  } catch (const YAML::Exception& e) {
    return make_error(graph_errc::invalid_document, position(file, e.mark) + ": " + e.msg);
  }
}

}  // namespace choir::graph
