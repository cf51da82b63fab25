// `choir serve` stopped by SIGTERM while a step is in flight (docs/api.md, "Serving"):
//  1. within the grace period the step commits whole, the server exits 0, and the run is left
//     waiting and unleased;
//  2. past it (`--shutdown-grace 0.5`) the server exits 0 without the step: nothing of it is
//     written, and a server started again takes the run over and runs the step again.
// Either way the conversation then holds each message once and each reply once.
//
//   CHOIR_BIN=build/release/apps/choir/choir CHOIR_EXAMPLES=examples node tests/e2e/shutdown.mjs
//
// No npm packages: Node's fetch and child_process only.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const CHOIR_BIN = process.env.CHOIR_BIN;
const EXAMPLES = process.env.CHOIR_EXAMPLES;
if (!CHOIR_BIN || !EXAMPLES) {
  console.error('set CHOIR_BIN and CHOIR_EXAMPLES');
  process.exit(2);
}

const scratch = mkdtempSync(join(tmpdir(), 'choir-shutdown-'));
const store = join(scratch, 'choir.db');
const agents = join(scratch, 'agents');
mkdirSync(agents);
// One reply of 24 words, 120 ms apart: its step is in flight for about 3 s.
const words = Array.from({ length: 24 }, (_, i) => `word${i}`).join(' ');
writeFileSync(join(agents, 'slow-model.yaml'), `kind: ScriptedModel\ntoken_ms: 120\nrules:\n  - reply: "${words}"\n`);
writeFileSync(join(agents, 'models.yaml'), 'kind: Models\nmodels:\n  local/slow: {provider: scripted, script: slow-model.yaml}\n');
writeFileSync(
  join(agents, 'slow.yaml'),
  `apiVersion: agentos/v0.2
kind: AgentContract
name: slow
class: {latency: SRT}
capabilities: []
modelPolicy: {allow: [local/slow]}
---
apiVersion: agentos/v0.2
kind: Graph
name: slow
entrypoint: listen
state: {messages: []}
actions:
  listen: {type: human, prompt: Say something, inputs: [message], writes: [message]}
  think: {type: llm, model: local/slow, prompt: "{{message}}", history: messages, into: reply, stream: true}
transitions:
  - {from: listen, to: think}
  - {from: think, to: listen}
`,
);

class Failure extends Error {}
const check = (ok, what) => {
  if (!ok) throw new Failure(what);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(probe, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Failure(`timed out after ${ms} ms: ${what}`);
    await sleep(25);
  }
}

