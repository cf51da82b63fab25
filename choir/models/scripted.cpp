#include "choir/models/scripted.hpp"

#include <chrono>
#include <optional>
#include <regex>
#include <thread>

#include "choir/core/json_access.hpp"
#include "choir/core/yaml.hpp"

namespace choir::models {
namespace {

struct rule_condition {
  std::optional<std::string> user_contains;
  std::optional<std::regex> user_matches;
  std::optional<std::string> system_contains;
  std::optional<std::string> last_role;
  std::optional<std::string> tool;  ///< the last message is the result of this tool
  std::optional<std::string> tool_result_contains;
  std::optional<std::int64_t> turn;  ///< assistant messages so far
  std::optional<bool> has_tools;
  std::optional<std::string> tools_include;
};

struct rule {
  std::string name;
  rule_condition when;
  std::optional<std::string> reply;
  std::vector<tool_call> tool_calls;
  std::string finish_reason;  ///< empty: derived
};

/// What the templates of a rule see.
struct conversation_facts {
  std::string user;  ///< the last user message
  std::string system;
  std::string last;  ///< the last message of any role
  std::string last_role;
  std::string tool_result;  ///< the last tool message
  std::string tool;         ///< its tool
  std::int64_t turn = 0;
};

conversation_facts facts_of(const chat_request& request) {
  conversation_facts f;
  for (const auto& m : request.messages) {
    if (m.role == "user") f.user = m.content;
    if (m.role == "system") f.system += (f.system.empty() ? "" : "\n") + m.content;
    if (m.role == "assistant") ++f.turn;
    if (m.role == "tool") {
      f.tool_result = m.content;
      f.tool = m.name;
    }
  }
  if (!request.messages.empty()) {
    f.last = request.messages.back().content;
    f.last_role = request.messages.back().role;
  }
  return f;
}

std::string expand(std::string_view text, const conversation_facts& f) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto open = text.find("{{", i);
    if (open == std::string_view::npos) break;
    const auto close = text.find("}}", open + 2);
    if (close == std::string_view::npos) break;
    out.append(text.substr(i, open - i));
    std::string_view name = text.substr(open + 2, close - open - 2);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (name == "user")
      out += f.user;
    else if (name == "system")
      out += f.system;
    else if (name == "last")
      out += f.last;
    else if (name == "tool_result")
      out += f.tool_result;
    else if (name == "tool")
      out += f.tool;
    else if (name == "turn")
      out += std::to_string(f.turn);
    else
      out.append(text.substr(open, close + 2 - open));  // not ours: left as written
    i = close + 2;
  }
  out.append(text.substr(i));
  return out;
}

value expand_value(const value& v, const conversation_facts& f) {
  if (v.is_string()) return expand(v.get<std::string>(), f);
  if (v.is_array()) {
    value out = value::array();
    for (const auto& e : v) out.push_back(expand_value(e, f));
    return out;
  }
  if (v.is_object()) {
    value out = value::object();
    for (const auto& [k, e] : v.items()) out[k] = expand_value(e, f);
    return out;
  }
  return v;
}

bool matches(const rule_condition& c, const chat_request& request, const conversation_facts& f) {
  if (c.user_contains && f.user.find(*c.user_contains) == std::string::npos) return false;
  if (c.user_matches && !std::regex_search(f.user, *c.user_matches)) return false;
  if (c.system_contains && f.system.find(*c.system_contains) == std::string::npos) return false;
  if (c.last_role && f.last_role != *c.last_role) return false;
  if (c.tool && (f.last_role != "tool" || f.tool != *c.tool)) return false;
  if (c.tool_result_contains && f.tool_result.find(*c.tool_result_contains) == std::string::npos) return false;
  if (c.turn && f.turn != *c.turn) return false;
  if (c.has_tools && request.tools.empty() == *c.has_tools) return false;
  if (c.tools_include) {
    bool found = false;
    for (const auto& t : request.tools) found = found || t.name == *c.tools_include;
    if (!found) return false;
  }
  return true;
}

class scripted final : public provider {
 public:
  scripted(std::string where, std::vector<rule> rules, std::chrono::milliseconds token_pause)
      : where_(std::move(where)), rules_(std::move(rules)), token_pause_(token_pause) {}

