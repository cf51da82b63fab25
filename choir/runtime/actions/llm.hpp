#pragma once
/// The `llm` and `tool` action types: model and tool calls from YAML graphs, every one through the
/// kernel's gate (checked, budgeted, journaled, audited). YAML forms in docs/graph-yaml.md:
///
///     answer:
///       type: llm
///       model: local/8B                 # an alias the contract allows (default: its first)
///       system: You keep notes.          # text; {{expression}} holes over inputs and reads
///       prompt: "{{request}}"            # the user message
///       history: messages                # a list of chat messages sent first; the turn is appended
///       tools: [fs.write, fs.read]       # a tool loop over these (each a capability of the contract)
///       max_rounds: 8                    # model calls in the loop, at most
///       into: reply                      # the answer (text, or the parsed JSON with output: json)
///       output: json                     # text (default) or json
///       schema: {type: object, required: [title]}   # with output: json, the answer must match it
///       max_tokens: 512
///       temperature: 0
///       stream: true                     # tokens go to the step's stream as {"token": …}
///       usage_into: usage                # {input_tokens, output_tokens, cost_usd, model}
///
/// Resume and replay: each model call is an effect keyed `run/step/action/model/<round>`, each
/// tool call `run/step/action/tool/<round>/<i>`; a step that runs again reuses every recorded
/// answer and result instead of calling again.
#include <memory>

#include "choir/graph/loader.hpp"
#include "choir/runtime/actions/services.hpp"

namespace choir::runtime {

void register_llm_action(graph::action_registry& registry, std::shared_ptr<const action_services> services);
void register_tool_action(graph::action_registry& registry, std::shared_ptr<const action_services> services);

}  // namespace choir::runtime