const out = [];
let proc = null;
const standard = ['--listen', '127.0.0.1:0', '--store', store, '--agents', agents, '--web', scratch];
function startServer(args = standard) {
  proc = spawn(CHOIR_BIN, ['serve', ...args], {
    cwd: scratch,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  const started = new Promise((resolve, reject) => {
    let url = null;
    const timer = setTimeout(() => reject(new Failure('choir serve did not print its address within 15 s')), 15_000);
    createInterface({ input: proc.stdout }).on('line', (line) => {
      out.push(line);
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
      if (m) url = m[1];
      const t = /admin token: (choir_\S+)/.exec(line);
      if (t) token = t[1];
      if (url && token) {
        clearTimeout(timer);
        resolve(url);
      }
    });
    createInterface({ input: proc.stderr }).on('line', (line) => out.push(`[stderr] ${line}`));
    proc.once('exit', (code) => reject(new Failure(`choir serve exited early (code ${code})`)));
  });
  return { started, exited };
}

let token = null;
let base = null;
const api = async (method, path, body) => {
  const r = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
};
const inspect = (runId) =>
  JSON.parse(execFileSync(CHOIR_BIN, ['runs', '--store', store, '--json', 'show', runId], { cwd: scratch, encoding: 'utf8' }));

try {
  execFileSync(CHOIR_BIN, ['policy', 'apply', join(EXAMPLES, 'policy.yaml'), '--store', store], { cwd: scratch, stdio: 'pipe' });
  let server = startServer();
  base = await server.started;

  const opened = await api('POST', '/conversations', { agent: 'slow' });
  check(opened.status === 201, `opening a conversation answered ${opened.status}: ${JSON.stringify(opened.body)}`);
  const runId = opened.body.run_id;
  await until(async () => (await api('GET', `/runs/${runId}`)).body?.status === 'waiting', 'the conversation to listen');
  const said = await api('POST', `/conversations/${runId}/messages`, { text: 'hello' });
  check(said.status === 202, `the message answered ${said.status}`);
  // The listening step commits at once; then the reply streams for about 3 s.
  await until(async () => (await api('GET', `/runs/${runId}`)).body?.last_sequence === 0, 'the message to commit as step 0');
  await sleep(400);
  const before = (await api('GET', `/runs/${runId}`)).body;
  check(before.status === 'running' && before.last_sequence === 0, `the reply is not in flight: ${JSON.stringify(before)}`);

  const t0 = Date.now();
  proc.kill('SIGTERM');
  const result = await Promise.race([server.exited, sleep(15_000).then(() => null)]);
  if (!result) {
    proc.kill('SIGKILL');
    throw new Failure('choir serve did not exit within 15 s of SIGTERM');
  }
  check(result.code === 0, `choir serve exited with code ${result.code} (signal ${result.signal}) after SIGTERM`);
  const stopMs = Date.now() - t0;

  // Nothing half-written: each step stored is whole; the run is not left leased or running.
  const shown = inspect(runId);
  const run = shown.run ?? shown;
  const steps = shown.steps ?? [];
  check(steps.length === 2, `${steps.length} steps after the stop (the reply did not commit within the grace period)`);
  check(steps[0].action === 'listen' && steps[0].inputs?.message === 'hello', `step 0 is ${JSON.stringify(steps[0])}`);
  check(steps[1].action === 'think' && steps[1].result?.answer === words, `step 1 is not the whole reply: ${JSON.stringify(steps[1])}`);
  check(run.status === 'waiting', `the run is left ${run.status}`);
  check(!run.owner, `the run is left leased to ${run.owner}`);
  console.log(`ok   SIGTERM with the reply in flight: exit 0 after ${stopMs} ms, the reply committed whole, the run waits unleased`);

  // Past the grace period: the process leaves the step behind, uncommitted. (Its settings from a
  // config file this time: paths relative to the file, a flag given on the command line winning.)
  writeFileSync(
    join(scratch, 'server.yaml'),
    'kind: ServerConfig\nlisten: 127.0.0.1:8\nstore: choir.db\nagents: [agents]\nweb: .\nshutdown_grace_s: 0.5\n',
  );
  server = startServer(['--config', join(scratch, 'server.yaml'), '--listen', '127.0.0.1:0']);
  base = await server.started;
  const said2 = await api('POST', `/conversations/${runId}/messages`, { text: 'again' });
  check(said2.status === 202, `the second message answered ${said2.status}`);
  await until(async () => (await api('GET', `/runs/${runId}`)).body?.last_sequence === 2, 'the second message to commit as step 2');
  await sleep(300);
  const t1 = Date.now();
  proc.kill('SIGTERM');
  const cut = await Promise.race([server.exited, sleep(10_000).then(() => null)]);
  if (!cut) throw new Failure('choir serve did not exit within 10 s of SIGTERM with a 0.5 s grace period');
  check(cut.code === 0, `choir serve exited with code ${cut.code} past its grace period`);
  const cutMs = Date.now() - t1;
  check(cutMs < 2_500, `it took ${cutMs} ms to leave with a 0.5 s grace period`);
  check(out.some((l) => l.includes('leaving them uncommitted')), 'it did not say it left a step uncommitted');
  const left = inspect(runId);
  check((left.steps ?? []).length === 3, `${(left.steps ?? []).length} steps after leaving mid-step (expected 3: nothing of the reply)`);
  console.log(`ok   past a 0.5 s grace period: exit 0 after ${cutMs} ms, nothing of the reply written (run ${(left.run ?? left).status})`);

  // Started again: the run is taken over from the process that left, and the step runs again.
  server = startServer();
  base = await server.started;
  const resumed = await api('POST', `/runs/${runId}/resume`, {});
  check(resumed.status === 202, `resume answered ${resumed.status}: ${JSON.stringify(resumed.body)}`);
  await until(async () => (await api('GET', `/runs/${runId}`)).body?.last_sequence === 3, 'the reply to run again and commit', 15_000);
  await until(async () => (await api('GET', `/runs/${runId}`)).body?.status === 'waiting', 'the conversation to listen again', 15_000);
  const chat = (await api('GET', `/conversations/${runId}`)).body;
  const texts = chat.messages.map((m) => `${m.role}:${m.text}`);
  const expected = ['user:hello', `agent:${words}`, 'user:again', `agent:${words}`];
  check(JSON.stringify(texts) === JSON.stringify(expected), `the chat after the restart is ${JSON.stringify(texts)}`);
  proc.kill('SIGTERM');
  const last = await server.exited;
  check(last.code === 0, `the last server exited with ${last.code}`);
  console.log('ok   started again: the run was taken over and its reply ran again; each message and reply is in the chat once');
  rmSync(scratch, { recursive: true, force: true });
} catch (e) {
  console.error(`FAILED: ${e instanceof Failure ? e.message : e?.stack ?? e}`);
  console.error(`--- choir serve output:\n${out.slice(-40).join('\n')}\n--- scratch kept: ${scratch}`);
  if (proc && proc.exitCode === null) proc.kill('SIGKILL');
  process.exit(1);
}
