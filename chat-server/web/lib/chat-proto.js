// The chat wire protocol, versions 1 and 2 (docs/PROTOCOL.md): framing, bincode-standard
// encoding, and every message both ways. Pure: no DOM, no sockets; runs in browsers and in node.
//
// Values: u8/u16/u32 are Numbers, u64 are BigInts (ids may exceed 2^53; writers accept
// Numbers too), strings are strings, Option is `null` or the value, Vec is an Array, a struct
// is an object with its fields, an enum is an object `{ type: "Variant", ...fields }` (a
// newtype variant names its one field, e.g. `{ type: "Rooms", rooms: [...] }`).
//
// Each enum is a table of variants in wire order, one line each: `[name, fields]` for version
// 1, `[name, fields, 2]` for a variant added in version 2 (and so on). A new variant is one
// line appended at the end of its table, with the version that added it; nothing else
// changes (`since` and the tests read the tables).

/** The protocol versions this codec speaks (sent in Hello). */
export const MIN_VERSION = 1;
export const MAX_VERSION = 2;
export const HEADER_LEN = 4;
export const DEFAULT_MAX_FRAME_LEN = 65536;

/** An invalid frame or payload. */
export class CodecError extends Error {
  constructor(message) {
    super(message);
    this.name = "CodecError";
  }
}

// ---- types ----------------------------------------------------------------------------

const u8 = { kind: "u8" };
const bool = { kind: "bool" };
const u16 = { kind: "uint", max: 0xffffn };
const u32 = { kind: "uint", max: 0xffffffffn };
const u64 = { kind: "uint", max: 0xffffffffffffffffn, big: true };
const str = { kind: "string" };
const opt = (inner) => ({ kind: "option", inner });
const vec = (inner) => ({ kind: "vec", inner });
const struct = (fields) => ({ kind: "struct", fields });
/** An enum: an array of [name, fields, since = 1] in index order. */
const enumOf = (variants) => ({ kind: "enum", variants });

const Target = enumOf([["Room", [["name", str]]], ["User", [["name", str]]]]);

const Role = enumOf([
  ["Member", []],
  ["Moderator", []],
  ["Owner", []],
]);

const ModAction = enumOf([
  ["Kicked", []],
  ["Banned", []],
  ["Unbanned", []],
  ["Muted", []],
  ["Unmuted", []],
  ["Opped", []],
  ["Deopped", []],
  ["Redacted", []],
  ["Disabled", []],
  ["Enabled", []],
]);

const Request = enumOf([
  ["Register", [["username", str], ["password", str], ["device", str]]],
  ["Login", [["username", str], ["password", str], ["device", str]]],
  ["Resume", [["token", str], ["device", str]]],
  ["Logout", []],
  ["CreateRoom", [["room", str], ["invite_only", bool]]],
  ["Join", [["room", str]]],
  ["Leave", [["room", str]]],
  ["Invite", [["room", str], ["user", str]]],
  ["ListRooms", []],
  ["Who", [["room", str]]],
  ["ListUsers", []],
  ["SetDisplayName", [["display_name", str]]],
  ["Send", [["target", Target], ["client_msg_id", u64], ["text", str]]],
  ["History", [["target", Target], ["before", opt(u64)], ["limit", u16]]],
  ["SetRole", [["room", str], ["user", str], ["role", Role]], 2],
  ["Kick", [["room", str], ["user", str], ["reason", str]], 2],
  ["Ban", [["room", str], ["user", str], ["reason", str]], 2],
  ["Unban", [["room", str], ["user", str]], 2],
  ["Mute", [["room", str], ["user", str], ["muted", bool]], 2],
  ["Edit", [["message", u64], ["text", str]], 2],
  ["Delete", [["message", u64]], 2],
  ["Redact", [["message", u64], ["reason", str]], 2],
  ["SetTopic", [["room", str], ["topic", str]], 2],
  ["RoomList", [], 2],
  ["SetDisabled", [["user", str], ["disabled", bool]], 2],
  ["AuditLog", [["room", opt(str)], ["before", opt(u64)], ["limit", u16]], 2],
  ["MarkRead", [["target", Target], ["up_to", u64]], 2],
  ["Search", [["text", str], ["before", opt(u64)], ["limit", u16]], 2],
]);

