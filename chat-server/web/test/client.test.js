// node --test: the protocol client without a browser: version negotiation, changes shown
// once and acknowledged like messages, version-2 requests refused on a version-1 connection.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChatClient, nextClientMsgId } from "../lib/client.js";
import { ClientMessage, decodeFrame } from "../lib/chat-proto.js";

globalThis.WebSocket ??= { OPEN: 1 };

/** A client on a fake open socket, recording what it sends. */
function connected() {
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v), removeItem: (k) => store.delete(k) };
  const client = new ChatClient({ url: "ws://test/ws", storage });
  const sent = [];
  client.socket = { readyState: 1, send: (bytes) => sent.push(decodeFrame(ClientMessage, bytes).value) };
  const events = [];
  for (const type of ["edited", "deleted", "message", "moderated", "topic", "displayname"]) {
    client.addEventListener(type, ({ detail }) => events.push([type, detail]));
  }
  return { client, sent, events };
}

const limits = { max_frame_len: 65536, max_text_len: 4096, max_rooms_per_user: 100, max_history_page: 100, request_rate_per_sec: 50, request_burst: 100, login_timeout_ms: 30000, keepalive_interval_ms: 30000, keepalive_timeout_ms: 15000 };
const welcome = (version) => ({ type: "Welcome", version, server: "chat", limits, default_room: "general" });
const room = { type: "Room", name: "mod" };

test("the agreed version is the Welcome's", () => {
  const { client } = connected();
  client.onMessage(welcome(2));
  assert.equal(client.version, 2);
  client.onMessage(welcome(1));
  assert.equal(client.version, 1);
});

test("edits and deletions are shown once and acknowledged like messages", () => {
  const { client, sent, events } = connected();
  client.onMessage(welcome(2));
  client.onMessage({ type: "Message", message: { id: 10n, from: "bob", target: room, sent_at: 1n, client_msg_id: 1n, text: "hi" } });
  const edited = { type: "Edited", id: 11n, message: 10n, from: "bob", target: room, text: "hello" };
  client.onMessage(edited);
  client.onMessage(edited); // replayed again after a reconnect
  assert.deepEqual(events.map(([type]) => type), ["message", "edited"]);
  assert.deepEqual(sent, [], "the backlog is acknowledged at CaughtUp");
  client.onMessage({ type: "CaughtUp" });
  assert.deepEqual(sent.at(-1), { type: "Ack", up_to: 11n });
  client.onMessage({ type: "Deleted", id: 12n, message: 10n, target: room, by: "alice", redacted: true, reason: "spam" });
  assert.deepEqual(events.at(-1), ["deleted", { type: "Deleted", id: 12n, message: 10n, target: room, by: "alice", redacted: true, reason: "spam" }]);
  assert.deepEqual(sent.at(-1), { type: "Ack", up_to: 12n });
});

test("other version-2 events reach the views", () => {
  const { client, events } = connected();
  client.onMessage(welcome(2));
  client.onMessage({ type: "Moderated", room: "mod", by: "alice", user: "bob", action: { type: "Muted" }, reason: "" });
  client.onMessage({ type: "Topic", room: "mod", topic: "t", by: "alice" });
  client.onMessage({ type: "DisplayName", user: "bob", display_name: "Bob" });
  assert.deepEqual(events.map(([type]) => type), ["moderated", "topic", "displayname"]);
});

test("an own change is confirmed by its Sent reply and shown as the others see it", async () => {
  const { client, sent, events } = connected();
  client.onMessage(welcome(2));
  client.user = "bob";
  const message = { id: 10n, from: "bob", target: room, sent_at: 1n, client_msg_id: 1n, text: "hi" };
  const done = client.change(message, { type: "Edit", text: "hello" });
  const request = sent.at(-1);
  assert.deepEqual(request.request, { type: "Edit", message: 10n, text: "hello" });
  client.onMessage({ type: "Ok", id: request.id, reply: { type: "Sent", id: 13n, sent_at: 2n } });
  assert.equal(await done, 13n);
  assert.deepEqual(events.at(-1), ["edited", { type: "Edited", id: 13n, message: 10n, from: "bob", target: room, text: "hello" }]);
  const redact = client.change({ ...message, from: "carol" }, { type: "Redact", reason: "spam" });
  const second = sent.at(-1);
  assert.deepEqual(second.request, { type: "Redact", message: 10n, reason: "spam" });
  client.onMessage({ type: "Err", id: second.id, error: { code: { type: "Forbidden" }, message: "only a moderator of the room redacts a message" } });
  await assert.rejects(redact, { message: "Only a moderator of the room redacts a message." });
});

test("a version-1 connection is never sent a version-2 request", async () => {
  const { client, sent } = connected();
  client.onMessage(welcome(1));
  await assert.rejects(client.request({ type: "Kick", room: "mod", user: "bob", reason: "" }), /protocol version 1/);
  assert.deepEqual(sent, []);
  client.request({ type: "ListRooms" }).catch(() => {});
  assert.equal(sent.at(-1).request.type, "ListRooms");
});

test("client message ids are the time then 22 random bits, and only grow", () => {
  const millis = 1_765_000_000_123;
  const id = nextClientMsgId(0n, millis, 0xffffffff);
  assert.equal(id >> 22n, BigInt(millis));
  assert.equal(id & 0x3fffffn, 0x3fffffn, "the random number's low 22 bits");
  // The same millisecond and draw, or a clock that stepped back: the last id plus one.
  assert.equal(nextClientMsgId(id, millis, 0xffffffff), id + 1n);
  assert.equal(nextClientMsgId(id, millis - 1000, 5), id + 1n);
  assert.equal(nextClientMsgId(id, millis + 1, 5), (BigInt(millis + 1) << 22n) | 5n);

  const { client, sent } = connected();
  client.caughtUp = true;
  const first = client.sendText({ type: "User", name: "bob" }, "one");
  const second = client.sendText({ type: "User", name: "bob" }, "two");
  assert.ok(second.client_msg_id > first.client_msg_id);
  assert.deepEqual(sent.map((m) => m.request.client_msg_id), [first.client_msg_id, second.client_msg_id]);
});
