// node --test: the JS codec against every golden frame of docs/PROTOCOL.md and round trips of
// every message both ways.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  ClientMessage, ServerMessage, TYPES, ERROR_CODES, MIN_VERSION, MAX_VERSION, encodeFrame, decodeFrame,
  encodePayload, decodePayload, fromHex, toHex, CodecError, since, requestVersion,
} from "../lib/chat-proto.js";

const read = (path) => readFileSync(fileURLToPath(new URL(path, import.meta.url)), "utf8");
const spec = read("../../../docs/PROTOCOL.md");
const golden = spec.split("## 11. Golden frames")[1].split("## 12.")[0];
const hexBlocks = [...golden.matchAll(/```\n\s*([0-9a-f ]+)\n\s*```/g)].map((m) => m[1].trim());
// The frames frozen by chat-proto/tests/golden.rs: the hex string of each `check(…)`.
const rustGolden = [...read("../../../chat-proto/tests/golden.rs").matchAll(/"([0-9a-f]{8}(?: [0-9a-f]+)*)"/g)].map((m) => m[1]);

const inRoom = (name) => ({ type: "Room", name });
// The frames of chat-proto/tests/golden.rs (= PROTOCOL.md §11), in order, bytes copied.
const GOLDEN = [
  [ClientMessage, { type: "Hello", min_version: 1, max_version: 1, client: "cli" }, "00000007 00 01 01 03636c69"],
  [ClientMessage, { type: "Request", id: 1, request: { type: "Login", username: "alice", password: "secret-pw", device: "laptop" } }, "0000001a 01 01 01 05616c696365 097365637265742d7077 066c6170746f70"],
  [ClientMessage, { type: "Request", id: 2, request: { type: "Send", target: inRoom("general"), client_msg_id: 300n, text: "hi" } }, "00000012 01 02 0c 00 0767656e6572616c fb2c01 026869"],
  [ClientMessage, { type: "Ack", up_to: 1000n }, "00000004 02 fbe803"],
  [ServerMessage, { type: "Message", message: { id: 42n, from: "bob", target: { type: "User", name: "alice" }, sent_at: 1763700000000n, client_msg_id: 7n, text: "hey" } }, "0000001b 03 2a 03626f62 01 05616c696365 fd0045b6a49a010000 07 03686579"],
  [ServerMessage, { type: "Ok", id: 2, reply: { type: "Sent", id: 42n, sent_at: 1763700000000n } }, "0000000d 01 02 02 2a fd0045b6a49a010000"],
  [ServerMessage, { type: "Err", id: 2, error: { code: { type: "RateLimited", retry_after_ms: 1500 }, message: "slow down" } }, "00000010 02 02 0f fbdc05 09736c6f7720646f776e"],
  [ServerMessage, { type: "CaughtUp" }, "00000001 04"],
  // Version 2.
  [ClientMessage, { type: "Hello", min_version: 1, max_version: 2, client: "cli" }, "00000007 00 01 02 03636c69"],
  [ClientMessage, { type: "Request", id: 3, request: { type: "Kick", room: "rust", user: "carol", reason: "spam" } }, "00000013 01 03 0f 0472757374 056361726f6c 047370616d"],
  [ServerMessage, { type: "Moderated", room: "rust", by: "bob", user: "carol", action: { type: "Kicked" }, reason: "spam" }, "00000016 0c 0472757374 03626f62 056361726f6c 00 047370616d"],
  [ClientMessage, { type: "Request", id: 4, request: { type: "Edit", message: 42n, text: "hello" } }, "0000000a 01 04 13 2a 0568656c6c6f"],
  [ServerMessage, { type: "Edited", id: 43n, message: 42n, from: "bob", target: inRoom("rust"), text: "hello" }, "00000013 0d 2b 2a 03626f62 00 0472757374 0568656c6c6f"],
  [ServerMessage, { type: "Deleted", id: 44n, message: 42n, target: inRoom("rust"), by: "alice", redacted: true, reason: "spam" }, "00000015 0e 2c 2a 00 0472757374 05616c696365 01 047370616d"],
  [ServerMessage, { type: "Ok", id: 5, reply: { type: "Page", messages: [], more: false } }, "00000005 01 05 08 00 00"],
  [ClientMessage, { type: "Request", id: 6, request: { type: "SetTopic", room: "rust", topic: "hi" } }, "0000000b 01 06 16 0472757374 026869"],
  [ServerMessage, { type: "Topic", room: "rust", topic: "hi", by: "bob" }, "0000000d 0f 0472757374 026869 03626f62"],
  [ClientMessage, { type: "Request", id: 7, request: { type: "SetDisabled", user: "carol", disabled: true } }, "0000000a 01 07 18 056361726f6c 01"],
  [ClientMessage, { type: "Request", id: 8, request: { type: "AuditLog", room: "rust", before: null, limit: 20 } }, "0000000b 01 08 19 01 0472757374 00 14"],
  [ServerMessage, { type: "Ok", id: 9, reply: { type: "AuditLog", entries: [{ position: 3n, room: "", by: "root", user: "carol", action: { type: "Disabled" }, reason: "", at: 1000n }], more: false } }, "00000017 01 09 0a 01 03 00 04726f6f74 056361726f6c 08 00 fbe803 00"],
  [ClientMessage, { type: "Request", id: 7, request: { type: "MarkRead", target: inRoom("rust"), up_to: 42n } }, "0000000a 01 07 1a 00 0472757374 2a"],
  [ServerMessage, { type: "ReadMarker", target: inRoom("rust"), up_to: 42n }, "00000008 11 00 0472757374 2a"],
  [ServerMessage, { type: "Unread", counts: [{ target: inRoom("rust"), read_up_to: 40n, unread: 2, latest: 42n }] }, "0000000b 12 01 00 0472757374 28 02 2a"],
  [ClientMessage, { type: "Request", id: 8, request: { type: "Search", text: "hi", before: null, limit: 20 } }, "00000008 01 08 1b 026869 00 14"],
  [ServerMessage, { type: "Ok", id: 8, reply: { type: "SearchResults", messages: [{ id: 42n, from: "bob", target: { type: "User", name: "alice" }, sent_at: 1763700000000n, client_msg_id: 7n, text: "hey" }], more: false } }, "0000001f 01 08 0b 01 2a 03626f62 01 05616c696365 fd0045b6a49a010000 07 03686579 00"],
  [ServerMessage, { type: "Ok", id: 9, reply: { type: "RoomList", rooms: [{ info: { name: "rust", invite_only: false, members: 3, joined: true }, topic: "hi", unread: 2 }] } }, "00000010 01 09 09 01 0472757374 00 03 01 026869 02"],
  [ServerMessage, { type: "Ok", id: 10, reply: { type: "Roster", room: "rust", members: [{ status: { user: "bob", display_name: "bob", online: true }, role: { type: "Moderator" }, muted: false }] } }, "00000014 01 0a 0c 0472757374 01 03626f62 03626f62 01 01 00"],
];