export const ClientMessage = enumOf([
  ["Hello", [["min_version", u16], ["max_version", u16], ["client", str]]],
  ["Request", [["id", u32], ["request", Request]]],
  ["Ack", [["up_to", u64]]],
  ["Typing", [["target", Target], ["active", bool]]],
  ["Ping", [["nonce", u64]]],
  ["Pong", [["nonce", u64]]],
]);

const Limits = struct([
  ["max_frame_len", u32], ["max_text_len", u32], ["max_rooms_per_user", u32],
  ["max_history_page", u16], ["request_rate_per_sec", u32], ["request_burst", u32],
  ["login_timeout_ms", u32], ["keepalive_interval_ms", u32], ["keepalive_timeout_ms", u32],
]);
const Session = struct([["user", str], ["display_name", str], ["token", str], ["token_expires_at", u64]]);
const RoomInfo = struct([["name", str], ["invite_only", bool], ["members", u32], ["joined", bool]]);
const UserStatus = struct([["user", str], ["display_name", str], ["online", bool]]);
const ChatMessage = struct([
  ["id", u64], ["from", str], ["target", Target], ["sent_at", u64], ["client_msg_id", u64], ["text", str],
]);
const PageEntry = struct([["message", ChatMessage], ["edited", bool], ["deleted", bool]]);
const RoomEntry = struct([["info", RoomInfo], ["topic", str], ["unread", u32]]);
const RosterEntry = struct([["status", UserStatus], ["role", Role], ["muted", bool]]);
const UnreadCount = struct([["target", Target], ["read_up_to", u64], ["unread", u32], ["latest", u64]]);
const AuditEntry = struct([
  ["position", u64], ["room", str], ["by", str], ["user", str], ["action", ModAction],
  ["reason", str], ["at", u64],
]);
const Reply = enumOf([
  ["Done", []],
  ["Session", [["session", Session]]],
  ["Sent", [["id", u64], ["sent_at", u64]]],
  ["Room", [["room", RoomInfo]]],
  ["Rooms", [["rooms", vec(RoomInfo)]]],
  ["Members", [["room", str], ["members", vec(UserStatus)]]],
  ["Users", [["users", vec(UserStatus)]]],
  ["History", [["messages", vec(ChatMessage)], ["more", bool]]],
  ["Page", [["messages", vec(PageEntry)], ["more", bool]], 2],
  ["RoomList", [["rooms", vec(RoomEntry)]], 2],
  ["AuditLog", [["entries", vec(AuditEntry)], ["more", bool]], 2],
  ["SearchResults", [["messages", vec(ChatMessage)], ["more", bool]], 2],
  ["Roster", [["room", str], ["members", vec(RosterEntry)]], 2],
]);
const ErrorCode = enumOf([
  ["BadRequest", []],
  ["UnsupportedVersion", [["min", u16], ["max", u16]]],
  ["NotAuthenticated", []],
  ["AlreadyAuthenticated", []],
  ["UsernameTaken", []],
  ["InvalidName", []],
  ["WeakPassword", []],
  ["BadCredentials", []],
  ["NoSuchUser", []],
  ["NoSuchRoom", []],
  ["RoomExists", []],
  ["NotAMember", []],
  ["Forbidden", []],
  ["TooLarge", []],
  ["TooManyRooms", []],
  ["RateLimited", [["retry_after_ms", u32]]],
  ["ServerFull", []],
  ["Timeout", []],
  ["Internal", []],
  ["Unavailable", [["retry_after_ms", u32]]],
]);
/** The error codes' names, in wire order. */
export const ERROR_CODES = ErrorCode.variants.map(([name]) => name);
const ErrorReply = struct([["code", ErrorCode], ["message", str]]);
const MemberEvent = enumOf([["Joined", []], ["Left", []], ["Invited", [["by", str]]]]);

export const ServerMessage = enumOf([
  ["Welcome", [["version", u16], ["server", str], ["limits", Limits], ["default_room", str]]],
  ["Ok", [["id", u32], ["reply", Reply]]],
  ["Err", [["id", u32], ["error", ErrorReply]]],
  ["Message", [["message", ChatMessage]]],
  ["CaughtUp", []],
  ["Presence", [["user", str], ["online", bool]]],
  ["Typing", [["user", str], ["target", Target], ["active", bool]]],
  ["Member", [["room", str], ["user", str], ["event", MemberEvent]]],
  ["Error", [["error", ErrorReply]]],
  ["ShuttingDown", []],
  ["Ping", [["nonce", u64]]],
  ["Pong", [["nonce", u64]]],
  ["Moderated", [["room", str], ["by", str], ["user", str], ["action", ModAction], ["reason", str]], 2],
  ["Edited", [["id", u64], ["message", u64], ["from", str], ["target", Target], ["text", str]], 2],
  ["Deleted", [["id", u64], ["message", u64], ["target", Target], ["by", str], ["redacted", bool], ["reason", str]], 2],
  ["Topic", [["room", str], ["topic", str], ["by", str]], 2],
  ["DisplayName", [["user", str], ["display_name", str]], 2],
  ["ReadMarker", [["target", Target], ["up_to", u64]], 2],
  ["Unread", [["counts", vec(UnreadCount)]], 2],
]);

