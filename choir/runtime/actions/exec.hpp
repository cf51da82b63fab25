#pragma once
/// The `exec` and `verify` action types: a program run in the sandbox (bubblewrap: no network, a
/// read-only system, the agent's workspace as /workspace and its only writable place, time, memory
/// and output limits), through the kernel's gate. YAML forms in docs/graph-yaml.md:
///
///     score:                          # any language, no recompiling: JSON in, JSON out
///       type: exec
///       command: [python3, -c, "import json,sys; d=json.load(sys.stdin); print(json.dumps({'score':
///       len(d['draft'])}))"] reads: [draft]                # stdin: one JSON object of the step's inputs and reads
///       writes: [score]               # stdout: one JSON object; each key must be in writes
///       timeout_ms: 10000             # default 30000; memory_mb (default 1024)
///       idempotent: false             # may it run again after a crash? (default false)
///
///     check:                          # pass or fail, never an error: the graph decides
///       type: verify
///       command: "make test"          # a string runs under /bin/sh -c; or a list
///       into: verdict                 # {passed, exit_code, output (the last 4 KiB of stdout and stderr)}
///       timeout_ms: 60000             # a verifier that runs out of time has failed
///
/// Capabilities: `exec` and `verify`, matched against the command's text (`{name: exec, allow:
/// ["python3 **"]}`). Each run is an effect journaled under `run/step/action`: a resumed run
/// reuses a recorded outcome; an `exec` whose outcome is unknown runs again only if `idempotent`
/// (`verify` is idempotent unless it says otherwise).
#include <memory>

#include "choir/graph/loader.hpp"
#include "choir/runtime/actions/services.hpp"

namespace choir::runtime {

void register_exec_actions(graph::action_registry& registry, std::shared_ptr<const action_services> services);

}  // namespace choir::runtime
