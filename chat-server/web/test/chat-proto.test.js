// node --test: the JS codec against every golden frame of docs/PROTOCOL.md and round trips of
// every message both ways.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  ClientMessage, ServerMessage, TYPES, ERROR_CODES, encodeFrame, decodeFrame, encodePayload,
  decodePayload, fromHex, toHex, CodecError,
} from "../lib/chat-proto.js";

const spec = readFileSync(fileURLToPath(new URL("../../../docs/PROTOCOL.md", import.meta.url)), "utf8");
const golden = spec.split("## 11. Golden frames")[1].split("## 12.")[0];
const hexBlocks = [...golden.matchAll(/```\n\s*([0-9a-f ]+)\n\s*```/g)].map((m) => m[1]);

// The messages of §11, in order.
const GOLDEN = [
  [ClientMessage, { type: "Hello", min_version: 1, max_version: 1, client: "cli" }],
  [ClientMessage, { type: "Request", id: 1, request: { type: "Login", username: "alice", password: "secret-pw", device: "laptop" } }],
  [ClientMessage, { type: "Request", id: 2, request: { type: "Send", target: { type: "Room", name: "general" }, client_msg_id: 300n, text: "hi" } }],
  [ClientMessage, { type: "Ack", up_to: 1000n }],
  [ServerMessage, { type: "Message", message: { id: 42n, from: "bob", target: { type: "User", name: "alice" }, sent_at: 1763700000000n, client_msg_id: 7n, text: "hey" } }],
  [ServerMessage, { type: "Ok", id: 2, reply: { type: "Sent", id: 42n, sent_at: 1763700000000n } }],
  [ServerMessage, { type: "Err", id: 2, error: { code: { type: "RateLimited", retry_after_ms: 1500 }, message: "slow down" } }],
  [ServerMessage, { type: "CaughtUp" }],
];

test("every golden frame of PROTOCOL.md is covered", () => {
  assert.equal(hexBlocks.length, GOLDEN.length);
});

GOLDEN.forEach(([type, value], i) => {
  test(`golden frame ${i + 1} encodes and decodes byte for byte`, () => {
    const bytes = fromHex(hexBlocks[i]);
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
];
const CODES = ERROR_CODES.map((name) =>
  name === "UnsupportedVersion" ? { type: name, min: 1, max: 2 }
    : name === "RateLimited" ? { type: name, retry_after_ms: 70000 } : { type: name });
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