/** Every type, for tests and tools. */
export const TYPES = {
  Target, Role, ModAction, Request, ClientMessage, Limits, Session, RoomInfo, UserStatus,
  ChatMessage, PageEntry, RoomEntry, UnreadCount, AuditEntry, RosterEntry, Reply, ErrorCode, ErrorReply,
  MemberEvent, ServerMessage,
};

/** The protocol version that added variant `name` of the enum `type` (undefined if none). */
export function since(type, name) {
  const variant = type.variants.find(([n]) => n === name);
  return variant ? (variant[2] ?? 1) : undefined;
}

/** The protocol version a request needs (`Request` variants only). */
export function requestVersion(request) {
  return since(Request, request?.type) ?? 1;
}

// ---- encoding -------------------------------------------------------------------------

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

class Writer {
  constructor() {
    this.buf = new Uint8Array(64);
    this.len = 0;
  }
  room(n) {
    if (this.len + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    bigger.set(this.buf.subarray(0, this.len));
    this.buf = bigger;
  }
  byte(b) {
    this.room(1);
    this.buf[this.len++] = b;
  }
  bytes(bs) {
    this.room(bs.length);
    this.buf.set(bs, this.len);
    this.len += bs.length;
  }
  /** Little-endian, `n` bytes, of a BigInt. */
  le(v, n) {
    for (let i = 0; i < n; i++) {
      this.byte(Number(v & 0xffn));
      v >>= 8n;
    }
  }
  varint(v) {
    if (v <= 250n) this.byte(Number(v));
    else if (v <= 0xffffn) { this.byte(0xfb); this.le(v, 2); }
    else if (v <= 0xffffffffn) { this.byte(0xfc); this.le(v, 4); }
    else { this.byte(0xfd); this.le(v, 8); }
  }
}

function write(w, type, value, path) {
  switch (type.kind) {
    case "u8":
      if (!Number.isInteger(value) || value < 0 || value > 255) throw new CodecError(`${path}: not a u8`);
      return w.byte(value);
    case "bool":
      if (typeof value !== "boolean") throw new CodecError(`${path}: not a bool`);
      return w.byte(value ? 1 : 0);
    case "uint": {
      let v;
      try {
        v = BigInt(value);
      } catch {
        throw new CodecError(`${path}: not an integer`);
      }
      if (v < 0n || v > type.max) throw new CodecError(`${path}: ${v} out of range`);
      return w.varint(v);
    }
    case "string": {
      if (typeof value !== "string") throw new CodecError(`${path}: not a string`);
      const bytes = utf8.encode(value);
      w.varint(BigInt(bytes.length));
      return w.bytes(bytes);
    }
    case "option":
      if (value === null || value === undefined) return w.byte(0);
      w.byte(1);
      return write(w, type.inner, value, path);
    case "vec":
      if (!Array.isArray(value)) throw new CodecError(`${path}: not an array`);
      w.varint(BigInt(value.length));
      value.forEach((item, i) => write(w, type.inner, item, `${path}[${i}]`));
      return;
    case "struct":
      if (value === null || typeof value !== "object") throw new CodecError(`${path}: not an object`);
      for (const [name, t] of type.fields) write(w, t, value[name], `${path}.${name}`);
      return;
    case "enum": {
      const index = type.variants.findIndex(([name]) => name === value?.type);
      if (index < 0) throw new CodecError(`${path}: unknown variant ${value?.type}`);
      w.varint(BigInt(index));
      for (const [name, t] of type.variants[index][1]) write(w, t, value[name], `${path}.${name}`);
      return;
    }
    default:
      throw new CodecError(`unknown type ${type.kind}`);
  }
}

/** The payload of `value` as `type` (no length prefix). */
export function encodePayload(type, value) {
  const w = new Writer();
  write(w, type, value, type === ClientMessage ? "ClientMessage" : "value");
  return w.buf.slice(0, w.len);
}

/** A whole frame: 4-byte big-endian length, then the payload. */
export function encodeFrame(type, value, maxFrameLen = DEFAULT_MAX_FRAME_LEN) {
  const payload = encodePayload(type, value);
  if (payload.length > maxFrameLen) {
    throw new CodecError(`frame of ${payload.length} bytes exceeds the limit of ${maxFrameLen}`);
  }
  const frame = new Uint8Array(HEADER_LEN + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length, false);
  frame.set(payload, HEADER_LEN);
  return frame;
}

// ---- decoding -------------------------------------------------------------------------

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
  }
  take(n) {
    if (this.pos + n > this.bytes.length) throw new CodecError("payload ends early");
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  byte() {
    return this.take(1)[0];
  }
  le(n) {
    const bs = this.take(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bs[i]);
    return v;
  }
  varint(max) {
    const first = this.byte();
    let v;
    if (first <= 250) v = BigInt(first);
    else if (first === 0xfb) v = this.le(2);
    else if (first === 0xfc) v = this.le(4);
    else if (first === 0xfd) v = this.le(8);
    else throw new CodecError(`invalid varint marker ${first}`);
    if (v > max) throw new CodecError(`varint ${v} does not fit`);
    return v;
  }
}

