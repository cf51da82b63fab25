// Interop: the official MCP TypeScript SDK's client against `choir mcp serve` over stdio.
//   node tests/interop/mcp_stdio.mjs <choir binary> <scratch folder> <examples folder>
// Exit 0: every check passed; 1: a check failed (printed); 77: the SDK is not installed (skip).
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

let Client, StdioClientTransport, ElicitRequestSchema, ResourceUpdatedNotificationSchema, CreateMessageRequestSchema,
  McpError, ErrorCode, LoggingMessageNotificationSchema;
try {
  ({ Client } = await import("@modelcontextprotocol/sdk/client/index.js"));
  ({ StdioClientTransport } = await import("@modelcontextprotocol/sdk/client/stdio.js"));
  ({ ElicitRequestSchema, ResourceUpdatedNotificationSchema, CreateMessageRequestSchema, McpError, ErrorCode,
    LoggingMessageNotificationSchema } = await import("@modelcontextprotocol/sdk/types.js"));
} catch {
  console.log("skipped: @modelcontextprotocol/sdk is not installed (npm ci --prefix tests/interop)");
  process.exit(77);
}

const [choir, scratch, examples] = process.argv.slice(2);
rmSync(scratch, { recursive: true, force: true });
mkdirSync(scratch, { recursive: true });
const store = join(scratch, "choir.db");
execFileSync(choir, ["policy", "apply", join(examples, "policy.yaml"), "--store", store]);
execFileSync(choir, ["run", join(examples, "counter.yaml"), "--input", "n=2", "--store", store]);

const text = (result) => result.content.map((c) => c.text ?? "").join("");

/** A session agent that does nothing itself and may call `agents` (written to the scratch folder). */
function sessionAgent(name, agents) {
  const file = join(scratch, `${name}.yaml`);
  writeFileSync(file, [
    "apiVersion: agentos/v0.2", "kind: AgentContract", `name: ${name}`, "class: {latency: SRT}",
    `capabilities: [{name: agent.call, allow: [${agents.join(", ")}]}]`, "---",
    "apiVersion: agentos/v0.2", "kind: Graph", `name: ${name}`, "entrypoint: serve", "actions:", "  serve: {type: pass}", ""].join("\n"));
  return file;
}

async function session(args, options = {}, prepare = () => {}) {
  const transport = new StdioClientTransport({ command: choir, args: ["mcp", "serve", "--store", store, ...args], stderr: "pipe" });
  const client = new Client({ name: "choir-interop", version: "1.0.0" }, options);
  prepare(client);
  await client.connect(transport);
  return client;
}

