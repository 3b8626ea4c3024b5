// ChatClient: the browser's protocol client, apart from any view. It owns the WebSocket,
// the handshake, login and resume by token, requests matched by id, reconnection with
// back-off, failing over between nodes (`urls`, tried round robin: lib/rotation.js), messages
// shown once by id, unsent messages resent with their original client
// message ids, acknowledgements, and typing. It speaks protocol versions 1 and 2 (the one the
// server's Welcome agrees on is `version`): edits and deletions are delivered, de-duplicated
// and acknowledged like messages. Views listen to its events.
import {
  ClientMessage, ServerMessage, encodeFrame, decodeFrame, MIN_VERSION, MAX_VERSION, requestVersion,
} from "./chat-proto.js";
import { Rotation } from "./rotation.js";

const TYPING_REFRESH = 2500;

/** A conversation's key: "#room" or "@user". */
export function keyOf(target) {
  return target.type === "Room" ? `#${target.name}` : `@${target.name}`;
}

/** The target of a key. */
export function targetOf(key) {
  return key.startsWith("#") ? { type: "Room", name: key.slice(1) } : { type: "User", name: key.slice(1) };
}

/**
 * The client message id after `last` (BigInts), made as chat_proto::ClientMsgIds makes them:
 * `unixMillis` in the high 42 bits, then 22 bits of `random`, and never at or below `last`.
 * Ids that grow with time go in at the end of the server's index of them.
 */
export function nextClientMsgId(last, unixMillis, random) {
  const id = (BigInt(unixMillis) << 22n) | (BigInt(random) & 0x3fffffn);
  return id > last ? id : last + 1n;
}

export class ChatClient extends EventTarget {
  /**
   * `urls`: the nodes' WebSocket URLs, the page's own first (or `url`, one). `timers` stands in
   * for setTimeout/clearTimeout in tests.
   */
  constructor({ url, urls, storage, timers = globalThis }) {
    super();
    this.urls = urls?.length ? [...urls] : [url];
    this.rotation = new Rotation(this.urls.length);
    this.timers = timers;
    this.storage = storage;
    this.device = storage.getItem("chat.device") || `web-${crypto.randomUUID().slice(0, 18)}`;
    storage.setItem("chat.device", this.device);
    this.token = storage.getItem("chat.token");
    this.user = storage.getItem("chat.user");
    this.status = "offline";
    this.socket = null;
    this.nextId = 1;
    this.requests = new Map();
    this.retry = null;
    this.welcomed = false; // whether the current socket got its Welcome
    this.loggedIn = false;
    this.caughtUp = false;
    this.seen = new Set();
    this.highest = 0n;
    this.acked = 0n;
    this.unsent = new Map(); // client_msg_id (string) -> { target, client_msg_id, text }
    this.lastId = 0n; // the last client_msg_id made
    this.typingSent = new Map();
    this.welcome = null;
    this.version = MIN_VERSION;
    this.wantOnline = false;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setStatus(status, info = "") {
    this.status = status;
    this.emit("status", { status, info });
  }

  /** Connects (and keeps reconnecting until `logout`). */
  start() {
    this.wantOnline = true;
    this.connect();
  }

  /** The URL of the node in use or being tried. */
  get url() {
    return this.urls[this.rotation.at];
  }

  /** Which node, for the status line: its URL when there are several, else nothing. */
  node() {
    return this.urls.length > 1 ? this.url : "";
  }

  connect() {
    this.timers.clearTimeout(this.retry);
    this.setStatus("connecting", this.node());
    this.welcomed = false;
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      return this.scheduleReconnect(String(error), this.rotation.fail());
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onopen = () => {
      this.send({ type: "Hello", min_version: MIN_VERSION, max_version: MAX_VERSION, client: "web" });
    };
    socket.onmessage = (event) => {
      if (!(event.data instanceof ArrayBuffer)) return;
      let decoded;
      try {
        decoded = decodeFrame(ServerMessage, new Uint8Array(event.data), 1 << 24);
      } catch (error) {
        console.warn("bad frame from the server", error);
        return socket.close();
      }
      if (decoded) this.onMessage(decoded.value);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.loggedIn = false;
      this.caughtUp = false;
      for (const { reject } of this.requests.values()) reject(new ChatError({ type: "Closed" }, "the connection was closed"));
      this.requests.clear();
      // A node that welcomed us and went is lost; one that never did failed (the next is tried).
      const wait = this.welcomed ? this.rotation.lost() : this.rotation.fail();
      this.welcomed = false;
      if (this.wantOnline) this.scheduleReconnect("disconnected", wait);
      else this.setStatus("offline");
    };
  }

  /** Connects again after `wait` ms (jittered: 0.5 to 1 times it) to the rotation's node. */
  scheduleReconnect(info, wait) {
    const delay = wait * (0.5 + Math.random() / 2);
    const where = this.node() ? ` (${this.node()})` : "";
    this.setStatus("reconnecting", `${info}; retrying in ${(delay / 1000).toFixed(1)} s${where}`);
    this.retry = this.timers.setTimeout(() => this.connect(), delay);
  }

  send(msg) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(encodeFrame(ClientMessage, msg, this.welcome?.limits.max_frame_len ?? 65536));
    return true;
  }

