#include "choir/tools/tool.hpp"

#include <algorithm>
#include <mutex>

namespace choir::tools {
namespace {

class tool_category_impl final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "choir.tools"; }
  [[nodiscard]] std::string message(int code) const override {
    switch (static_cast<tool_errc>(code)) {
      case tool_errc::unknown_tool: return "unknown tool";
      case tool_errc::invalid_arguments: return "invalid arguments";
      case tool_errc::invalid_result: return "invalid result";
      case tool_errc::outside_workspace: return "outside the workspace";
      case tool_errc::not_found: return "not found";
      case tool_errc::limit_exceeded: return "limit exceeded";
      case tool_errc::sandbox_unavailable: return "sandbox unavailable";
      case tool_errc::failed: return "failed";
      case tool_errc::forbidden_address: return "forbidden address";
    }
    return "unknown tool error";
  }
};

}  // namespace

const std::error_category& tool_category() noexcept {
  static const tool_category_impl category;
  return category;
}

std::error_code make_error_code(tool_errc e) noexcept { return {static_cast<int>(e), tool_category()}; }

result<std::shared_ptr<const tool_registry::entry>> tool_registry::compile(std::shared_ptr<tool> t) {
  const tool_spec& spec = t->spec();
  if (spec.name.empty()) return make_error(core_errc::invalid_argument, "a tool needs a name");
  auto input = json_schema::compile(spec.input_schema);
  if (!input.ok())
    return make_error(core_errc::invalid_argument, "tool " + spec.name + ": input schema: " + input.err().message);
  std::optional<json_schema> output;
  if (!spec.output_schema.is_null()) {
    auto compiled = json_schema::compile(spec.output_schema);
    if (!compiled.ok()) {
      return make_error(core_errc::invalid_argument,
                        "tool " + spec.name + ": output schema: " + compiled.err().message);
    }
    output = std::move(compiled).value();
  }
  return std::make_shared<const entry>(entry{std::move(t), std::move(input).value(), std::move(output)});
}

result<void> tool_registry::add(std::shared_ptr<tool> t) {
  CHOIR_TRY(auto compiled, compile(std::move(t)));
  std::unique_lock lock(mutex_);
  const std::string& name = compiled->impl->spec().name;
  if (std::any_of(entries_.begin(), entries_.end(), [&](const auto& e) { return e->impl->spec().name == name; })) {
    return make_error(core_errc::invalid_argument, "tool " + name + " is already registered");
  }
  entries_.push_back(std::move(compiled));
  return {};
}

std::vector<std::string> tool_registry::replace_prefix(std::string_view prefix,
                                                       std::vector<std::shared_ptr<tool>> tools) {
  std::vector<std::string> refused;
  std::vector<std::shared_ptr<const entry>> fresh;
  for (auto& t : tools) {
    const std::string name = t->spec().name;
    if (name.compare(0, prefix.size(), prefix) != 0) {
      refused.push_back("tool " + name + ": not under " + std::string(prefix));
      continue;
    }
    if (std::any_of(fresh.begin(), fresh.end(), [&](const auto& e) { return e->impl->spec().name == name; })) {
      refused.push_back("tool " + name + ": named twice");
      continue;
    }
    auto compiled = compile(std::move(t));
    if (!compiled.ok()) {
      refused.push_back(compiled.err().message);
      continue;
    }
    fresh.push_back(std::move(compiled).value());
  }
  std::unique_lock lock(mutex_);
  std::erase_if(entries_, [&](const auto& e) { return e->impl->spec().name.compare(0, prefix.size(), prefix) == 0; });
  for (auto& e : fresh) {
    const std::string& name = e->impl->spec().name;
    if (std::any_of(entries_.begin(), entries_.end(), [&](const auto& x) { return x->impl->spec().name == name; })) {
      refused.push_back("tool " + name + " is already registered");
      continue;
    }
    entries_.push_back(std::move(e));
  }
  return refused;
}

std::shared_ptr<const tool_registry::entry> tool_registry::lookup(std::string_view name) const {
  std::shared_lock lock(mutex_);
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const auto& e) { return e->impl->spec().name == name; });
  return it == entries_.end() ? nullptr : *it;
}

std::shared_ptr<tool> tool_registry::find(std::string_view name) const {
  const auto e = lookup(name);
  return e == nullptr ? nullptr : e->impl;
}

std::vector<tool_spec> tool_registry::list() const {
  std::shared_lock lock(mutex_);
  std::vector<tool_spec> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e->impl->spec());
  return out;
}

namespace {

template <class Entry>
result<void> check_arguments(const Entry* e, std::string_view name, const value& arguments) {
  if (e == nullptr) return make_error(tool_errc::unknown_tool, "no tool is named '" + std::string(name) + "'");
  const auto violations = e->input.validate(arguments);
  if (!violations.empty()) {
    return make_error(tool_errc::invalid_arguments,
                      "invalid arguments for " + std::string(name) + ": " + describe(violations));
  }
  return {};
}

}  // namespace

result<void> tool_registry::validate(std::string_view name, const value& arguments) const {
  return check_arguments(lookup(name).get(), name, arguments);
}

std::string tool_registry::subject_of(std::string_view name, const value& arguments) const {
  const auto e = lookup(name);
  if (e == nullptr || e->impl->spec().subject.empty() || !arguments.is_object()) return {};
  const auto it = arguments.find(e->impl->spec().subject);
  return it != arguments.end() && it->is_string() ? it->get<std::string>() : std::string();
}

result<value> tool_registry::call(std::string_view name, const value& arguments, const tool_context& context) const {
  const auto e = lookup(name);  // the call keeps this tool even if the registry changes meanwhile
  CHOIR_CHECK(check_arguments(e.get(), name, arguments));
  CHOIR_TRY(value answer, e->impl->call(arguments, context));
  if (e->output) {
    const auto violations = e->output->validate(answer);
    if (!violations.empty()) {
      return make_error(tool_errc::invalid_result,
                        "tool " + std::string(name) +
                            " returned a result that does not match its output schema: " + describe(violations));
    }
  }
  return answer;
}

}  // namespace choir::tools
