// Load test of `choir serve` on 127.0.0.1 (docs/benchmarks.md, "API load"):
//   CLIENTS WebSocket clients at once, each opening a conversation with the assistant and sending
//   MESSAGES messages one after another, every reply streamed back. Checks that no step event is
//   lost, repeated or out of order on any client, and reports the turn latency (POST of a message
//   to its `turn_ended` event: p50/p95/max) and throughput. Then, if `wrk` is here, the
//   throughput and p95 latency of a read endpoint (GET /api/v1/agents).
//
//   bench/load/run.sh [CLIENTS] [MESSAGES]      (raises the open-file limit, then runs this)
// Environment: CHOIR_BIN (the choir binary), CHOIR_EXAMPLES (the examples folder),
// WRK_SECONDS (default 10). Exits 1 if any check fails, 77 if something it needs is missing.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

const clients = Number(process.argv[2] ?? 1000);
const messages = Number(process.argv[3] ?? 3);
const bin = process.env.CHOIR_BIN;
const examples = process.env.CHOIR_EXAMPLES;
const wrkSeconds = Number(process.env.WRK_SECONDS ?? 10);
if (!bin || !existsSync(bin) || !examples) {
  console.log('ws_load: CHOIR_BIN and CHOIR_EXAMPLES are needed; skipping');
  process.exit(77);
}

const dir = mkdtempSync(join(tmpdir(), 'choir-load-'));
const store = join(dir, 'choir.db');
const applied = spawnSync(bin, ['policy', 'apply', join(examples, 'policy.yaml'), '--store', store]);
if (applied.status !== 0) {
  console.error(`policy apply failed: ${applied.stderr}`);
  process.exit(1);
}
const server = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--store', store, '--agents', examples,
  '--max-connections', String(clients + 1000)], { stdio: ['ignore', 'pipe', 'inherit'] });
const { port, token } = await new Promise((resolve, reject) => {
  let out = '';
  const timer = setTimeout(() => reject(new Error(`choir serve did not start: ${out}`)), 30_000);
  server.stdout.on('data', (d) => {
    out += d;
    const p = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
    const t = out.match(/admin token: (choir_[0-9a-f]+)/);
    if (p && t) {
      clearTimeout(timer);
      resolve({ port: Number(p[1]), token: t[1] });
    }
  });
});
const base = `http://127.0.0.1:${port}`;
const auth = { Authorization: `Bearer ${token}` };

async function api(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: body ? { ...auth, 'Content-Type': 'application/json' } : auth,
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

const failures = [];
const latencies = [];
let stepsSeen = 0;
let tokensSeen = 0;

// One client: a socket, a conversation, MESSAGES turns; checks its own event order.
async function client(i) {
  const { run_id: runId } = await api('POST', '/api/v1/conversations', { agent: 'assistant' });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/stream`);
  let lastStep = -1;
  let waiter = null;
  ws.on('message', (raw) => {
    const f = JSON.parse(raw);
    if (f.type === 'event' && f.kind === 'step') {
      const seq = f.data.sequence_id;
      if (seq !== lastStep + 1) failures.push(`client ${i}: step ${seq} after ${lastStep}`);
      lastStep = seq;
      stepsSeen++;
    } else if (f.type === 'event' && f.kind === 'token') {
      tokensSeen++;
    } else if (f.type === 'resync' || f.type === 'error') {
      failures.push(`client ${i}: ${JSON.stringify(f)}`);
    }
    if (waiter && waiter.test(f)) {
      const w = waiter;
      waiter = null;
      w.resolve(f);
    }
  });
  const next = (test) => new Promise((resolve, reject) => {
    waiter = { test, resolve };
    setTimeout(() => reject(new Error(`client ${i}: timed out`)), 120_000).unref();
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  let ready = next((f) => f.type === 'ready');
  ws.send(JSON.stringify({ type: 'auth', token }));
  await ready;
  ready = next((f) => f.type === 'subscribed');
  ws.send(JSON.stringify({ type: 'subscribe', run_id: runId, cursor: -1 }));
  await ready;
  for (let m = 0; m < messages; m++) {
    const ended = next((f) => f.type === 'event' && f.kind === 'turn_ended');
    const t0 = performance.now();
    await api('POST', `/api/v1/conversations/${runId}/messages`, { text: `client ${i} message ${m}` });
    const f = await ended;
    latencies.push(performance.now() - t0);
    if (f.data.ended !== 'waiting') failures.push(`client ${i}: turn ended ${f.data.ended}`);
  }
  if (lastStep !== 2 * messages - 1) failures.push(`client ${i}: saw steps up to ${lastStep}, expected ${2 * messages - 1}`);
  ws.close();
}

const t0 = performance.now();
const results = await Promise.allSettled(Array.from({ length: clients }, (_, i) => client(i)));
const seconds = (performance.now() - t0) / 1000;
for (const r of results) if (r.status === 'rejected') failures.push(String(r.reason));

latencies.sort((a, b) => a - b);
const pct = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p / 100 * latencies.length))] : NaN;
console.log(`ws_load: ${clients} clients × ${messages} messages in ${seconds.toFixed(1)} s: ` +
  `${(latencies.length / seconds).toFixed(0)} turns/s, ${(stepsSeen / seconds).toFixed(0)} step events/s, ` +
  `${tokensSeen} token events`);
console.log(`ws_load: turn latency p50 ${pct(50).toFixed(1)} ms, p95 ${pct(95).toFixed(1)} ms, ` +
  `max ${latencies.at(-1)?.toFixed(1)} ms`);

// A read endpoint under wrk.
if (spawnSync('wrk', ['--version']).error === undefined && wrkSeconds > 0) {
  const script = join(dir, 'p95.lua');
  writeFileSync(script, `wrk.headers["Authorization"] = "Bearer ${token}"
done = function(summary, latency, requests)
  io.write(string.format("wrk_p95_ms %.2f\\n", latency:percentile(95) / 1000))
end
`);
  const wrk = spawnSync('wrk', ['-t2', '-c64', `-d${wrkSeconds}s`, '-s', script, `${base}/api/v1/agents`], { encoding: 'utf8' });
  const rps = wrk.stdout.match(/Requests\/sec:\s+([\d.]+)/);
  const p95 = wrk.stdout.match(/wrk_p95_ms ([\d.]+)/);
  const non2xx = wrk.stdout.match(/Non-2xx or 3xx responses: (\d+)/);
  console.log(`wrk GET /api/v1/agents (64 connections, ${wrkSeconds} s): ${rps ? rps[1] : '?'} requests/s, ` +
    `p95 ${p95 ? p95[1] : '?'} ms${non2xx ? `, ${non2xx[1]} errors` : ''}`);
  if (non2xx) failures.push(`wrk: ${non2xx[1]} non-2xx responses`);
}

server.kill('SIGTERM');
const code = await new Promise((resolve) => server.once('exit', (c) => resolve(c)));
if (code !== 0) failures.push(`choir serve exited ${code} after SIGTERM`);
rmSync(dir, { recursive: true, force: true });
if (failures.length) {
  console.error(`ws_load: ${failures.length} failures; the first ones:\n  ${failures.slice(0, 10).join('\n  ')}`);
  process.exit(1);
}
console.log('ws_load: no event lost, repeated or reordered');
