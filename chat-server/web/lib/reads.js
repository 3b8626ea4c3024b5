// Read markers and unread counts (protocol version 2; pure, no DOM), as the terminal client
// keeps them (chat-client/src/reads.rs). Per conversation key ("#room", "@user"): the read
// marker heard of (the server's `Unread` at login, `ReadMarker` from the user's other devices,
// this page's own `MarkRead`s once answered) and the one asked for and not answered yet. A
// marker never moves back. Bounded: past MAX_CONVERSATIONS the smallest marker is forgotten.

export const MAX_CONVERSATIONS = 1024;

/** The conversation of a message or change from `me`'s point of view: "#room" or "@other". */
export function conversationKey(target, author, me) {
  if (target.type === "Room") return `#${target.name}`;
  return author === me ? `@${target.name}` : `@${author}`;
}

export class Reads {
  constructor() {
    this.known = new Map(); // key -> { marker, asked } (BigInt)
  }

  /** The read marker of `key` as far as this page knows (0n if none). */
  marker(key) {
    return this.known.get(key)?.marker ?? 0n;
  }

  /** `key` is read up to `upTo` (heard from the server); true if that moved the marker. */
  marked(key, upTo) {
    const k = this.entry(key);
    if (upTo <= k.marker) return false;
    k.marker = upTo;
    if (k.asked < upTo) k.asked = upTo;
    return true;
  }

  /**
   * What marking `key` read would ask for, its newest message shown being `newest` (null if
   * none): `newest` if past both the marker and what was asked for already, else null.
   */
  toMark(key, newest) {
    if (newest === null || newest === undefined) return null;
    const k = this.known.get(key);
    const floor = k ? (k.asked > k.marker ? k.asked : k.marker) : 0n;
    return newest > floor ? newest : null;
  }

  /** A MarkRead up to `upTo` was sent: not asked again until something newer is shown. */
  asked(key, upTo) {
    const k = this.entry(key);
    if (upTo > k.asked) k.asked = upTo;
  }

  /** The MarkRead up to `upTo` was answered `Done`. */
  done(key, upTo) {
    this.marked(key, upTo);
  }

  /** The MarkRead up to `upTo` failed: it may be asked again (the marker stays). */
  failed(key, upTo) {
    const k = this.known.get(key);
    if (k && k.asked === upTo) k.asked = k.marker;
  }

  /** Forgets everything (a logout). */
  clear() {
    this.known.clear();
  }

  entry(key) {
    let k = this.known.get(key);
    if (k) return k;
    if (this.known.size >= MAX_CONVERSATIONS) {
      let oldest = null;
      for (const [other, v] of this.known) if (oldest === null || v.marker < this.known.get(oldest).marker) oldest = other;
      this.known.delete(oldest);
    }
    k = { marker: 0n, asked: 0n };
    this.known.set(key, k);
    return k;
  }
}

/** Whether a delivered message counts as unread: another's, past the read marker. */
export function isUnread(message, me, marker) {
  return message.from !== me && message.id > marker;
}

/**
 * The unread count of a conversation once another device marked it read up to `upTo`: no more
 * than before, and no more than the loaded messages of others after the marker (`messages`:
 * the timeline's, deleted ones not counted). As the terminal client does.
 */
export function unreadAfterMarker(before, messages, upTo, me) {
  let after = 0;
  for (const m of messages) if (!m.deleted && isUnread(m, me, upTo)) after += 1;
  return Math.min(before, after);
}

/**
 * The server's `Unread` list as `[key, { readUpTo, unread, latest }]` pairs, direct
 * conversations keyed by the other user.
 */
export function unreadEntries(counts) {
  return counts.map((c) => [
    c.target.type === "Room" ? `#${c.target.name}` : `@${c.target.name}`,
    { readUpTo: c.read_up_to, unread: c.unread, latest: c.latest },
  ]);
}