test("every golden frame of golden.rs and PROTOCOL.md is covered, with the same bytes", () => {
  const ours = GOLDEN.map(([, , hex]) => hex);
  assert.deepEqual(ours, rustGolden, "golden.rs");
  assert.deepEqual(ours, hexBlocks, "PROTOCOL.md §11");
});

GOLDEN.forEach(([type, value, hex], i) => {
  test(`golden frame ${i + 1} (${value.request?.type ?? value.reply?.type ?? value.type}) encodes and decodes byte for byte`, () => {
    const bytes = fromHex(hex);
    assert.equal(toHex(encodeFrame(type, value)), toHex(bytes));
    const decoded = decodeFrame(type, bytes);
    assert.deepEqual(decoded, { value, used: bytes.length });
  });
});

const room = { type: "Room", name: "general" };
const dm = { type: "User", name: "bob" };
const big = 0xfedcba9876543210n;
const chat = { id: big, from: "alice", target: dm, sent_at: 1763700000000n, client_msg_id: 2n ** 53n + 1n, text: "héllo <b>" };
const status = { user: "bob", display_name: "Bob", online: true };
const info = { name: "rust", invite_only: true, members: 70000, joined: false };

const REQUESTS = [
  { type: "Register", username: "a", password: "p", device: "d" },
  { type: "Login", username: "a", password: "p", device: "d" },
  { type: "Resume", token: "t", device: "d" },
  { type: "Logout" },
  { type: "CreateRoom", room: "r", invite_only: true },
  { type: "Join", room: "r" },
  { type: "Leave", room: "r" },
  { type: "Invite", room: "r", user: "u" },
  { type: "ListRooms" },
  { type: "Who", room: "r" },
  { type: "ListUsers" },
  { type: "SetDisplayName", display_name: "Ünï" },
  { type: "Send", target: room, client_msg_id: big, text: "x".repeat(300) },
  { type: "History", target: dm, before: 77n, limit: 50 },
  { type: "History", target: room, before: null, limit: 65535 },
  // Version 2.
  { type: "SetRole", room: "r", user: "u", role: { type: "Moderator" } },
  { type: "SetRole", room: "r", user: "u", role: { type: "Member" } },
  { type: "Kick", room: "r", user: "u", reason: "<b>spam</b>" },
  { type: "Ban", room: "r", user: "u", reason: "" },
  { type: "Unban", room: "r", user: "u" },
  { type: "Mute", room: "r", user: "u", muted: true },
  { type: "Mute", room: "r", user: "u", muted: false },
  { type: "Edit", message: big, text: "ünïcode\nline" },
  { type: "Delete", message: 1n },
  { type: "Redact", message: 2n ** 40n, reason: "why" },
  { type: "SetTopic", room: "r", topic: "" },
  { type: "RoomList" },
  { type: "SetDisabled", user: "bob", disabled: true },
  { type: "AuditLog", room: null, before: 5n, limit: 20 },
  { type: "AuditLog", room: "rust", before: null, limit: 0 },
  { type: "MarkRead", target: dm, up_to: big },
  { type: "Search", text: "ünïcødé words", before: 251n, limit: 65535 },
];
const CLIENT = [
  { type: "Hello", min_version: 1, max_version: 3, client: "web" },
  ...REQUESTS.map((request, id) => ({ type: "Request", id: id * 1000, request })),
  { type: "Ack", up_to: 2n ** 32n },
  { type: "Typing", target: room, active: true },
  { type: "Typing", target: dm, active: false },
  { type: "Ping", nonce: 0n },
  { type: "Pong", nonce: big },
];
const REPLIES = [
  { type: "Done" },
  { type: "Session", session: { user: "alice", display_name: "Alice", token: "tok", token_expires_at: 1n } },
  { type: "Sent", id: 5n, sent_at: 6n },
  { type: "Room", room: info },
  { type: "Rooms", rooms: [info, { ...info, name: "go" }] },
  { type: "Members", room: "rust", members: [status] },
  { type: "Users", users: [status, { ...status, online: false }] },
  { type: "History", messages: [chat], more: true },
  { type: "Page", messages: [{ message: chat, edited: true, deleted: false }, { message: { ...chat, text: "" }, edited: false, deleted: true }], more: true },
  { type: "RoomList", rooms: [{ info, topic: "all things rust", unread: 0 }, { info: { ...info, name: "go" }, topic: "", unread: 1000 }] },
  { type: "AuditLog", entries: [{ position: 2n, room: "rust", by: "alice", user: "bob", action: { type: "Kicked" }, reason: "spam", at: 1n }, { position: 1n, room: "", by: "root", user: "bob", action: { type: "Enabled" }, reason: "", at: big }], more: true },
  { type: "SearchResults", messages: [chat], more: false },
  { type: "Roster", room: "rust", members: [{ status, role: { type: "Owner" }, muted: true }, { status: { ...status, user: "carol" }, role: { type: "Member" }, muted: false }] },
];
const CODES = TYPES.ErrorCode.variants.map(([name, fields]) =>
  Object.fromEntries([["type", name], ...fields.map(([field], i) => [field, 70000 + i])]));