try {
  // Under the notes agent's contract: fs.write (notes/** only), fs.read, shell.exec.
  const warned = [];
  const client = await session(["--agent", join(examples, "notes.yaml")], {}, (c) => {
    c.setNotificationHandler(LoggingMessageNotificationSchema, (n) => warned.push(n.params));
  });
  assert.equal(client.getServerVersion().name, "choir");
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), ["fs.read", "fs.write", "shell.exec"]);
  assert.ok(tools.every((t) => t.inputSchema.type === "object"));

  const wrote = await client.callTool({ name: "fs.write", arguments: { path: "notes/sdk.txt", content: "from the SDK" } });
  assert.equal(wrote.isError, false, text(wrote));
  assert.equal(wrote.structuredContent.bytes, 12);
  const read = await client.callTool({ name: "fs.read", arguments: { path: "notes/sdk.txt" } });
  assert.equal(read.isError, false, text(read));
  assert.equal(read.structuredContent.content, "from the SDK");

  // Errors a model can correct come back as results; the kernel's refusals too.
  const invalid = await client.callTool({ name: "fs.read", arguments: {} });
  assert.equal(invalid.isError, true);
  assert.match(text(invalid), /invalid arguments for fs\.read/);
  const denied = await client.callTool({ name: "fs.write", arguments: { path: "elsewhere.txt", content: "x" } });
  assert.equal(denied.isError, true);
  assert.match(text(denied), /only for/);
  // The kernel's refusal is also in the client's log.
  assert.deepEqual(warned.map((w) => [w.level, w.logger, w.data.tool]), [["warning", "choir.kernel", "fs.write"]]);
  const escape = await client.callTool({ name: "fs.read", arguments: { path: "../../choir.db" } });
  assert.equal(escape.isError, true);
  // An unknown tool is a protocol error.
  await assert.rejects(client.callTool({ name: "no.such.tool", arguments: {} }), /Unknown tool/);
  await client.ping();

  // Runs of the tenant are resources: the counter run from before and this session's own run.
  const { resources } = await client.listResources();
  const counterRun = resources.find((r) => r.title === "counter (completed)");
  assert.ok(counterRun, JSON.stringify(resources));
  assert.ok(resources.some((r) => r.title === "notes (running)"), "the session's own run");
  const { resourceTemplates } = await client.listResourceTemplates();
  assert.deepEqual(resourceTemplates.map((t) => t.uriTemplate).sort(),
    ["choir://runs/{run_id}", "choir://runs/{run_id}/state", "choir://runs/{run_id}/steps/{sequence_id}"]);
  const runDoc = JSON.parse((await client.readResource({ uri: counterRun.uri })).contents[0].text);
  assert.equal(runDoc.run.agent, "counter");
  assert.ok(runDoc.steps.length >= 3, JSON.stringify(runDoc));
  const stateDoc = JSON.parse((await client.readResource({ uri: `${counterRun.uri}/state` })).contents[0].text);
  assert.equal(stateDoc.state.count, 2, JSON.stringify(stateDoc));
  const stepDoc = JSON.parse((await client.readResource({ uri: runDoc.steps[0].uri })).contents[0].text);
  assert.equal(stepDoc.action, runDoc.steps[0].action);
  assert.ok("state_after" in stepDoc);
  await assert.rejects(client.readResource({ uri: "choir://runs/no-such-run" }), /Resource not found/);
  // Completion of a run id from its first characters, then a prompt that embeds the run.
  const completed = await client.complete({ ref: { type: "ref/resource", uri: "choir://runs/{run_id}" },
    argument: { name: "run_id", value: counterRun.name.slice(0, 6) } });
  assert.ok(completed.completion.values.includes(counterRun.name), JSON.stringify(completed));
  const { prompts } = await client.listPrompts();
  assert.deepEqual(prompts.map((p) => p.name).sort(), ["diagnose_run", "explain_run"]);
  const prompt = await client.getPrompt({ name: "explain_run", arguments: { run_id: counterRun.name } });
  assert.equal(prompt.messages[1].content.type, "resource");
  assert.equal(prompt.messages[1].content.resource.uri, counterRun.uri);
  await assert.rejects(client.getPrompt({ name: "explain_run", arguments: {} }), /run_id/);

  // A subscription: another process gives a waiting run its input, and the session says so.
  assert.equal(client.getServerCapabilities().resources.subscribe, true);
  spawnSync(choir, ["run", join(examples, "approval.yaml"), "--store", store]);
  const listedRuns = execFileSync(choir, ["runs", "list", "--json", "--store", store]).toString()
    .split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));  // a run per line
  const waitingRun = listedRuns.find((r) => r.agent === "approval" && r.status === "waiting");
  assert.ok(waitingRun, JSON.stringify(listedRuns));
  const runUri = `choir://runs/${waitingRun.run_id}`;
  const updates = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => { updates.push(n.params.uri); });
  await client.subscribeResource({ uri: runUri });
  await assert.rejects(client.subscribeResource({ uri: "choir://runs/no-such-run" }), /Resource not found/);
  execFileSync(choir, ["runs", "input", waitingRun.run_id, "answer=yes", "--store", store]);
  for (let i = 0; i < 100 && !updates.includes(runUri); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(updates.includes(runUri), `no update for ${runUri}: ${JSON.stringify(updates)}`);
  const after = JSON.parse((await client.readResource({ uri: runUri })).contents[0].text);
  assert.equal(after.run.status, "completed");
  await client.unsubscribeResource({ uri: runUri });
  await client.close();

  // The built-in session: read-only tools.
  const reader = await session([]);
  const listed = await reader.listTools();
  assert.deepEqual(listed.tools.map((t) => t.name).sort(), ["fs.list", "fs.read"]);
  await reader.close();

  // Agents as tools: the orchestrator's contract may call the researcher, so its session offers it.
  const logged = [];
  const boss = await session(["--agent", join(examples, "orchestrator.yaml")], {}, (c) => {
    c.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logged.push([n.params.level, n.params.data.message]));
  });
  const bossTools = (await boss.listTools()).tools;
  const researcher = bossTools.find((t) => t.name === "agent.researcher");
  assert.ok(researcher, JSON.stringify(bossTools.map((t) => t.name)));
  assert.ok("topic" in researcher.inputSchema.properties, JSON.stringify(researcher.inputSchema));
  const answered = await boss.callTool({ name: "agent.researcher", arguments: { topic: "barn owls" } });
  assert.equal(answered.isError, false, text(answered));
  assert.match(answered.structuredContent.summary, /^barn owls: 2 notes/);
  // The child run's start and end are in the client's log (level info, the default)…
  assert.equal(logged.length, 2, JSON.stringify(logged));
  assert.match(logged[0][1], /^run .*\.mcp\.1 of researcher started$/);
  assert.deepEqual(logged[1], ["info", logged[0][1].replace("started", "is completed")]);
  // …and not once the client asks only for warnings and worse.
  await boss.setLoggingLevel("warning");
  // A progress notification per committed step of the child run, before the answer. Read off the
  // wire: the SDK drops progress it reads in the same chunk as the answer, which a run this short
  // always is.
  const wire = spawnSync(choir, ["mcp", "serve", "--store", store, "--agent", join(examples, "orchestrator.yaml")], {
    input: [
      { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {} } },
      { jsonrpc: "2.0", id: 2, method: "tools/call",
        params: { name: "agent.researcher", arguments: { topic: "owls" }, _meta: { progressToken: "p" } } },
    ].map((m) => JSON.stringify(m)).join("\n") + "\n",
  }).stdout.toString().split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  const answerAt = wire.findIndex((m) => m.id === 2);
  const progress = wire.slice(0, answerAt).filter((m) => m.method === "notifications/progress").map((m) => m.params);
  assert.deepEqual(progress.map((p) => [p.progressToken, p.progress, p.message]),
    [["p", 1, "step 0: gather"], ["p", 2, "step 1: dig"], ["p", 3, "step 2: summarize"]]);
  assert.equal(wire[answerAt].result.isError, false);
  assert.deepEqual(wire.slice(0, answerAt).filter((m) => m.method === "notifications/message").map((m) => m.params.level),
    ["info", "info"]);
  const wrongInput = await boss.callTool({ name: "agent.researcher", arguments: { colour: "red" } });
  assert.equal(wrongInput.isError, true);
  assert.match(text(wrongInput), /takes no 'colour'/);
  await boss.callTool({ name: "agent.researcher", arguments: { topic: "moths" } });
  assert.equal(logged.length, 2, JSON.stringify(logged));
  // The child is a run of its own, listed with the others.
  assert.ok((await boss.listResources()).resources.some((r) => r.title === "researcher (completed)"));
  await boss.close();

  // A child waiting for a person at a `human` action asks the person at the client (elicitation).
  const asker = sessionAgent("asker", ["approval"]);
  const asked = [];
  let reply = { action: "accept", content: { answer: "yes" } };
  const person = await session(["--agent", asker, "--agents", examples], { capabilities: { elicitation: {} } }, (c) => {
    c.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params);
      return reply;
    });
  });
  const approved = await person.callTool({ name: "agent.approval", arguments: {} });
  assert.equal(approved.isError, false, text(approved));
  assert.equal(approved.structuredContent.shipped, "plan v1");
  assert.equal(asked.length, 1);
  assert.match(asked[0].message, /Ship this plan\?/);
  assert.deepEqual(asked[0].requestedSchema.required, ["answer"]);
  assert.equal(asked[0].requestedSchema.properties.answer.type, "string");
  // Declined: the call says so, and the child run stays waiting for its input.
  reply = { action: "decline" };
  const refused = await person.callTool({ name: "agent.approval", arguments: {} });
  assert.equal(refused.isError, true);
  assert.match(text(refused), /waits for input at 'approve' \(the person chose decline\)/);
  await person.close();
  // A client that cannot be asked gets the same answer at once, naming the run to continue.
  const nobody = await session(["--agent", asker, "--agents", examples]);
  const waiting = await nobody.callTool({ name: "agent.approval", arguments: {} });
  assert.equal(waiting.isError, true);
  assert.match(text(waiting), /waits for input at 'approve'; give it with POST \/api\/v1\/runs\/.*\.mcp\.1\/input/);
  await nobody.close();

  // An agent that thinks with the client's model (examples/brief.yaml: its model `client` is of
  // provider mcp-client): the child run asks the client with sampling/createMessage.
  const lender = sessionAgent("lender", ["brief"]);
  const sampled = [];
  const lines = "Owls hunt at night.\nThey hear well.\nThey fly silently.";
  let sample = async () => ({ role: "assistant", content: { type: "text", text: lines }, model: "clients-own-model",
    stopReason: "endTurn" });
  const writer = await session(["--agent", lender, "--agents", examples], { capabilities: { sampling: {} } }, (c) => {
    c.setRequestHandler(CreateMessageRequestSchema, async (request) => {
      sampled.push(request.params);
      return sample(request);
    });
  });
  const brief = await writer.callTool({ name: "agent.brief", arguments: { topic: "owls" } });
  assert.equal(brief.isError, false, text(brief));
  assert.equal(brief.structuredContent.brief, lines);
  assert.equal(brief.structuredContent.usage.model, "client");
  assert.equal(sampled.length, 1);
  assert.equal(sampled[0].systemPrompt, "You write briefs of exactly three short lines.");
  assert.deepEqual(sampled[0].messages, [{ role: "user", content: { type: "text", text: "Write a brief on owls." } }]);
  assert.equal(sampled[0].maxTokens, 200);
  assert.deepEqual(sampled[0].modelPreferences, { hints: [{ name: "claude-sonnet" }] });
  assert.equal(sampled[0].tools, undefined);
  // The person at the client declines: the next model the agent's policy allows answers.
  sample = async () => { throw new McpError(ErrorCode.InvalidRequest, "the person declined"); };
  const declined = await writer.callTool({ name: "agent.brief", arguments: { topic: "owls" } });
  assert.equal(declined.isError, false, text(declined));
  assert.equal(declined.structuredContent.brief, "(offline) Write a brief on owls.");
  assert.equal(declined.structuredContent.usage.model, "local/8B");
  assert.equal(sampled.length, 2);
  await writer.close();
  // A client that does not sample is never asked; the offline model answers too.
  const plain = await session(["--agent", lender, "--agents", examples]);
  const offline = await plain.callTool({ name: "agent.brief", arguments: { topic: "moths" } });
  assert.equal(offline.isError, false, text(offline));
  assert.equal(offline.structuredContent.usage.model, "local/8B");
  await plain.close();

  // A call the client cancels stops its child run between two steps, and gets no answer:
  // counting up from -1,000,000 would take a while.
  const stopper = await session(["--agent", sessionAgent("stopper", ["counter"]), "--agents", examples]);
  const abort = new AbortController();
  let progressed = 0;
  await assert.rejects(stopper.callTool({ name: "agent.counter", arguments: { count: -1000000 } }, undefined, {
    signal: abort.signal,
    onprogress: () => { if (++progressed === 3) abort.abort("enough"); },
  }), /enough/);
  const haltedCounter = () => execFileSync(choir, ["runs", "list", "--json", "--store", store]).toString().trim()
    .split("\n").map((l) => JSON.parse(l)).find((r) => r.agent === "counter" && r.parent_run && r.status === "halted");
  let halted;
  for (let i = 0; i < 100 && !halted; ++i) {  // the server stops the run just after the client gave up
    await new Promise((r) => setTimeout(r, 50));
    halted = haltedCounter();
  }
  assert.ok(halted, "the counter's run is halted");
  assert.ok(halted.last_sequence >= 2 && halted.last_sequence < 100000, JSON.stringify(halted));
  // The session goes on.
  assert.equal((await stopper.callTool({ name: "agent.counter", arguments: { count: 1 } })).structuredContent.message,
    "counted to 3");
  await stopper.close();

  // Every call is in the audit log, and the log verifies.
  const audit = execFileSync(choir, ["audit", "list", "--limit", "100", "--store", store]).toString();
  assert.match(audit, /fs\.write/);
  assert.match(audit, /agent\.call/);
  execFileSync(choir, ["audit", "verify", "--store", store]);
  console.log(`ok: the SDK's client listed ${tools.length} tools, wrote, read, and saw every refusal`);
} catch (e) {
  console.error("FAILED:", e);
  process.exit(1);
}