  result<chat_response> complete(const chat_request& request, chat_stream* stream) override {
    const conversation_facts f = facts_of(request);
    for (const auto& r : rules_) {
      if (!matches(r.when, request, f)) continue;
      chat_response response;
      response.message.role = "assistant";
      if (r.reply) response.message.content = expand(*r.reply, f);
      for (std::size_t i = 0; i < r.tool_calls.size(); ++i) {
        tool_call call = r.tool_calls[i];
        if (call.id.empty()) call.id = "call_" + std::to_string(f.turn) + "_" + std::to_string(i);
        call.arguments = expand_value(call.arguments, f);
        response.message.tool_calls.push_back(std::move(call));
      }
      response.finish_reason =
          !r.finish_reason.empty() ? r.finish_reason : (response.message.tool_calls.empty() ? "stop" : "tool_calls");
      if (request.max_tokens && estimate_tokens(response.message.content) > *request.max_tokens) {
        // As a real model does: the answer is cut at the limit.
        response.message.content.resize(static_cast<std::size_t>(*request.max_tokens) * 4);
        response.finish_reason = "length";
      }
      if (stream != nullptr) {
        const std::string& text = response.message.content;
        std::size_t start = 0;
        while (start < text.size()) {  // one token: a word and the spaces before the next
          std::size_t end = text.find_first_of(" \n", start);
          end = end == std::string::npos ? text.size() : text.find_first_not_of(" \n", end);
          if (end == std::string::npos) end = text.size();
          if (start > 0 && token_pause_.count() > 0) std::this_thread::sleep_for(token_pause_);
          stream->text(std::string_view(text).substr(start, end - start));
          start = end;
        }
        for (const auto& call : response.message.tool_calls) stream->tool_call_ready(call);
      }
      response.usage.input_tokens = estimate_tokens(request);
      response.usage.output_tokens = estimate_tokens(response.message.content);
      for (const auto& call : response.message.tool_calls) {
        response.usage.output_tokens += estimate_tokens(call.name) + estimate_tokens(dump_json(call.arguments));
      }
      response.usage.estimated = true;
      return response;
    }
    return make_error(model_errc::rejected, where_ + ": no rule matches the conversation (last " + f.last_role +
                                                " message: '" + f.last.substr(0, 80) +
                                                "'); add a rule without `when` as a default");
  }

 private:
  std::string where_;
  std::vector<rule> rules_;
  std::chrono::milliseconds token_pause_{0};
};

error bad(std::string_view where, const std::string& field, std::string_view what) {
  return make_error(core_errc::invalid_argument, std::string(where) + ": " + field + ": " + std::string(what));
}

result<std::optional<std::string>> optional_string(const value& obj, const char* key, std::string_view where,
                                                   const std::string& at) {
  const auto it = obj.find(key);
  if (it == obj.end()) return std::optional<std::string>();
  if (!it->is_string() && !it->is_number() && !it->is_boolean()) return bad(where, at + "." + key, "must be a string");
  return std::optional<std::string>(it->is_string() ? it->get<std::string>() : it->dump());
}

