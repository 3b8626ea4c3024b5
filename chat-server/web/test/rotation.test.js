// node --test: failing over between nodes (issue 12): the rotation alone, the page's list of
// nodes, and ChatClient on fake sockets and timers going from a dead node to a live one,
// resuming by token and resending an unsent message with its original client message id.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_BACKOFF, MIN_BACKOFF, Rotation, nodeUrls } from "../lib/rotation.js";
import { ChatClient } from "../lib/client.js";
import { ClientMessage, decodeFrame } from "../lib/chat-proto.js";

test("failures move to the next node at once and back off once per round", () => {
  const r = new Rotation(3);
  const seen = [];
  for (let i = 0; i < 9; i++) {
    const wait = r.fail();
    seen.push([r.at, wait]);
  }
  assert.deepEqual(seen, [
    [1, 0], [2, 0], [0, MIN_BACKOFF * 2],
    [1, 0], [2, 0], [0, MIN_BACKOFF * 4],
    [1, 0], [2, 0], [0, MIN_BACKOFF * 8],
  ]);
  for (let i = 0; i < 40; i++) assert.ok(r.fail() <= MAX_BACKOFF);
  assert.equal(r.backoff, MAX_BACKOFF);
});

test("one node backs off on every failure", () => {
  const r = new Rotation(1);
  assert.deepEqual([r.fail(), r.fail(), r.at], [MIN_BACKOFF * 2, MIN_BACKOFF * 4, 0]);
});

test("a lost node is tried last, after the shortest wait; success resets the back-off", () => {
  const r = new Rotation(3);
  r.fail();
  r.fail();
  r.fail(); // a full round failed: the back-off doubled
  r.fail(); // node 0 failed
  r.fail(); // node 1 failed
  r.connected(); // node 2 worked
  assert.equal(r.at, 2);
  assert.equal(r.lost(), MIN_BACKOFF);
  assert.deepEqual([r.at, r.fail(), r.at, r.fail(), r.at, r.fail()], [0, 0, 1, 0, 2, MIN_BACKOFF * 2]);
});

test("the page tries its own node first, then each peer once", () => {
  assert.deepEqual(
    nodeUrls("ws://a/ws", ["ws://b/ws", "ws://a/ws", "wss://c/ws", "ws://b/ws", "http://d/", 7, "ws://e f"]),
    ["ws://a/ws", "ws://b/ws", "wss://c/ws"],
  );
  assert.deepEqual(nodeUrls("ws://a/ws", undefined), ["ws://a/ws"]);
});

/** A ChatClient over `urls` with fake sockets and timers, logged in before (a stored token). */
function world(urls) {
  const sockets = [];
  globalThis.WebSocket = class {
    static OPEN = 1;
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      sockets.push(this);
    }
    send(bytes) {
      this.sent.push(decodeFrame(ClientMessage, bytes).value);
    }
    close() {}
  };
  const timers = [];
  const fakeTimers = {
    setTimeout: (fn, delay) => timers.push({ fn, delay }),
    clearTimeout: () => {},
  };
  const store = new Map([["chat.token", "tok"], ["chat.user", "alice"]]);
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v), removeItem: (k) => store.delete(k) };
  const client = new ChatClient({ urls, storage, timers: fakeTimers });
  /** Runs the one timer set since the last call; returns its delay. */
  const fire = () => {
    assert.equal(timers.length, 1, "one reconnection timer");
    const { fn, delay } = timers.pop();
    fn();
    return delay;
  };
  return { client, sockets, fire };
}

const limits = { max_frame_len: 65536, max_text_len: 4096, max_rooms_per_user: 100, max_history_page: 100, request_rate_per_sec: 50, request_burst: 100, login_timeout_ms: 30000, keepalive_interval_ms: 30000, keepalive_timeout_ms: 15000 };
const welcome = { type: "Welcome", version: 2, server: "chat", limits, default_room: "general" };
const session = { user: "alice", display_name: "alice", token: "tok", token_expires_at: 0n };

/** Opens `socket`, welcomes the client and answers its resume; returns what it sent. */
function welcomeAndResume(client, socket) {
  socket.readyState = 1;
  socket.onopen();
  client.onMessage(welcome);
  const resume = socket.sent.find((m) => m.type === "Request" && m.request.type === "Resume");
  assert.ok(resume, "resumed by token");
  assert.equal(resume.request.token, "tok");
  client.onMessage({ type: "Ok", id: resume.id, reply: { type: "Session", session } });
  client.onMessage({ type: "CaughtUp" });
  return socket.sent;
}

test("the client passes over a dead node, fails over when its node dies, resumes and resends", async () => {
  const urls = ["ws://a/ws", "ws://b/ws", "ws://c/ws"];
  const { client, sockets, fire } = world(urls);
  const statuses = [];
  client.addEventListener("status", ({ detail }) => statuses.push(detail));
  client.start();
  assert.equal(sockets[0].url, urls[0]);
  // A is dead: B is tried at once.
  sockets[0].onclose();
  assert.equal(fire(), 0);
  assert.equal(sockets[1].url, urls[1]);
  welcomeAndResume(client, sockets[1]);
  assert.deepEqual(statuses.at(-1), { status: "online", info: urls[1] });

  // A message goes out on B, and B dies before it is stored.
  const entry = client.sendText({ type: "User", name: "bob" }, "hello");
  const first = sockets[1].sent.at(-1);
  assert.equal(first.request.type, "Send");
  sockets[1].onclose();
  await Promise.resolve(); // the refused request's handlers run
  const wait = fire();
  assert.ok(wait >= MIN_BACKOFF / 2 && wait <= MIN_BACKOFF, `${wait}`);
  assert.equal(sockets[2].url, urls[2], "the next node");
  const sent = welcomeAndResume(client, sockets[2]);
  const again = sent.filter((m) => m.type === "Request" && m.request.type === "Send");
  assert.equal(again.length, 1);
  assert.equal(again[0].request.client_msg_id, entry.client_msg_id, "the same client message id");
  assert.equal(again[0].request.client_msg_id, first.request.client_msg_id);

  // C dies too, and every node is down: one round (A, B, then C, the lost one, last) before
  // a back-off.
  sockets[2].onclose();
  fire();
  assert.equal(sockets[3].url, urls[0]);
  sockets[3].onclose();
  assert.equal(fire(), 0);
  assert.equal(sockets[4].url, urls[1]);
  sockets[4].onclose();
  assert.equal(fire(), 0);
  assert.equal(sockets[5].url, urls[2]);
  sockets[5].onclose();
  const backoff = fire();
  assert.ok(backoff >= MIN_BACKOFF && backoff <= MIN_BACKOFF * 2, `${backoff}`);
  assert.equal(sockets[6].url, urls[0]);
});
