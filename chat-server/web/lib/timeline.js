// A conversation's timeline (pure, no DOM): stored messages with their edits and deletions
// (protocol version 2), and notices (moderation, topics) placed among the messages by id.
//
// A timeline is `{ messages: Map(id -> message), deletions: Map(id -> deletion), notices: [] }`
// (`newTimeline()`); a message as shown is the protocol's ChatMessage plus `edited` (bool) and
// `deleted` (null, or `{ by, redacted, reason }`: a tombstone, its text gone). Changes come
// live, in the offline backlog and in history pages, in any order relative to what is loaded:
// a change to a message not loaded yet is remembered (a later history page carries the latest
// text and marks, but not who deleted it or why).

export function newTimeline() {
  return { messages: new Map(), deletions: new Map(), notices: [], seq: 0 };
}

const UNKNOWN_DELETION = Object.freeze({ by: "", redacted: false, reason: "" });

/** Adds a delivered message; false if it is there already. */
export function addMessage(t, message, edited = false, deleted = false) {
  const id = message.id.toString();
  if (t.messages.has(id)) return false;
  const gone = t.deletions.get(id) ?? (deleted ? UNKNOWN_DELETION : null);
  t.messages.set(id, { ...message, text: gone ? "" : message.text, edited, deleted: gone });
  return true;
}

/** An `Edited` change: the message's new text; false if the message is not loaded or gone. */
export function applyEdit(t, { message, text }) {
  const m = t.messages.get(message.toString());
  if (!m || m.deleted) return false;
  m.text = text;
  m.edited = true;
  return true;
}

/** A `Deleted` change: the message becomes a tombstone (now, or when it is loaded). */
export function applyDelete(t, { message, by, redacted, reason }) {
  const id = message.toString();
  const deleted = { by, redacted, reason };
  t.deletions.set(id, deleted);
  const m = t.messages.get(id);
  if (!m) return false;
  m.deleted = deleted;
  m.text = "";
  return true;
}

/**
 * A history page (`PageEntry`s: `{ message, edited, deleted }`): adds what is new; marks a
 * loaded message deleted if the page says so. A loaded message keeps its text otherwise (it
 * got its changes live, possibly newer than the page). Returns how many messages were new.
 */
export function mergePage(t, entries) {
  let added = 0;
  for (const { message, edited, deleted } of entries) {
    if (addMessage(t, message, edited, deleted)) {
      added += 1;
      continue;
    }
    const m = t.messages.get(message.id.toString());
    if (deleted && !m.deleted) {
      m.deleted = t.deletions.get(message.id.toString()) ?? UNKNOWN_DELETION;
      m.text = "";
    }
  }
  return added;
}

/** The oldest loaded message's id (null if none): where the next history page starts. */
export function oldestId(t) {
  let oldest = null;
  for (const m of t.messages.values()) if (oldest === null || m.id < oldest) oldest = m.id;
  return oldest;
}

/** The newest loaded message's id (null if none): how far a conversation shown is read. */
export function newestId(t) {
  let newest = null;
  for (const m of t.messages.values()) if (newest === null || m.id > newest) newest = m.id;
  return newest;
}

/** A notice shown after every message with an id up to `after` (the newest id known then). */
export function addNotice(t, text, after, kind = "notice") {
  t.seq = (t.seq ?? 0) + 1;
  t.notices.push({ text, after: BigInt(after), seq: t.seq, kind });
}

/** The timeline in order: `{ kind: "message", message }` and `{ kind: "notice", notice }`. */
export function items(t) {
  const messages = [...t.messages.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const notices = [...t.notices].sort((a, b) => (a.after < b.after ? -1 : a.after > b.after ? 1 : a.seq - b.seq));
  const out = [];
  let n = 0;
  for (const message of messages) {
    while (n < notices.length && notices[n].after < message.id) out.push({ kind: "notice", notice: notices[n++] });
    out.push({ kind: "message", message });
  }
  while (n < notices.length) out.push({ kind: "notice", notice: notices[n++] });
  return out;
}

/** What a tombstone says. */
export function tombstone(deleted) {
  if (!deleted.redacted) return "message deleted";
  return deleted.reason ? `removed by a moderator: ${deleted.reason}` : "removed by a moderator";
}
