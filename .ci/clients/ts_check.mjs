// The TypeScript SDK's Client (@modelcontextprotocol/sdk, pinned in package.json beside this file) against
// genresult-mcp in sandbox mode, over stdio and streamable HTTP; the same promises as common.py checks.
//   npm ci --prefix .ci/clients && node .ci/clients/ts_check.mjs     (genresult-mcp on PATH, or GENRESULT_MCP)
// Most clients built on this SDK pass the tools on as listed. callTool returns an isError result (it does not
// throw), validates structured content against the tool's output schema (throwing on a mismatch), and gives
// each request 60 s unless the caller passes {timeout} or {resetTimeoutOnProgress: true}.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, readFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const ERROR_META = "genresult-mcp/error";
const PROVIDER = "skillsvideo";
const TOOLS_LIST_LIMIT = 12_000;
const SHORT_WAIT_S = 2;
const SHORT_WAIT_FLOOR_S = 1.8;
const sdkVersion = JSON.parse(
  readFileSync(new URL("./node_modules/@modelcontextprotocol/sdk/package.json", import.meta.url)),
).version;

const scratch = mkdtempSync(join(tmpdir(), "genresult-clients-ts-"));
const children = [];
process.on("exit", () => {
  for (const child of children) child.kill();
  rmSync(scratch, { recursive: true, force: true });
});
// Bounded whatever happens inside: a hung client or server fails the run instead of holding CI.
setTimeout(() => {
  console.log("== typescript-sdk: gave up after 240 s");
  process.exit(1);
}, 240_000).unref();

const exe = process.env.GENRESULT_MCP || "genresult-mcp";
const serverArgs = ["serve", "--sandbox"];
const serverEnv = (extra = {}) => ({
  ...process.env,
  GENRESULT_LOG_LEVEL: "ERROR",
  GENRESULT_DB: join(scratch, "jobs.sqlite3"),
  GENRESULT_DOWNLOAD_DIR: join(scratch, "downloads"),
  ...extra,
});
const expectedTools = (process.env.GENRESULT_EXPECTED_TOOLS || "get_generation_result,wait_for_generation")
  .split(",")
  .filter(Boolean);