CODES[1] = { type: "UnsupportedVersion", min: 1, max: 2 };
const SERVER = [
  { type: "Welcome", version: 1, server: "chat", default_room: "general", limits: { max_frame_len: 65536, max_text_len: 4096, max_rooms_per_user: 100, max_history_page: 100, request_rate_per_sec: 50, request_burst: 100, login_timeout_ms: 30000, keepalive_interval_ms: 30000, keepalive_timeout_ms: 15000 } },
  ...REPLIES.map((reply, id) => ({ type: "Ok", id, reply })),
  ...CODES.map((code, id) => ({ type: "Err", id, error: { code, message: "no" } })),
  { type: "Message", message: chat },
  { type: "CaughtUp" },
  { type: "Presence", user: "bob", online: false },
  { type: "Typing", user: "bob", target: room, active: true },
  { type: "Member", room: "rust", user: "bob", event: { type: "Joined" } },
  { type: "Member", room: "rust", user: "bob", event: { type: "Left" } },
  { type: "Member", room: "rust", user: "bob", event: { type: "Invited", by: "alice" } },
  { type: "Error", error: { code: { type: "TooLarge" }, message: "big" } },
  { type: "ShuttingDown" },
  { type: "Ping", nonce: 1n },
  { type: "Pong", nonce: 2n },
  // Version 2.
  ...["Kicked", "Banned", "Unbanned", "Muted", "Unmuted", "Opped", "Deopped", "Redacted", "Disabled", "Enabled"].map((action) =>
    ({ type: "Moderated", room: "rust", by: "alice", user: "bob", action: { type: action }, reason: action === "Kicked" ? "spam" : "" })),
  { type: "Edited", id: big, message: 5n, from: "bob", target: dm, text: "new" },
  { type: "Deleted", id: 9n, message: 5n, target: room, by: "bob", redacted: false, reason: "" },
  { type: "Deleted", id: 10n, message: 6n, target: room, by: "alice", redacted: true, reason: "off topic" },
  { type: "Topic", room: "rust", topic: "", by: "" },
  { type: "Topic", room: "rust", topic: "line\nbreak", by: "alice" },
  { type: "DisplayName", user: "bob", display_name: "Bob 🎉" },
  { type: "ReadMarker", target: room, up_to: 65536n },
  { type: "Unread", counts: [{ target: room, read_up_to: 0n, unread: 1000, latest: big }, { target: dm, read_up_to: 7n, unread: 0, latest: 0n }] },
];

