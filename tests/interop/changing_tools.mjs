// An MCP server built with the official SDK whose tool list changes while a client is connected:
// `grow` adds the tool `double`, `shrink` removes `grow`. Each change sends
// notifications/tools/list_changed (the SDK's McpServer does it). Used by tests/mcp_interop_test.cpp.
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const server = new McpServer({ name: "changing", version: "1.0.0" });
const text = (t) => ({ content: [{ type: "text", text: t }] });

const grow = server.registerTool("grow", { description: "Adds the tool double" }, async () => {
  server.registerTool("double", { description: "Twice n", inputSchema: { n: z.number() } }, async ({ n }) =>
    text(String(n * 2)));
  return text("grown");
});
server.registerTool("shrink", { description: "Removes the tool grow" }, async () => {
  grow.remove();
  return text("shrunk");
});

await server.connect(new StdioServerTransport());