result<rule> parse_rule(const value& v, std::string_view where, const std::string& at) {
  if (!v.is_object()) return bad(where, at, "a rule must be a mapping");
  static const std::vector<std::string> known = {"name", "when", "reply", "tool_calls", "json", "finish_reason"};
  for (const auto& [k, _] : v.items()) {
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      return bad(where, at + "." + k, "unknown field (known: name, when, reply, json, tool_calls, finish_reason)");
    }
  }
  rule r;
  CHOIR_TRY(auto name, optional_string(v, "name", where, at));
  r.name = name.value_or(at);
  CHOIR_TRY(r.reply, optional_string(v, "reply", where, at));
  CHOIR_TRY(auto finish, optional_string(v, "finish_reason", where, at));
  r.finish_reason = finish.value_or("");
  if (const auto j = v.find("json"); j != v.end()) {
    if (r.reply) return bad(where, at + ".json", "give either reply or json, not both");
    r.reply = dump_json(*j);
  }
  if (const auto calls = v.find("tool_calls"); calls != v.end()) {
    if (!calls->is_array()) return bad(where, at + ".tool_calls", "must be a list");
    for (std::size_t i = 0; i < calls->size(); ++i) {
      const value& c = (*calls)[i];
      const std::string cat = at + ".tool_calls[" + std::to_string(i) + "]";
      if (!c.is_object() || !c.contains("name") || !c["name"].is_string()) {
        return bad(where, cat, "a tool call needs a name (and optional arguments, id)");
      }
      tool_call call;
      call.name = c["name"].get<std::string>();
      if (c.contains("id")) {
        if (!c["id"].is_string()) return bad(where, cat + ".id", "must be a string");
        call.id = c["id"].get<std::string>();
      }
      if (c.contains("arguments")) {
        if (!c["arguments"].is_object()) return bad(where, cat + ".arguments", "must be a mapping");
        call.arguments = c["arguments"];
      }
      r.tool_calls.push_back(std::move(call));
    }
  }
  if (!r.reply && r.tool_calls.empty()) return bad(where, at, "a rule answers with reply, json or tool_calls");
  if (const auto w = v.find("when"); w != v.end()) {
    if (!w->is_object()) return bad(where, at + ".when", "must be a mapping");
    const std::string wat = at + ".when";
    for (const auto& item : w->items()) {
      const std::string k = item.key();
      const value& c = item.value();  // (named, not a structured binding: the lambda below captures it)
      const std::string field = wat + "." + k;
      auto text = [&]() -> result<std::string> {
        if (!c.is_string()) return bad(where, field, "must be a string");
        return c.get<std::string>();
      };
      if (k == "user_contains") {
        CHOIR_TRY(r.when.user_contains, text());
      } else if (k == "user_matches") {
        CHOIR_TRY(std::string pattern, text());
        try {
          r.when.user_matches.emplace(pattern, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
          return bad(where, field, std::string("not a valid regular expression: ") + e.what());
        }
      } else if (k == "system_contains") {
        CHOIR_TRY(r.when.system_contains, text());
      } else if (k == "last_role") {
        CHOIR_TRY(r.when.last_role, text());
      } else if (k == "tool") {
        CHOIR_TRY(r.when.tool, text());
      } else if (k == "tool_result_contains") {
        CHOIR_TRY(r.when.tool_result_contains, text());
      } else if (k == "turn") {
        if (!c.is_number_integer() || c.get<std::int64_t>() < 0) return bad(where, field, "must be a whole number ≥ 0");
        r.when.turn = c.get<std::int64_t>();
      } else if (k == "has_tools") {
        if (!c.is_boolean()) return bad(where, field, "must be true or false");
        r.when.has_tools = c.get<bool>();
      } else if (k == "tools_include") {
        CHOIR_TRY(r.when.tools_include, text());
      } else {
        return bad(where, field,
                   "unknown condition (known: user_contains, user_matches, system_contains, last_role, tool, "
                   "tool_result_contains, turn, has_tools, tools_include)");
      }
    }
  }
  return r;
}

}  // namespace

result<std::shared_ptr<provider>> scripted_from_json(const value& document, std::string_view where) {
  if (!document.is_object()) return bad(where, "(document)", "a ScriptedModel document is a mapping");
  if (string_at(document, "kind") != "ScriptedModel") {
    return bad(where, "kind", "must be ScriptedModel");
  }
  const auto rules = document.find("rules");
  if (rules == document.end() || !rules->is_array() || rules->empty()) {
    return bad(where, "rules", "a non-empty list of rules is required");
  }
  std::vector<rule> parsed;
  for (std::size_t i = 0; i < rules->size(); ++i) {
    CHOIR_TRY(rule r, parse_rule((*rules)[i], where, "rules[" + std::to_string(i) + "]"));
    parsed.push_back(std::move(r));
  }
  std::chrono::milliseconds pause{0};
  if (const auto t = document.find("token_ms"); t != document.end()) {
    if (!t->is_number_integer() || t->get<std::int64_t>() < 0 || t->get<std::int64_t>() > 10'000) {
      return bad(where, "token_ms", "must be a whole number of milliseconds from 0 to 10000");
    }
    pause = std::chrono::milliseconds(t->get<std::int64_t>());
  }
  return std::shared_ptr<provider>(std::make_shared<scripted>(std::string(where), std::move(parsed), pause));
}

result<std::shared_ptr<provider>> scripted_from_yaml(std::string_view text, std::string_view file) {
  CHOIR_TRY(auto docs, parse_yaml(text, file));
  if (docs.size() != 1) return bad(file, "(file)", "expected exactly one ScriptedModel document");
  return scripted_from_json(docs.front().root(), file);
}

}  // namespace choir::models
