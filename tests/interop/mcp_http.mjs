// Interop: the official MCP TypeScript SDK's client against `/mcp` of `choir serve` (Streamable HTTP).
//   node tests/interop/mcp_http.mjs <choir binary> <scratch folder> <examples folder>
// Exit 0: every check passed; 1: a check failed (printed); 77: the SDK is not installed (skip).
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

let Client, StreamableHTTPClientTransport, ResourceUpdatedNotificationSchema, ElicitRequestSchema,
  CreateMessageRequestSchema;
try {
  ({ Client } = await import("@modelcontextprotocol/sdk/client/index.js"));
  ({ StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js"));
  ({ ResourceUpdatedNotificationSchema, ElicitRequestSchema, CreateMessageRequestSchema } =
    await import("@modelcontextprotocol/sdk/types.js"));
} catch {
  console.log("skipped: @modelcontextprotocol/sdk is not installed (npm ci --prefix tests/interop)");
  process.exit(77);
}

const [choir, scratch, examples] = process.argv.slice(2);
rmSync(scratch, { recursive: true, force: true });
mkdirSync(scratch, { recursive: true });
const store = join(scratch, "choir.db");
execFileSync(choir, ["policy", "apply", join(examples, "policy.yaml"), "--store", store]);

/** `choir serve` on a free port: its URL and admin token. */
// An agent whose contract may call the approval, researcher and brief agents (asked through MCP below).
const agents = join(scratch, "agents");
mkdirSync(agents, { recursive: true });
writeFileSync(join(agents, "asker.yaml"), [
  "apiVersion: agentos/v0.2", "kind: AgentContract", "name: asker", "class: {latency: SRT}",
  "capabilities: [{name: agent.call, allow: [approval, researcher, brief]}]", "---",
  "apiVersion: agentos/v0.2", "kind: Graph", "name: asker", "entrypoint: serve", "actions:", "  serve: {type: pass}", ""].join("\n"));

function serve() {
  const proc = spawn(choir, ["serve", "--listen", "127.0.0.1:0", "--store", store, "--agents", examples,
    "--agents", agents], {
    cwd: scratch,
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let url = null;
    let token = null;
    const timer = setTimeout(() => reject(new Error("choir serve did not start within 20 s")), 20_000);
    createInterface({ input: proc.stdout }).on("line", (line) => {
      url ??= /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line)?.[1];
      token ??= /admin token: (choir_\S+)/.exec(line)?.[1];
      if (url && token) {
        clearTimeout(timer);
        resolve({ proc, url, token });
      }
    });
    proc.on("exit", (code) => reject(new Error(`choir serve exited early (${code})`)));
  });
}

const text = (result) => result.content.map((c) => c.text ?? "").join("");

async function connect(url, token, agent, options = {}, prepare = () => {}) {
  const endpoint = new URL(`${url}/mcp${agent ? `?agent=${agent}` : ""}`);
  const transport = new StreamableHTTPClientTransport(endpoint, {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: "choir-interop", version: "1.0.0" }, options);
  prepare(client);
  await client.connect(transport);
  return { client, transport };
}

let server;
try {
  server = await serve();
  const { url, token } = server;

  // Without a token there is no session.
  await assert.rejects(connect(url, "choir_not_a_token"), /401|nauthori/);

  // The built-in session agent: read-only tools of its workspace.
  const { client, transport } = await connect(url, token);
  assert.equal(client.getServerVersion().name, "choir");
  assert.match(transport.sessionId, /^[0-9a-f]{32}$/);
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), ["fs.list", "fs.read"]);
  const listed = await client.callTool({ name: "fs.list", arguments: { path: "." } });
  assert.equal(listed.isError, false, text(listed));
  const missing = await client.callTool({ name: "fs.read", arguments: { path: "nope.txt" } });
  assert.equal(missing.isError, true);
  const escape = await client.callTool({ name: "fs.read", arguments: { path: "../../../choir.db" } });
  assert.equal(escape.isError, true);
  await assert.rejects(client.callTool({ name: "no.such.tool", arguments: {} }), /Unknown tool/);
  await client.ping();
  // The session's own run is a resource of its tenant, readable over HTTP too.
  const own = (await client.listResources()).resources.find((r) => r.title === "mcp-session (running)");
  assert.ok(own, "the session's run is listed");
  const doc = JSON.parse((await client.readResource({ uri: own.uri })).contents[0].text);
  assert.equal(doc.run.agent, "mcp-session");
  await assert.rejects(client.readResource({ uri: "choir://runs/nope" }), /Resource not found/);

  // A subscription: another process gives a waiting run its input; the update comes on the
  // session's GET stream, which the SDK opened after initializing.
  spawnSync(choir, ["run", join(examples, "approval.yaml"), "--store", store]);
  const waitingRun = execFileSync(choir, ["runs", "list", "--json", "--store", store]).toString()
    .split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l))
    .find((r) => r.agent === "approval" && r.status === "waiting");
  assert.ok(waitingRun, "an approval run waits");
  const runUri = `choir://runs/${waitingRun.run_id}`;
  const updates = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => { updates.push(n.params.uri); });
  assert.equal(client.getServerCapabilities().resources.subscribe, true);
  await client.subscribeResource({ uri: runUri });
  execFileSync(choir, ["runs", "input", waitingRun.run_id, "answer=yes", "--store", store]);
  for (let i = 0; i < 100 && !updates.includes(runUri); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(updates.includes(runUri), `no update for ${runUri} on the GET stream`);
  await transport.terminateSession();
  await assert.rejects(client.ping(), /404|not found|session/i);
  await client.close();

  // A session under the notes agent's contract: its tools, its patterns, the kernel's refusals.
  const notes = await connect(url, token, "notes");
  const noteTools = (await notes.client.listTools()).tools.map((t) => t.name).sort();
  assert.deepEqual(noteTools, ["fs.read", "fs.write", "shell.exec"]);
  const wrote = await notes.client.callTool({ name: "fs.write", arguments: { path: "notes/http.txt", content: "over HTTP" } });
  assert.equal(wrote.isError, false, text(wrote));
  const read = await notes.client.callTool({ name: "fs.read", arguments: { path: "notes/http.txt" } });
  assert.equal(read.structuredContent.content, "over HTTP");
  const denied = await notes.client.callTool({ name: "fs.write", arguments: { path: "elsewhere.txt", content: "x" } });
  assert.equal(denied.isError, true);
  assert.match(text(denied), /only for/);
  await notes.transport.terminateSession();
  await notes.client.close();

  // Over HTTP too, an agent called as a tool asks the person at the client (elicitation): the
  // request comes on the event stream answering the call, the answer is POSTed back.
  const asked = [];
  const sampled = [];
  const person = await connect(url, token, "asker", { capabilities: { elicitation: {}, sampling: {} } }, (c) => {
    c.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params.message);
      return { action: "accept", content: { answer: "yes" } };
    });
    c.setRequestHandler(CreateMessageRequestSchema, async (request) => {
      sampled.push(request.params.messages[0].content.text);
      return { role: "assistant", content: { type: "text", text: "Owls: sampled over HTTP." }, model: "m" };
    });
  });
  const approved = await person.client.callTool({ name: "agent.approval", arguments: {} });
  assert.equal(approved.isError, false, text(approved));
  assert.equal(approved.structuredContent.shipped, "plan v1");
  assert.deepEqual(asked, ["Agent approval asks: Ship this plan? (answer=yes or answer=no)"]);
  // The same way, a child whose model is the client's own (examples/brief.yaml) samples it.
  const brief = await person.client.callTool({ name: "agent.brief", arguments: { topic: "owls" } });
  assert.equal(brief.isError, false, text(brief));
  assert.equal(brief.structuredContent.brief, "Owls: sampled over HTTP.");
  assert.deepEqual(sampled, ["Write a brief on owls."]);
  // Progress, read off the wire: each committed step of the child, then the answer, as events.
  const wire = await fetch(`${url}/mcp`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json",
      Accept: "application/json, text/event-stream", "Mcp-Session-Id": person.transport.sessionId,
      "MCP-Protocol-Version": "2025-11-25" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 99, method: "tools/call",
      params: { name: "agent.researcher", arguments: { topic: "owls" }, _meta: { progressToken: 7 } } }),
  });
  assert.equal(wire.headers.get("content-type"), "text/event-stream");
  const events = (await wire.text()).split("\n").filter((l) => l.startsWith("data: ")).map((l) => JSON.parse(l.slice(6)));
  // The child run's start and end go to the client's log on the same stream (docs/mcp.md).
  assert.deepEqual(events.map((e) => e.method ?? `answer ${e.id}`),
    ["notifications/message", "notifications/progress", "notifications/progress", "notifications/progress",
      "notifications/message", "answer 99"]);
  assert.deepEqual(events.slice(1, 4).map((e) => e.params.progress), [1, 2, 3]);
  assert.match(events[0].params.data.message, /of researcher started$/);
  assert.match(events[4].params.data.message, /of researcher is completed$/);
  assert.equal(events[5].result.isError, false);
  await person.transport.terminateSession();
  await person.client.close();

  // Every call is in the audit log, and the log verifies.
  const audit = execFileSync(choir, ["audit", "list", "--limit", "200", "--store", store]).toString();
  assert.match(audit, /fs\.write/);
  assert.match(audit, /fs\.list/);
  console.log(`ok: the SDK's HTTP client opened sessions at ${url}/mcp, listed, called, was refused, and ended them`);
} catch (e) {
  console.error("FAILED:", e);
  process.exitCode = 1;
} finally {
  if (server) server.proc.kill("SIGTERM");
}