  /** Sends a request; resolves with its reply, rejects with a ChatError. */
  request(request) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const needed = requestVersion(request);
      if (this.welcome && needed > this.version) {
        return reject(new ChatError({ type: "Unsupported" }, `the server speaks protocol version ${this.version}; this needs version ${needed}`));
      }
      if (!this.send({ type: "Request", id, request })) {
        return reject(new ChatError({ type: "Closed" }, "not connected"));
      }
      this.requests.set(id, { resolve, reject });
    });
  }

  onMessage(msg) {
    switch (msg.type) {
      case "Welcome":
        this.welcome = msg;
        this.version = msg.version;
        this.welcomed = true;
        this.rotation.connected();
        if (this.token && this.user) this.resume();
        else this.setStatus("connected", this.node());
        this.emit("welcome", msg);
        break;
      case "Ok":
      case "Err": {
        const pending = this.requests.get(msg.id);
        this.requests.delete(msg.id);
        if (!pending) break;
        if (msg.type === "Ok") pending.resolve(msg.reply);
        else pending.reject(new ChatError(msg.error.code, msg.error.message));
        break;
      }
      case "Message":
        this.onChat(msg.message);
        break;
      case "Edited":
      case "Deleted":
        // A change has an id of its own in the message sequence: shown once, acknowledged.
        if (this.stored(msg.id)) this.emit(msg.type.toLowerCase(), msg);
        break;
      case "CaughtUp":
        this.caughtUp = true;
        this.ack();
        this.setStatus("online", this.node());
        this.resendUnsent();
        this.emit("caughtup", {});
        break;
      case "Ping":
        this.send({ type: "Pong", nonce: msg.nonce });
        break;
      case "Error":
        this.emit("notice", { text: describe(msg.error.code, msg.error.message) });
        break;
      case "ShuttingDown":
        this.emit("notice", { text: "the server is restarting; reconnecting…" });
        break;
      default:
        this.emit(msg.type.toLowerCase(), msg);
    }
  }

  onChat(message) {
    if (!this.stored(message.id)) return;
    if (message.from === this.user) this.unsent.delete(message.client_msg_id.toString());
    this.emit("message", message);
  }

  /**
   * Notes a delivered message or change by its id: false if it was seen already. Acknowledges
   * it once live (the backlog is acknowledged at CaughtUp).
   */
  stored(id) {
    if (id > this.highest) this.highest = id;
    const key = id.toString();
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    if (this.caughtUp) this.ack();
    return true;
  }

  ack() {
    if (this.highest > this.acked && this.send({ type: "Ack", up_to: this.highest })) this.acked = this.highest;
  }

  async resume() {
    this.setStatus("logging in");
    try {
      const reply = await this.request({ type: "Resume", token: this.token, device: this.device });
      this.loggedIn = true;
      this.emit("session", reply.session);
    } catch (error) {
      if (error.code?.type === "Closed") return;
      this.forget();
      this.emit("loggedout", { reason: `Please log in again (${error.message}).` });
      this.setStatus("connected");
    }
  }

  /** Registers or logs in with a password; resolves with the session. */
  async login(action, username, password) {
    const request = { type: action === "register" ? "Register" : "Login", username, password, device: this.device };
    const reply = await this.request(request);
    const session = reply.session;
    this.user = session.user;
    this.token = session.token;
    this.storage.setItem("chat.user", session.user);
    this.storage.setItem("chat.token", session.token);
    this.loggedIn = true;
    this.emit("session", session);
    return session;
  }

  async logout() {
    try {
      await this.request({ type: "Logout" });
    } catch {
      // Logged out locally whatever the server says.
    }
    this.forget();
    this.emit("loggedout", { reason: "" });
  }

  forget() {
    this.token = null;
    this.user = null;
    this.loggedIn = false;
    this.unsent.clear();
    this.seen.clear();
    this.storage.removeItem("chat.token");
    this.storage.removeItem("chat.user");
  }

  /** Sends a chat message; it stays unsent (and is resent after a reconnect) until stored. */
  sendText(target, text) {
    const now = Date.now();
    this.lastId = nextClientMsgId(this.lastId, now, crypto.getRandomValues(new Uint32Array(1))[0]);
    const entry = { target, client_msg_id: this.lastId, text, sent_at: BigInt(now) };
    this.unsent.set(entry.client_msg_id.toString(), entry);
    this.emit("pending", entry);
    this.typing(target, false);
    if (this.caughtUp) this.transmit(entry);
    return entry;
  }

  transmit(entry) {
    this.request({ type: "Send", target: entry.target, client_msg_id: entry.client_msg_id, text: entry.text })
      .then((reply) => {
        this.unsent.delete(entry.client_msg_id.toString());
        const message = { id: reply.id, from: this.user, target: entry.target, sent_at: reply.sent_at, client_msg_id: entry.client_msg_id, text: entry.text };
        this.seen.add(reply.id.toString());
        this.emit("sent", message);
      })
      .catch((error) => {
        if (error.code?.type === "Closed") return; // resent after the reconnect
        this.unsent.delete(entry.client_msg_id.toString());
        this.emit("failed", { entry, error });
      });
  }

  /**
   * Edits, deletes or redacts a message (version 2): resolves with the change's id once stored.
   * This connection is not sent its own change, so it is reported here as the event the
   * others get.
   */
  async change(message, what) {
    const { target, from } = message;
    let request;
    if (what.type === "Edit") request = { type: "Edit", message: message.id, text: what.text };
    else if (what.type === "Delete") request = { type: "Delete", message: message.id };
    else request = { type: "Redact", message: message.id, reason: what.reason ?? "" };
    const reply = await this.request(request);
    this.seen.add(reply.id.toString());
    if (what.type === "Edit") {
      this.emit("edited", { type: "Edited", id: reply.id, message: message.id, from, target, text: what.text });
    } else {
      const redacted = what.type === "Redact";
      this.emit("deleted", { type: "Deleted", id: reply.id, message: message.id, target, by: this.user, redacted, reason: redacted ? what.reason ?? "" : "" });
    }
    return reply.id;
  }

  resendUnsent() {
    for (const entry of this.unsent.values()) this.transmit(entry);
  }

  /** Tells the server whether the user is composing to `target` (refreshed, not repeated). */
  typing(target, active) {
    const key = keyOf(target);
    const last = this.typingSent.get(key);
    const now = Date.now();
    if (active && last && now - last < TYPING_REFRESH) return;
    if (!active && !last) return;
    if (active) this.typingSent.set(key, now);
    else this.typingSent.delete(key);
    if (this.loggedIn) this.send({ type: "Typing", target, active });
  }
}

