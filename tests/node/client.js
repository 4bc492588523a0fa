// A Node.js client of the contract (grpc-js + proto-loader), as other teams
// would write one. Usage: node client.js HOST:PORT TENANT USER CHAT
// Prints one JSON object with what it saw; tests/test_node_client.py checks it.
"use strict";
const path = require("path");
const crypto = require("crypto");
const grpc = require("@grpc/grpc-js");
const loader = require("@grpc/proto-loader");

const [address, tenant, user, chat] = process.argv.slice(2);
const definition = loader.loadSync("timemachine/v1/service.proto", {
  includeDirs: [path.join(__dirname, "..", "..", "proto")],
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const api = grpc.loadPackageDefinition(definition).timemachine.v1;
const client = new api.TimeMachineService(address, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
md.set("x-tenant-id", tenant);
md.set("x-user-id", user);

const unary = (method, request) => new Promise((resolve, reject) =>
  client[method](request, md, (err, reply) => (err ? reject(err) : resolve(reply))));

function collect(call) {
  return new Promise((resolve, reject) => {
    const replies = [];
    call.on("data", (r) => replies.push(r));
    call.on("error", reject);
    call.on("end", () => resolve(replies));
  });
}

async function main() {
  const out = {};
  const saved = await unary("SaveMessage", { chat_id: chat, role: "MESSAGE_ROLE_USER", content: "hello from node", tokens: 3 });
  out.saved_version = saved.snapshot.version;
  out.saved_trigger = saved.snapshot.trigger;
  const chatNow = await unary("GetChat", { chat_id: chat });
  out.contents = chatNow.messages.map((m) => m.content);

  const data = crypto.randomBytes(3 * 1024 * 1024 + 17);
  out.upload_sha256 = crypto.createHash("sha256").update(data).digest("hex");
  const uploaded = await new Promise((resolve, reject) => {
    const call = client.UploadFile(md, (err, reply) => (err ? reject(err) : resolve(reply)));
    call.write({ chat_id: chat, name: "node.bin", mime_type: "application/octet-stream", source: "FILE_SOURCE_USER_UPLOAD" });
    for (let i = 0; i < data.length; i += 256 * 1024) call.write({ chunk: data.subarray(i, i + 256 * 1024) });
    call.end();
  });
  out.uploaded_sha256 = uploaded.file.checksum_sha256;

  const down = await collect(client.DownloadFile({ file_id: uploaded.file.id }, md));
  out.download_first_is_metadata = down[0].file !== null && down[0].file.id === uploaded.file.id;
  const body = Buffer.concat(down.slice(1).map((r) => r.chunk));
  out.download_sha256 = crypto.createHash("sha256").update(body).digest("hex");
  out.download_max_chunk = Math.max(...down.slice(1).map((r) => r.chunk.length));

  const exp = await collect(client.ExportChat({ chat_id: chat, format: "EXPORT_FORMAT_JSON" }, md));
  const exportBody = Buffer.concat(exp.slice(1, -1).map((r) => r.chunk));
  out.export_header = [exp[0].file_name.endsWith(".json"), exp[0].mime_type];
  out.export_trailer_ok = exp[exp.length - 1].sha256 === crypto.createHash("sha256").update(exportBody).digest("hex")
    && Number(exp[exp.length - 1].size_bytes) === exportBody.length;
  out.export_messages = JSON.parse(exportBody.toString("utf8")).messages.map((m) => m.content);

  try {
    await unary("GetChat", { chat_id: "not-a-uuid" });
    out.bad_input_code = "OK";
  } catch (err) {
    out.bad_input_code = err.code;
  }
  process.stdout.write(JSON.stringify(out));
  client.close();
}

main().catch((err) => { process.stderr.write(String(err.stack || err)); process.exit(1); });
