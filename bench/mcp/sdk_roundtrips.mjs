// The peer's figure for bench/mcp_bench.cpp: the official TypeScript SDK's client calling `echo`
// on server-everything over stdio, one call at a time, then 4 in flight.
//   node bench/mcp/sdk_roundtrips.mjs [calls]      (needs npm ci --prefix tests/interop)
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "../../tests/interop/node_modules");
const require = createRequire(join(modules, "x.js"));
const { Client } = await import(require.resolve("@modelcontextprotocol/sdk/client/index.js"));
const { StdioClientTransport } = await import(require.resolve("@modelcontextprotocol/sdk/client/stdio.js"));

const calls = Number(process.argv[2] ?? 20000);
const server = join(modules, "@modelcontextprotocol/server-everything/dist/index.js");
const client = new Client({ name: "bench", version: "1.0.0" });
await client.connect(new StdioClientTransport({ command: process.execPath, args: [server, "stdio"], stderr: "ignore" }));
const args = { name: "echo", arguments: { message: "hello from choir" } };
for (let i = 0; i < 500; ++i) await client.callTool(args); // warm-up

let t = process.hrtime.bigint();
for (let i = 0; i < calls; ++i) await client.callTool(args);
let s = Number(process.hrtime.bigint() - t) / 1e9;
console.log(`sdk client, 1 in flight: ${Math.round(calls / s)} calls/s (${((s / calls) * 1e6).toFixed(1)} us each)`);

t = process.hrtime.bigint();
const worker = async (n) => { for (let i = 0; i < n; ++i) await client.callTool(args); };
await Promise.all([0, 1, 2, 3].map(() => worker(calls / 4)));
s = Number(process.hrtime.bigint() - t) / 1e9;
console.log(`sdk client, 4 in flight: ${Math.round(calls / s)} calls/s`);
await client.close();
