// A Node.js client of the contract (grpc-js + proto-loader), as other teams
// would write one. Usage: node client.js HOST:PORT TENANT USER CHAT COPY (COPY: a chat id to import into)
// Prints one JSON object with what it saw; tests/test_node_client.py checks it.
"use strict";
const path = require("path");
const crypto = require("crypto");
const grpc = require("@grpc/grpc-js");
const loader = require("@grpc/proto-loader");

const [address, tenant, user, chat, copy] = process.argv.slice(2);
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

  // v1 additions: the chat list and a chat's life, and ImportChat (a client stream).
  const archived = await unary("ArchiveChat", { chat_id: chat, request_id: "node-archive" });
  out.archived_trigger = archived.snapshot.trigger;
  const listed = await unary("ListChats", { include_archived: true });
  out.listed = listed.chats.map((c) => [c.chat_id, c.archived]);
  out.unarchived_trigger = (await unary("UnarchiveChat", { chat_id: chat })).snapshot.trigger;
  const preview = await unary("Restore", {
    chat_id: chat, target_snapshot_id: saved.snapshot.id, scope: "RESTORE_SCOPE_FULL_CHAT", validate_only: true,
  });
  out.preview_checksum_is_target = preview.preview.resulting_checksum === saved.snapshot.checksum && !preview.success;
  await unary("DeleteChat", { chat_id: chat });
  try {
    await unary("SaveMessage", { chat_id: chat, role: "MESSAGE_ROLE_USER", content: "refused" });
    out.deleted_write_code = "OK";
  } catch (err) {
    out.deleted_write_code = err.code;
  }
  out.undeleted_trigger = (await unary("UndeleteChat", { chat_id: chat })).snapshot.trigger;
  const history = await collect(client.ExportChat({ chat_id: chat, format: "EXPORT_FORMAT_JSON", include_version_history: true }, md));
  const historyBody = Buffer.concat(history.slice(1, -1).map((r) => r.chunk));
  const imported = await new Promise((resolve, reject) => {
    const call = client.ImportChat(md, (err, reply) => (err ? reject(err) : resolve(reply)));
    call.write({ chat_id: copy, request_id: "node-import" });
    for (let i = 0; i < historyBody.length; i += 4096) call.write({ export_chunk: historyBody.subarray(i, i + 4096) });
    call.end();  // the tenant holds the file's bytes: no media need be sent
  });
  out.imported = [imported.snapshots_imported, imported.last_snapshot.trigger, imported.checksum];
  out.source_checksum = (await unary("GetChat", { chat_id: chat })).snapshot.checksum;

  // Named versions, references to files, legal holds and erasure.
  const labeled = await unary("LabelSnapshot", { chat_id: chat, snapshot_id: saved.snapshot.id, label: "first" });
  out.labeled_trigger = labeled.snapshot.trigger;
  out.at_label = (await unary("GetChatAtSnapshot", { chat_id: chat, label: "first" })).snapshot.id === saved.snapshot.id;
  out.unlabeled = (await unary("UnlabelSnapshot", { chat_id: chat, label: "first" })).snapshot.trigger_description;
  const withFile = await unary("SaveMessage", {
    chat_id: chat, role: "MESSAGE_ROLE_USER", content: "see the file",
    attachments: [{ file_id: uploaded.file.id, reference_type: "REFERENCE_TYPE_ATTACHMENT", display_order: 1 }],
  });
  out.attachment = [withFile.message.attachments[0].file_name, withFile.message.attachments[0].reference_type];
  const held = await unary("SetLegalHold", { chat_id: chat, legal_hold: true, reason: "node test" });
  out.held = held.legal_hold;
  const head = (await unary("GetChat", { chat_id: chat })).snapshot.checksum;
  try {
    await unary("EraseChat", { chat_id: chat, confirm_checksum: head });
    out.erase_held_code = "OK";
  } catch (err) {
    out.erase_held_code = err.code;
  }
  await unary("SetLegalHold", { chat_id: chat, legal_hold: false });
  const erasedCopy = await unary("EraseChat", { chat_id: copy, confirm_checksum: (await unary("GetChat", { chat_id: copy })).snapshot.checksum });
  out.erased_rows_positive = Number(erasedCopy.erased_rows) > 0;
  const progress = await collect(client.EraseTenant({ confirm_tenant_id: tenant }, md));
  out.erase_tenant_done = progress[progress.length - 1].done;

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
