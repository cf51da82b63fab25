#include "choir/runtime/mcp_sampling.hpp"

#include <string>
#include <string_view>
#include <utility>

namespace choir::runtime {

namespace {

value text_block(const std::string& text) { return {{"type", "text"}, {"text", text}}; }

/// One block as a single object, several as an array (the older clients take only the former).
value blocks_or_one(value blocks) {
  if (blocks.size() == 1) return std::move(blocks[0]);
  return blocks;
}

/// A message's content as a list of blocks (MCP allows one block or an array of them).
value as_blocks(const value& content) {
  if (content.is_array()) return content;
  return value::array({content});
}

bool is_block(const value& b, std::string_view type) {
  return b.is_object() && b.contains("type") && b["type"].is_string() && b["type"].get<std::string>() == type;
}

std::string text_of_blocks(const value& blocks) {
  std::string text;
  for (const auto& b : blocks) {
    if (is_block(b, "text") && b.contains("text") && b["text"].is_string()) {
      text += (text.empty() ? "" : "\n") + b["text"].get<std::string>();
    }
  }
  return text;
}

}  // namespace

result<value> sampling_params(const models::chat_request& request, const models::sampling_preferences& preferences,
                              bool with_tools) {
  const auto refuse = [](const std::string& why) {
    return make_error(models::model_errc::rejected, "the MCP client's model cannot take this request: " + why);
  };
  std::string system;
  value messages = value::array();
  value pending_results = value::array();  // tool results, sent together as one user message
  const auto flush_results = [&] {
    if (pending_results.empty()) return;
    messages.push_back({{"role", "user"}, {"content", std::move(pending_results)}});
    pending_results = value::array();
  };
  for (const auto& m : request.messages) {
    if (m.role == "system") {
      system += (system.empty() ? "" : "\n\n") + m.content;
      continue;
    }
    if (m.role == "tool") {
      if (!with_tools) return refuse("its history holds tool results, and the client did not declare sampling.tools");
      value r{
          {"type", "tool_result"}, {"toolUseId", m.tool_call_id}, {"content", value::array({text_block(m.content)})}};
      if (m.is_error) r["isError"] = true;
      pending_results.push_back(std::move(r));
      continue;
    }
    flush_results();
    if (m.role != "user" && m.role != "assistant") return refuse("a message of role '" + m.role + "'");
    value content = value::array();
    if (!m.content.empty() || m.tool_calls.empty()) content.push_back(text_block(m.content));
    if (!m.tool_calls.empty() && !with_tools) {
      return refuse("its history holds tool calls, and the client did not declare sampling.tools");
    }
    for (const auto& call : m.tool_calls) {
      content.push_back({{"type", "tool_use"},
                         {"id", call.id},
                         {"name", call.name},
                         {"input", call.arguments.is_object() ? call.arguments : value::object()}});
    }
    messages.push_back({{"role", m.role}, {"content", blocks_or_one(std::move(content))}});
  }
  flush_results();
  if (messages.empty()) return refuse("it has no user or assistant message");
  if (request.json_output) system += std::string(system.empty() ? "" : "\n\n") + "Answer with JSON only.";

  value params{{"messages", std::move(messages)},
               {"maxTokens", request.max_tokens.value_or(default_sampling_max_tokens)},
               {"includeContext", "none"}};
  if (!system.empty()) params["systemPrompt"] = system;
  if (request.temperature) params["temperature"] = *request.temperature;
  value prefs = value::object();
  if (!preferences.hints.empty()) {
    value hints = value::array();
    for (const auto& h : preferences.hints) hints.push_back({{"name", h}});
    prefs["hints"] = std::move(hints);
  }
  if (preferences.cost_priority) prefs["costPriority"] = *preferences.cost_priority;
  if (preferences.speed_priority) prefs["speedPriority"] = *preferences.speed_priority;
  if (preferences.intelligence_priority) prefs["intelligencePriority"] = *preferences.intelligence_priority;
  if (!prefs.empty()) params["modelPreferences"] = std::move(prefs);
  if (!request.tools.empty()) {
    if (!with_tools) return refuse("it offers tools, and the client did not declare sampling.tools");
    value tools = value::array();
    for (const auto& t : request.tools) {
      value tool{{"name", t.name}, {"inputSchema", t.input_schema}};
      if (!t.description.empty()) tool["description"] = t.description;
      tools.push_back(std::move(tool));
    }
    params["tools"] = std::move(tools);
    params["toolChoice"] = {{"mode", "auto"}};
  }
  return params;
}

result<models::chat_response> sampling_answer(const value& answer) {
  const auto bad = [](const std::string& why) {
    return make_error(models::model_errc::bad_response, "the MCP client's answer to sampling: " + why);
  };
  if (!answer.is_object()) return bad("not an object");
  if (!answer.contains("role") || answer["role"] != "assistant") return bad("its role is not assistant");
  if (!answer.contains("content")) return bad("it has no content");
  models::chat_response out;
  out.message.role = "assistant";
  for (const auto& b : as_blocks(answer["content"])) {
    if (is_block(b, "text")) {
      if (!b.contains("text") || !b["text"].is_string()) return bad("a text block without text");
      out.message.content += (out.message.content.empty() ? "" : "\n") + b["text"].get<std::string>();
    } else if (is_block(b, "tool_use")) {
      if (!b.contains("id") || !b["id"].is_string() || !b.contains("name") || !b["name"].is_string()) {
        return bad("a tool_use block needs an id and a name");
      }
      out.message.tool_calls.push_back(
          {.id = b["id"].get<std::string>(),
           .name = b["name"].get<std::string>(),
           .arguments = b.contains("input") && b["input"].is_object() ? b["input"] : value::object()});
    } else {
      const std::string type = b.is_object() && b.contains("type") && b["type"].is_string()
                                   ? b["type"].get<std::string>()
                                   : std::string("unknown");
      return bad("content of type " + type + " (only text and tool calls are understood)");
    }
  }
  const std::string stop =
      answer.contains("stopReason") && answer["stopReason"].is_string() ? answer["stopReason"].get<std::string>() : "";
  out.finish_reason = stop == "maxTokens"                                           ? "length"
                      : stop == "toolUse" || !out.message.tool_calls.empty()        ? "tool_calls"
                      : stop.empty() || stop == "endTurn" || stop == "stopSequence" ? "stop"
                                                                                    : stop;
  return out;
}

result<models::chat_request> sampled_request(const value& params) {
  const auto bad = [](const std::string& why) {
    return make_error(core_errc::invalid_argument, "sampling/createMessage: " + why);
  };
  if (!params.is_object()) return bad("params must be an object");
  models::chat_request request;
  if (params.contains("systemPrompt")) {
    if (!params["systemPrompt"].is_string()) return bad("systemPrompt must be text");
    request.messages.push_back({.role = "system", .content = params["systemPrompt"].get<std::string>()});
  }
  if (!params.contains("messages") || !params["messages"].is_array() || params["messages"].empty()) {
    return bad("messages are required");
  }
  for (const auto& m : params["messages"]) {
    const std::string role =
        m.is_object() && m.contains("role") && m["role"].is_string() ? m["role"].get<std::string>() : std::string();
    if (role != "user" && role != "assistant") return bad("a message's role is user or assistant");
    if (!m.contains("content")) return bad("a message has no content");
    models::chat_message message{.role = role};
    for (const auto& b : as_blocks(m["content"])) {
      if (is_block(b, "text") && b.contains("text") && b["text"].is_string()) {
        message.content += (message.content.empty() ? "" : "\n") + b["text"].get<std::string>();
      } else if (is_block(b, "tool_use") && role == "assistant") {
        if (!b.contains("id") || !b["id"].is_string() || !b.contains("name") || !b["name"].is_string()) {
          return bad("a tool_use block needs an id and a name");
        }
        message.tool_calls.push_back(
            {.id = b["id"].get<std::string>(),
             .name = b["name"].get<std::string>(),
             .arguments = b.contains("input") && b["input"].is_object() ? b["input"] : value::object()});
      } else if (is_block(b, "tool_result") && role == "user") {
        if (!b.contains("toolUseId") || !b["toolUseId"].is_string())
          return bad("a tool_result block needs a toolUseId");
        request.messages.push_back(
            {.role = "tool",
             .content = b.contains("content") && b["content"].is_array() ? text_of_blocks(b["content"]) : "",
             .tool_call_id = b["toolUseId"].get<std::string>(),
             .is_error = b.contains("isError") && b["isError"].is_boolean() && b["isError"].get<bool>()});
      } else {
        return bad("only text, tool_use (assistant) and tool_result (user) content can be sampled here");
      }
    }
    if (!message.content.empty() || !message.tool_calls.empty()) request.messages.push_back(std::move(message));
  }
  if (params.contains("maxTokens")) {
    if (!params["maxTokens"].is_number_integer() || params["maxTokens"].get<std::int64_t>() < 1) {
      return bad("maxTokens must be a positive integer");
    }
    request.max_tokens = params["maxTokens"].get<std::int64_t>();
  }
  if (params.contains("temperature") && params["temperature"].is_number()) {
    request.temperature = params["temperature"].get<double>();
  }
  if (params.contains("tools")) {
    if (!params["tools"].is_array()) return bad("tools must be a list");
    for (const auto& t : params["tools"]) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) return bad("a tool needs a name");
      request.tools.push_back(
          {.name = t["name"].get<std::string>(),
           .description =
               t.contains("description") && t["description"].is_string() ? t["description"].get<std::string>() : "",
           .input_schema = t.contains("inputSchema") && t["inputSchema"].is_object() ? t["inputSchema"]
                                                                                     : value{{"type", "object"}}});
    }
    if (params.contains("toolChoice") && params["toolChoice"].is_object() &&
        params["toolChoice"].value("mode", std::string()) == "none") {
      request.tools.clear();  // the model must not call them
    }
  }
  return request;
}

value sampling_result(const models::chat_response& answer) {
  value content = value::array();
  if (!answer.message.content.empty() || answer.message.tool_calls.empty()) {
    content.push_back(text_block(answer.message.content));
  }
  for (const auto& call : answer.message.tool_calls) {
    content.push_back({{"type", "tool_use"}, {"id", call.id}, {"name", call.name}, {"input", call.arguments}});
  }
  const std::string stop = !answer.message.tool_calls.empty() ? "toolUse"
                           : answer.finish_reason == "length" ? "maxTokens"
                                                              : "endTurn";
  return {{"role", "assistant"},
          {"content", blocks_or_one(std::move(content))},
          {"model", answer.model},
          {"stopReason", stop}};
}

}  // namespace choir::runtime