const failed = [];
let passed = 0;
const section = (title) => console.log(`-- ${title}`);
const fact = (what, value) => console.log(`   ${what}: ${typeof value === "string" ? value : JSON.stringify(value)}`);
function check(what, ok, detail = "") {
  if (ok) {
    passed += 1;
    console.log(`   ok   ${what}`);
  } else {
    failed.push(what);
    console.log(`   FAIL ${what}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return ok;
}
const size = (value) => Buffer.byteLength(JSON.stringify(value));
const seconds = (start) => (performance.now() - start) / 1000;
let serial = 0;
const finishedId = (tag) => `job-done-${tag}`;
const runningId = (tag) => `job-run-${tag}-${process.pid}-${(serial += 1)}`;
const textOf = (result) => (result.content?.[0]?.type === "text" ? result.content[0].text : "");

async function connect(transport) {
  const client = new Client({ name: "genresult-ts-check", version: "0" });
  await client.connect(transport);
  return client;
}

const stdio = (extra) =>
  new StdioClientTransport({ command: exe, args: serverArgs, env: serverEnv(extra), stderr: "inherit" });

async function listing(client) {
  const listed = await client.listTools();
  const names = listed.tools.map((tool) => tool.name);
  check(`the tool list loads with ${expectedTools.join(", ")}`, expectedTools.every((n) => names.includes(n)), names);
  fact("tools/list as the client received it", `${size(listed)} B compact JSON`);
  check(`tools/list is under ${TOOLS_LIST_LIMIT} B`, size(listed) < TOOLS_LIST_LIMIT, size(listed));
  const indented = listed.tools.filter((t) => t.description.includes("\n ") || t.description !== t.description.trim());
  check("descriptions reach the client without the source's indentation", indented.length === 0, indented);
  for (const tool of listed.tools) {
    fact(
      `${tool.name} as the model sees it`,
      `description ${Buffer.byteLength(tool.description)} B, input schema ${size(tool.inputSchema)} B, ` +
        `output schema ${tool.outputSchema ? size(tool.outputSchema) : 0} B`,
    );
  }
}

// callTool validates structured content against the output schema cached by listTools, and throws on a mismatch.
async function validated(client, name, args) {
  try {
    const result = await client.callTool({ name, arguments: args }, undefined, { timeout: 30_000 });
    check(`${name}: structured content validates against its output schema`, !result.isError, textOf(result));
    return result;
  } catch (error) {
    check(`${name}: structured content validates against its output schema`, false, error.message);
    return null;
  }
}

async function finishedJob(client, tag) {
  const result = await validated(client, "get_generation_result", { provider: PROVIDER, task_id: finishedId(tag) });
  const got = result?.structuredContent;
  check(
    "a finished job's result arrives: succeeded, with outputs",
    got?.status === "succeeded" && got.outputs.length > 0,
    got,
  );
  check("the text content is the structured content", result && JSON.stringify(JSON.parse(textOf(result))) === JSON.stringify(got));
}

function errorChecks(result, code) {
  const text = textOf(result);
  fact("error text as surfaced", text.slice(0, 90) + (text.length > 90 ? "..." : ""));
  check("the tool error is an isError result", result.isError === true, result);
  check(`the error text starts with \`${code}: \``, text.startsWith(`${code}: `), text.slice(0, 120));
  const meta = result._meta?.[ERROR_META];
  check(`_meta["${ERROR_META}"] carries code ${code}`, meta?.code === code, result._meta);
  check("its message is the text after the code", meta && `${code}: ${meta.message}` === text, meta);
}

async function unknownProvider(client) {
  const result = await client.callTool({ name: "get_generation_result", arguments: { provider: "nosuch", task_id: "x" } });
  errorChecks(result, "unknown_provider");
}

async function shortWait(client, tag) {
  const reports = [];
  const start = performance.now();
  const result = await client.callTool(
    { name: "wait_for_generation", arguments: { provider: PROVIDER, task_id: runningId(tag), timeout_s: SHORT_WAIT_S } },
    undefined,
    { timeout: 30_000, onprogress: (p) => reports.push([p.progress, p.total]) },
  );
  const took = seconds(start);
  fact(`wait_for_generation(timeout_s=${SHORT_WAIT_S}) on a running job answered after`, `${took.toFixed(2)} s`);
  check(`a ${SHORT_WAIT_S} s wait uses its time`, took >= SHORT_WAIT_FLOOR_S, took);
  const got = result.structuredContent;
  check("and answers timed_out, not done", got?.timed_out === true && got.done === false, got);
  fact("progress notifications", reports);
  const last = reports.at(-1);
  check("the wait sent progress, its last one full", last !== undefined && last[0] === last[1], reports);
}

async function nulls(client, tag) {
  const args = { provider: PROVIDER, task_id: finishedId(tag), timeout_s: null, poll_interval_s: null };
  const result = await client.callTool({ name: "wait_for_generation", arguments: args });
  check("timeout_s and poll_interval_s null mean their defaults", !result.isError, textOf(result));
  errorChecks(await client.callTool({ name: "wait_for_generation", arguments: { ...args, timeout_s: "soon" } }), "invalid_argument");
}

async function otherTools(client, tag) {
  const job = { provider: PROVIDER, task_id: finishedId(tag) };
  await validated(client, "wait_for_generations", { jobs: [job], timeout_s: 5 });
  const download = await validated(client, "download_generation_outputs", job);
  const links = (download?.content ?? []).filter((block) => block.type === "resource_link");
  check("the download comes with a resource link per file", links.length > 0, download?.content);
  await validated(client, "list_generations", { limit: 5 });
}

// A wait longer than the client's own request timeout: the SDK rejects with -32001 (RequestTimeout) at its timeout;
// resetTimeoutOnProgress restarts that timeout at every progress notification, which the wait sends after each check.
async function clientTimeout(client, tag) {
  const args = (n) => ({ provider: PROVIDER, task_id: runningId(`${tag}-${n}`), timeout_s: 5, poll_interval_s: 1 });
  let start = performance.now();
  let outcome;
  try {
    await client.callTool({ name: "wait_for_generation", arguments: args(1) }, undefined, { timeout: 3500 });
    outcome = "answered";
  } catch (error) {
    outcome = `error ${error.code}: ${error.message}`;
  }
  fact("wait_for_generation(timeout_s=5) with {timeout: 3500}", `${outcome} after ${seconds(start).toFixed(2)} s`);
  check("the client's own timeout ends the call (so timeout_s must stay under it)", outcome !== "answered", outcome);

  start = performance.now();
  try {
    const result = await client.callTool({ name: "wait_for_generation", arguments: args(2) }, undefined, {
      timeout: 3500,
      resetTimeoutOnProgress: true,
      onprogress: () => {},
    });
    outcome = `answered timed_out=${result.structuredContent?.timed_out}`;
  } catch (error) {
    outcome = `error ${error.code}: ${error.message}`;
  }
  const took = seconds(start);
  fact("the same with {timeout: 3500, resetTimeoutOnProgress: true, onprogress}", `${outcome} after ${took.toFixed(2)} s`);
  check("resetTimeoutOnProgress lets the whole wait answer", outcome.startsWith("answered") && took >= 4.5, outcome);

  // Without onprogress the SDK asks for no progress (no progressToken), so nothing comes to restart the timeout.
  start = performance.now();
  try {
    await client.callTool({ name: "wait_for_generation", arguments: args(3) }, undefined, {
      timeout: 3500,
      resetTimeoutOnProgress: true,
    });
    outcome = "answered";
  } catch (error) {
    outcome = `error ${error.code}: ${error.message}`;
  }
  fact("{timeout: 3500, resetTimeoutOnProgress: true} without onprogress", `${outcome} after ${seconds(start).toFixed(2)} s`);
  check("resetTimeoutOnProgress needs an onprogress callback", outcome !== "answered", outcome);
  await finishedJob(client, `${tag}-after`);
}

async function defaultWaitFix() {
  const client = await connect(stdio({ GENRESULT_DEFAULT_WAIT_S: "2" }));
  try {
    const start = performance.now();
    const result = await client.callTool(
      { name: "wait_for_generation", arguments: { provider: PROVIDER, task_id: runningId("fix") } },
      undefined,
      { timeout: 4000 },
    );
    const took = seconds(start);
    fact("GENRESULT_DEFAULT_WAIT_S=2, {timeout: 4000}, no timeout_s", `answered after ${took.toFixed(2)} s`);
    const got = result.structuredContent;
    check(
      "the server's default wait answers timed_out before the client gives up",
      !result.isError && got?.timed_out === true && took >= SHORT_WAIT_FLOOR_S,
      got,
    );
  } finally {
    await client.close();
  }
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function httpServer() {
  const port = await freePort();
  const child = spawn(exe, [...serverArgs, "--transport", "http", "--host", "127.0.0.1", "--port", String(port)], {
    env: serverEnv(),
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.push(child);
  const deadline = performance.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the HTTP server exited with ${child.exitCode}`);
    const listening = await new Promise((resolve) => {
      const socket = createConnection({ host: "127.0.0.1", port }, () => resolve(socket.end() && true));
      socket.once("error", () => resolve(false));
    });
    if (listening) return `http://127.0.0.1:${port}/mcp`;
    if (performance.now() > deadline) throw new Error(`the HTTP server did not listen on ${port} within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

console.log(`== typescript-sdk ${sdkVersion}`);
section("stdio");
let client = await connect(stdio());
fact("server", client.getServerVersion());
await listing(client);
await finishedJob(client, "ts");
await unknownProvider(client);
await shortWait(client, "ts");
await nulls(client, "ts-null");
await otherTools(client, "ts-other");
await clientTimeout(client, "ts-limit");
await client.close();

section("stdio: the setting that fixes a short client limit");
await defaultWaitFix();

section("streamable HTTP");
const url = await httpServer();
client = await connect(new StreamableHTTPClientTransport(new URL(url)));
fact("protocol version", client.transport.protocolVersion);
await listing(client);
await finishedJob(client, "ts-http");
await unknownProvider(client);
await shortWait(client, "ts-http");
await nulls(client, "ts-http-null");
await clientTimeout(client, "ts-http-limit");
await client.close();

if (failed.length) {
  console.log(`== typescript-sdk: ${failed.length} check(s) failed: ${failed.join("; ")}`);
  process.exit(1);
}
console.log(`== typescript-sdk: all ${passed} checks hold`);
process.exit(0);