/** A refused request: `code` is the protocol's ErrorCode. */
export class ChatError extends Error {
  constructor(code, message) {
    super(describe(code, message));
    this.code = code;
  }
}

/** An error in words: the server's own text (written for people), with hints for some codes. */
export function describe(code, message) {
  switch (code?.type) {
    case "RateLimited":
      return `Too fast: try again in ${Math.ceil(code.retry_after_ms / 1000)} s.`;
    case "Unavailable":
      return `The server cannot store anything right now: try again in ${Math.ceil(code.retry_after_ms / 1000)} s.`;
    case "NotAMember":
      return /^you are not in/i.test(message ?? "") || !message
        ? `${capital(message || "you are not a member of that room")} (/join it first).`
        : sentence(message);
    case "BadCredentials":
      return "Wrong username or password.";
    case "UsernameTaken":
      return "That username is taken.";
    case "WeakPassword":
      return "The password must be at least 8 characters.";
    case "NoSuchRoom":
      return message ? sentence(message) : "No such room.";
    case "NoSuchUser":
      return message ? sentence(message) : "No such user.";
    case "Forbidden":
      return message ? sentence(message) : "You may not do that.";
    case "InvalidName":
      return `Invalid name: ${message}`;
    default:
      return message ? sentence(message) : code?.type || "error";
  }
}

/** "you are muted in #x" -> "You are muted in #x." */
function sentence(text) {
  const line = capital(text);
  return /[.!?:)]$/.test(line) ? line : `${line}.`;
}

function capital(text) {
  const trimmed = text.trim();
  return trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
}