test("every client message round-trips", () => {
  for (const msg of CLIENT) assert.deepEqual(decodeFrame(ClientMessage, encodeFrame(ClientMessage, msg)).value, msg);
  const variants = new Set(CLIENT.map((m) => m.type));
  assert.equal(variants.size, TYPES.ClientMessage.variants.length);
  assert.equal(new Set(REQUESTS.map((r) => r.type)).size, TYPES.Request.variants.length);
});

test("every server message round-trips", () => {
  for (const msg of SERVER) assert.deepEqual(decodeFrame(ServerMessage, encodeFrame(ServerMessage, msg)).value, msg);
  assert.equal(new Set(SERVER.map((m) => m.type)).size, TYPES.ServerMessage.variants.length);
  assert.equal(new Set(REPLIES.map((r) => r.type)).size, TYPES.Reply.variants.length);
  assert.equal(new Set(CODES.map((c) => c.type)).size, TYPES.ErrorCode.variants.length);
  const actions = SERVER.filter((m) => m.type === "Moderated").map((m) => m.action.type);
  assert.deepEqual(actions, TYPES.ModAction.variants.map(([name]) => name));
});

// A value of every variant of every type, built from the tables: a variant appended later is
// round-tripped here without a new line of test.
function sample(type, pick = 0) {
  switch (type.kind) {
    case "u8": return 7;
    case "bool": return pick % 2 === 1;
    case "uint": return type.big ? 2n ** 63n + BigInt(pick) : Number(type.max > 0xffffn ? 70000 + pick : 300 + pick);
    case "string": return `s${pick}ü`;
    case "option": return pick % 2 ? sample(type.inner, pick) : null;
    case "vec": return [sample(type.inner, pick), sample(type.inner, pick + 1)];
    case "struct": return Object.fromEntries(type.fields.map(([name, t], i) => [name, sample(t, pick + i)]));
    case "enum": {
      const [name, fields] = type.variants[pick % type.variants.length];
      return Object.fromEntries([["type", name], ...fields.map(([field, t], i) => [field, sample(t, pick + i)])]);
    }
    default: throw new Error(type.kind);
  }
}

test("every variant of every enum round-trips, each with its wire index", () => {
  for (const [typeName, type] of Object.entries(TYPES)) {
    if (type.kind !== "enum") continue;
    type.variants.forEach(([name], index) => {
      const value = sample(type, index);
      assert.equal(value.type, name);
      const bytes = encodePayload(type, value);
      assert.equal(bytes[0], index, `${typeName}::${name} starts with its index`);
      assert.deepEqual(decodePayload(type, bytes), value, `${typeName}::${name}`);
    });
  }
});

test("version 2 variants are marked, appended after every version-1 variant", () => {
  assert.equal(MIN_VERSION, 1);
  assert.equal(MAX_VERSION, 2);
  const v2 = {
    Request: ["SetRole", "Kick", "Ban", "Unban", "Mute", "Edit", "Delete", "Redact", "SetTopic", "RoomList", "SetDisabled", "AuditLog", "MarkRead", "Search"],
    Reply: ["Page", "RoomList", "AuditLog", "SearchResults", "Roster"],
    ServerMessage: ["Moderated", "Edited", "Deleted", "Topic", "DisplayName", "ReadMarker", "Unread"],
  };
  for (const [typeName, names] of Object.entries(v2)) {
    const type = TYPES[typeName];
    const marked = type.variants.filter(([name]) => since(type, name) === 2).map(([name]) => name);
    assert.deepEqual(marked, names, typeName);
    // Versions never decrease along a table: new variants go at the end.
    const versions = type.variants.map(([name]) => since(type, name));
    assert.deepEqual(versions, [...versions].sort((a, b) => a - b), typeName);
  }
  assert.equal(requestVersion({ type: "Send" }), 1);
  assert.equal(requestVersion({ type: "Kick" }), 2);
  assert.equal(since(TYPES.ErrorCode, "Unavailable"), 1);
  assert.equal(ERROR_CODES[19], "Unavailable");
});

