// A second, foreign MCP client for tests/mcp/test_mcp_js.py: the official TypeScript SDK
// starts `rag mcp` (the command in argv) over stdio, makes the calls below and prints what
// came back as one JSON object on stdout.
// usage: node client.mjs QUESTION OFF_TOPIC_QUESTION COMMAND [ARGS...]
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [question, offTopic, command, ...args] = process.argv.slice(2);
const transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
const client = new Client({ name: "rag-tests-typescript", version: "1.0.0" });
await client.connect(transport);

const out = { server: client.getServerVersion(), instructions: client.getInstructions() };
out.tools = (await client.listTools()).tools;
// callTool validates structuredContent against the tool's outputSchema (ajv)
out.ask = await client.callTool({ name: "ask", arguments: { question } });
out.abstained = await client.callTool({ name: "ask", arguments: { question: offTopic } });
out.emptyQuestion = await client.callTool({ name: "ask", arguments: { question: "   " } });
out.traversal = await client.callTool({
  name: "read_lines",
  arguments: { path: "../../../etc/passwd", start_line: 1 },
});
const cited = out.ask.structuredContent?.citations?.[0];
if (cited) {
  out.lines = await client.callTool({
    name: "read_lines",
    arguments: { path: cited.path, start_line: cited.start_line, end_line: cited.end_line },
  });
}
out.resources = (await client.listResources()).resources;
out.templates = (await client.listResourceTemplates()).resourceTemplates;
if (out.resources.length) {
  out.resource = await client.readResource({ uri: out.resources[0].uri });
}
out.prompts = (await client.listPrompts()).prompts;
out.prompt = await client.getPrompt({ name: "answer_from_documents", arguments: { question } });
await client.close();
process.stdout.write(JSON.stringify(out));