const USIZE_MAX = 0xffffffffffffffffn;

function read(r, type) {
  switch (type.kind) {
    case "u8":
      return r.byte();
    case "bool": {
      const b = r.byte();
      if (b > 1) throw new CodecError(`invalid bool ${b}`);
      return b === 1;
    }
    case "uint": {
      const v = r.varint(type.max);
      return type.big ? v : Number(v);
    }
    case "string": {
      const len = r.varint(USIZE_MAX);
      if (len > BigInt(r.bytes.length - r.pos)) throw new CodecError("string runs past the payload");
      try {
        return fromUtf8.decode(r.take(Number(len)));
      } catch {
        throw new CodecError("invalid UTF-8");
      }
    }
    case "option": {
      const tag = r.byte();
      if (tag === 0) return null;
      if (tag === 1) return read(r, type.inner);
      throw new CodecError(`invalid option tag ${tag}`);
    }
    case "vec": {
      const len = r.varint(USIZE_MAX);
      // Every element takes at least one byte: a longer count is a lie.
      if (len > BigInt(r.bytes.length - r.pos)) throw new CodecError("vector runs past the payload");
      const out = [];
      for (let i = 0n; i < len; i++) out.push(read(r, type.inner));
      return out;
    }
    case "struct": {
      const out = {};
      for (const [name, t] of type.fields) out[name] = read(r, t);
      return out;
    }
    case "enum": {
      const index = r.varint(0xffffffffn);
      const variant = type.variants[Number(index)];
      if (index >= BigInt(type.variants.length) || !variant) throw new CodecError(`unknown variant ${index}`);
      const out = { type: variant[0] };
      for (const [name, t] of variant[1]) out[name] = read(r, t);
      return out;
    }
    default:
      throw new CodecError(`unknown type ${type.kind}`);
  }
}

/** Decodes a payload holding exactly one value of `type`. */
export function decodePayload(type, payload) {
  const r = new Reader(payload);
  const value = read(r, type);
  if (r.pos !== payload.length) throw new CodecError(`${payload.length - r.pos} trailing bytes after the message`);
  return value;
}

/**
 * Decodes the frame at the start of `bytes`: `null` if it does not hold a whole frame yet,
 * else `{ value, used }`. Throws CodecError for an empty or oversized length (from the head
 * alone) or an invalid payload.
 */
export function decodeFrame(type, bytes, maxFrameLen = DEFAULT_MAX_FRAME_LEN) {
  if (bytes.length < HEADER_LEN) return null;
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, false);
  if (len === 0) throw new CodecError("empty frame");
  if (len > maxFrameLen) throw new CodecError(`frame of ${len} bytes exceeds the limit of ${maxFrameLen}`);
  if (bytes.length < HEADER_LEN + len) return null;
  const value = decodePayload(type, bytes.subarray(HEADER_LEN, HEADER_LEN + len));
  return { value, used: HEADER_LEN + len };
}

/** Hex of bytes, for logs and tests. */
export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Bytes of a hex string (spaces ignored). */
export function fromHex(hex) {
  const clean = hex.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}