test("unknown variants past the last are refused", () => {
  // One past each table's end: what a newer peer would send.
  for (const type of [TYPES.Request, TYPES.Reply, TYPES.ServerMessage, TYPES.ModAction, TYPES.Role]) {
    assert.throws(() => decodePayload(type, Uint8Array.of(type.variants.length)), CodecError);
  }
});

test("varints take the documented sizes", () => {
  const ack = (v) => toHex(encodePayload(ClientMessage, { type: "Ack", up_to: v }));
  assert.equal(ack(7), "0207");
  assert.equal(ack(250), "02fa");
  assert.equal(ack(251), "02fbfb00");
  assert.equal(ack(300), "02fb2c01");
  assert.equal(ack(65536), "02fc00000100");
  assert.equal(ack(1763700000000n), "02fd0045b6a49a010000");
});

test("invalid input is a CodecError, never a crash", () => {
  const bad = [
    "00",                // a Hello cut short
    "06",                // unknown ClientMessage variant
    "03 00 00 02",       // bool 2 (Typing active)
    "00 fc 00 00 01 00 01 00", // a u16 given as a u32 varint
    "00 01 01 05 ff fe", // string running past the end
    "00 01 01 02 c3 28", // invalid UTF-8
    "04 00 00",          // trailing byte after Ping
    "00 01 01 00 ff",    // invalid varint marker
  ];
  for (const hex of bad) assert.throws(() => decodePayload(ClientMessage, fromHex(hex)), CodecError, hex);
  assert.throws(() => decodeFrame(ClientMessage, fromHex("00000000")), CodecError);
  assert.throws(() => decodeFrame(ClientMessage, fromHex("40000000")), CodecError);
  assert.equal(decodeFrame(ClientMessage, fromHex("000000")), null);
  assert.equal(decodeFrame(ClientMessage, fromHex("00000004 02")), null);
  assert.throws(() => encodeFrame(ClientMessage, { type: "Nope" }), CodecError);
  assert.throws(() => encodeFrame(ClientMessage, { type: "Ack", up_to: -1 }), CodecError);
  assert.throws(() => encodeFrame(ClientMessage, { type: "Hello", min_version: 70000, max_version: 1, client: "" }), CodecError);
});

// The Rust catalogue, read from chat-proto/src/message.rs: each enum's variants in order, with
// their field names (struct variants) and the version their doc comment marks (`*(v2)*`), if any.
function rustEnums() {
  const source = read("../../../chat-proto/src/message.rs");
  const enums = {};
  for (const [, name, body] of source.matchAll(/^pub enum (\w+) \{\n([\s\S]*?)^\}/gm)) {
    const variants = [];
    let doc = "";
    for (const line of body.split("\n")) {
      const comment = line.match(/^ {4}\/\/\/(.*)$/);
      const variant = line.match(/^ {4}(\w+)(\s*\{|\(|,)/);
      const field = line.match(/^ {8}(\w+):/);
      if (comment) doc += comment[1];
      else if (variant) {
        const mark = doc.match(/\*\(v(\d+)\)\*/);
        variants.push({ name: variant[1], fields: [], version: mark ? Number(mark[1]) : 1, struct: variant[2].trim() === "{" });
        doc = "";
      } else if (field && variants.length) variants.at(-1).fields.push(field[1]);
      else if (!line.trim().startsWith("#")) doc = line.trim() === "}," ? "" : doc;
    }
    enums[name] = variants;
  }
  return enums;
}

test("the tables follow chat-proto's message.rs: names, order, fields and version marks", () => {
  const rust = rustEnums();
  for (const typeName of ["Target", "Role", "ModAction", "Request", "ClientMessage", "Reply", "ErrorCode", "MemberEvent", "ServerMessage"]) {
    const type = TYPES[typeName];
    assert.ok(rust[typeName], `${typeName} in message.rs`);
    assert.deepEqual(type.variants.map(([name]) => name), rust[typeName].map((v) => v.name), typeName);
    for (const v of rust[typeName]) {
      if (v.struct) {
        const fields = type.variants.find(([name]) => name === v.name)[1].map(([field]) => field);
        assert.deepEqual(fields, v.fields, `${typeName}::${v.name}`);
      }
      assert.equal(since(type, v.name), v.version, `${typeName}::${v.name} version`);
    }
  }
});
