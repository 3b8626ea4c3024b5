// The browser chat client: wires the protocol client (lib/client.js) to the views
// (components/). State lives here; views render it.
import { ChatClient, keyOf, targetOf } from "./lib/client.js";
import { nodeUrls } from "./lib/rotation.js";
import { parse, HELP } from "./lib/commands.js";
import {
  ACTION_LABELS, RANK, Standings, WITH_REASON, actionsOn, moderationRequest, moderationText, topicText,
} from "./lib/moderation.js";
import {
  addMessage as addToTimeline, addNotice, applyDelete, applyEdit, mergePage, newTimeline, newestId, oldestId,
} from "./lib/timeline.js";
import { Reads, conversationKey, isUnread, unreadAfterMarker, unreadEntries } from "./lib/reads.js";
import { addResults, newSearch, searchRequest } from "./lib/search.js";
import { mountLogin } from "./components/login.js";
import { Sidebar } from "./components/sidebar.js";
import { Conversation } from "./components/conversation.js";
import { SearchPanel } from "./components/search.js";
import { ask } from "./components/dialog.js";

const HISTORY_PAGE = 50;
const TYPING_SHOWN_MS = 7000;
const REASON_MAX = 256;
const TOPIC_MAX = 512;
const DELETIONS_KEPT = 500;
// A conversation shown is marked read this long after it changed (one MarkRead for a burst).
const MARK_DELAY_MS = 400;

const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const client = new ChatClient({ urls: nodeUrls(`${scheme}//${location.host}/ws`, await peers()), storage: localStorage });

/** Other nodes' WebSocket URLs to fail over to, as this node names them (none if it cannot). */
async function peers() {
  try {
    const response = await fetch("/peers", { cache: "no-cache" });
    return response.ok ? (await response.json()).peers : [];
  } catch {
    return [];
  }
}

const state = {
  user: null,
  // key -> { key, messages, deletions, notices (lib/timeline.js), pending: Map, unread, more,
  // loading, members, loaded, divider: the read marker when opened with unread messages }
  convs: new Map(),
  current: null,
  online: new Map(),
  names: new Map(),
  typing: new Map(), // key -> Set(user)
  topics: new Map(), // room -> topic
  standings: new Standings(), // what this browser knows of roles, mutes and bans
  // message id -> { by, redacted, reason } of deletions seen (a history page only says
  // "deleted"), the newest few kept per user
  deletions: new Map(),
  latest: 0n, // the newest message id seen anywhere: where a notice goes among the messages
  reads: new Reads(), // read markers (version 2), lib/reads.js
  search: null, // the search shown (lib/search.js), or null
  editing: null, // { key, id } while the input edits a message
  menuFor: null, // the member whose moderation menu is open
  selected: null, // the message whose actions a tap showed
  found: null, // the search result opened (a message id, a string)
  displayName(user) {
    const name = this.names.get(user);
    return name && name !== user ? `${name} (${user})` : user;
  },
};

const login = mountLogin(client);
const sidebar = new Sidebar(state, {
  onSelect: select,
  onModerate: moderate,
  actionsOn: (room, user) => (client.version >= 2 ? actionsOn(state.standings, room, state.user, user) : []),
});
const conversation = new Conversation(state, {
  onScrollTop: loadOlder,
  onTopic: editTopic,
  onMessage: (message, action) => messageAction(message, action).catch((e) => say(e.message)),
  messageActions,
  canSetTopic: (room) => client.version >= 2 && state.standings.rank(room, state.user) >= RANK.Moderator,
});
const searchPanel = new SearchPanel({
  onMore: () => searchPage(),
  onOpen: (key, message) => openResult(key, message),
  onClose: () => {
    state.search = null;
    searchPanel.render(null);
  },
  displayName: (user) => state.displayName(user),
  me: () => state.user,
});
const input = document.getElementById("input");
const notice = document.getElementById("notice");
const statusLine = document.getElementById("status");
const editingBar = document.getElementById("editing");
const sendButton = document.getElementById("send");

function conv(key) {
  let c = state.convs.get(key);
  if (!c) {
    c = { key, ...newTimeline(), pending: new Map(), unread: 0, more: true, loading: false, members: null, loaded: false };
    state.convs.set(key, c);
    if (key.startsWith("@") && state.user) {
      const directs = new Set(JSON.parse(localStorage.getItem(`chat.directs.${state.user}`) || "[]"));
      directs.add(key);
      localStorage.setItem(`chat.directs.${state.user}`, JSON.stringify([...directs]));
    }
  }
  return c;
}

function render() {
  sidebar.render();
  conversation.render();
  scheduleMark();
}

function say(text) {
  notice.textContent = text;
}

function noteId(id) {
  if (id > state.latest) state.latest = id;
}

function currentRoom() {
  return state.current?.startsWith("#") ? state.current.slice(1) : null;
}

function loadStandings(user) {
  try {
    state.standings = new Standings(JSON.parse(localStorage.getItem(`chat.standings.${user}`) || "{}"));
  } catch {
    state.standings = new Standings();
  }
}

function saveStandings() {
  if (state.user) localStorage.setItem(`chat.standings.${state.user}`, JSON.stringify(state.standings));
}

function loadDeletions(user) {
  try {
    state.deletions = new Map(JSON.parse(localStorage.getItem(`chat.deletions.${user}`) || "[]"));
  } catch {
    state.deletions = new Map();
  }
}

function recordDeletion({ message, by, redacted, reason }) {
  const id = message.toString();
  state.deletions.delete(id);
  state.deletions.set(id, { by, redacted, reason });
  while (state.deletions.size > DELETIONS_KEPT) state.deletions.delete(state.deletions.keys().next().value);
  if (state.user) localStorage.setItem(`chat.deletions.${state.user}`, JSON.stringify([...state.deletions]));
}

/** The conversation of a message or a change, from this user's point of view. */
function keyOfConversation(target, author) {
  return conversationKey(target, author, state.user);
}

function addMessage(m) {
  noteId(m.id);
  const key = keyOfConversation(m.target, m.from);
  const c = conv(key);
  c.pending.delete(m.client_msg_id.toString());
  if (!addToTimeline(c, m)) return;
  // Unread: another's message past the read marker (a backlog message another device read
  // already is not), in a conversation not open.
  if (key !== state.current && isUnread(m, state.user, state.reads.marker(key))) c.unread += 1;
  state.typing.get(key)?.delete(m.from);
}

/** Leaves the conversation `key` from the view (left, kicked, banned). */
function dropConversation(key) {
  state.convs.delete(key);
  if (state.editing?.key === key) stopEditing();
  if (state.current === key) {
    state.current = null;
    const fallback = client.welcome?.default_room ? `#${client.welcome.default_room}` : null;
    const next = fallback && state.convs.has(fallback) ? fallback : [...state.convs.keys()][0];
    if (next) select(next);
  }
}

async function select(key) {
  if (state.editing && state.editing.key !== key) stopEditing();
  const previous = state.convs.get(state.current);
  if (previous && previous.key !== key) {
    // Leaving a conversation shown marks it read up to what was shown.
    if (viewing()) markRead(previous.key, false);
    previous.divider = null;
  }
  state.current = key;
  state.selected = null;
  state.found = null;
  state.menuFor = null;
  sessionStorage.setItem("chat.current", key);
  const c = conv(key);
  // A "new messages" line after the read marker, if it was opened with unread messages.
  if (previous?.key !== key) c.divider = c.unread > 0 ? state.reads.marker(key) : null;
  c.unread = 0;
  document.body.classList.remove("menu-open");
  conversation.stickToBottom = true;
  render();
  if (!c.loaded) {
    c.loaded = true;
    await loadOlder();
  }
  if (key.startsWith("#")) refreshMembers(key);
  input.focus();
}

/** The members of a `Who` answer, learning their roles from a version-2 `Roster`. */
function memberStatuses(reply) {
  if (reply.type !== "Roster") return reply.members;
  state.standings.roster(reply.room, reply.members);
  saveStandings();
  return reply.members.map((m) => m.status);
}

async function refreshMembers(key) {
  try {
    const reply = await client.request({ type: "Who", room: key.slice(1) });
    const c = state.convs.get(key);
    if (!c) return;
    c.members = memberStatuses(reply);
    for (const m of c.members) {
      state.online.set(m.user, m.online);
      state.names.set(m.user, m.display_name);
    }
    render();
  } catch (e) {
    say(e.message);
  }
}

async function loadOlder() {
  const c = state.convs.get(state.current);
  if (!c || c.loading || !c.more || !client.loggedIn) return;
  c.loading = true;
  const before = oldestId(c);
  try {
    const reply = await client.request({ type: "History", target: targetOf(c.key), before, limit: HISTORY_PAGE });
    // A version-2 server answers with a Page (latest texts, edited and deleted marks).
    const entries = reply.type === "Page" ? reply.messages : reply.messages.map((message) => ({ message, edited: false, deleted: false }));
    for (const { message, deleted } of entries) {
      const id = message.id.toString();
      client.seen.add(id);
      noteId(message.id);
      if (deleted && state.deletions.has(id) && !c.deletions.has(id)) c.deletions.set(id, state.deletions.get(id));
    }
    mergePage(c, entries);
    c.more = reply.more;
    conversation.keepPosition = before !== null;
    if (before === null) conversation.stickToBottom = true;
  } catch (e) {
    c.more = false;
    say(e.message);
  } finally {
    c.loading = false;
    render();
  }
}

/** The rooms (with topics from a version-2 server); the sidebar follows the joined ones. */
async function refreshRooms() {
  let rooms;
  if (client.version >= 2) {
    const reply = await client.request({ type: "RoomList" });
    rooms = reply.rooms.map((entry) => {
      state.topics.set(entry.info.name, entry.topic);
      return { ...entry.info, topic: entry.topic, unread: entry.unread };
    });
  } else {
    rooms = (await client.request({ type: "ListRooms" })).rooms;
  }
  const joined = new Set(rooms.filter((r) => r.joined).map((r) => `#${r.name}`));
  for (const key of joined) conv(key);
  // A version-2 server counts each room's unread messages in full: the page's count follows.
  for (const r of rooms) {
    const key = `#${r.name}`;
    if (r.joined && r.unread !== undefined && key !== state.current) conv(key).unread = r.unread;
  }
  // Rooms left, or kicked or banned from, while this page was away.
  for (const key of [...state.convs.keys()]) if (key.startsWith("#") && !joined.has(key)) dropConversation(key);
  return rooms;
}

async function refreshUsers() {
  const reply = await client.request({ type: "ListUsers" });
  for (const u of reply.users) {
    state.online.set(u.user, u.online);
    state.names.set(u.user, u.display_name);
  }
  return reply.users;
}

// ---- read markers and search (version 2) -----------------------------------------------

/** Whether the user sees the page: visible and focused. */
function viewing() {
  return document.visibilityState === "visible" && document.hasFocus();
}

let markTimer = null;

/** Marks the conversation shown read a little later, if the user is looking at it then. */
function scheduleMark() {
  if (markTimer !== null || !state.current || client.version < 2 || !client.caughtUp) return;
  markTimer = setTimeout(() => {
    markTimer = null;
    if (state.current && viewing()) markRead(state.current, false);
  }, MARK_DELAY_MS);
}

/**
 * Marks `key` read up to its newest message shown, if that moves the marker (`asked`: the
 * user typed /read, and is told the outcome).
 */
function markRead(key, asked) {
  const c = state.convs.get(key);
  const upTo = c && client.caughtUp ? state.reads.toMark(key, newestId(c)) : null;
  if (upTo === null) {
    if (asked) say(`Nothing new to mark read in ${key}.`);
    return;
  }
  state.reads.asked(key, upTo);
  client.request({ type: "MarkRead", target: targetOf(key), up_to: upTo })
    .then(() => {
      state.reads.done(key, upTo);
      if (asked) say(`${key} is marked read.`);
    })
    .catch((e) => {
      // After a reconnect it is asked again; a refusal is not (until something newer shows).
      if (e.code?.type === "Closed") state.reads.failed(key, upTo);
      if (asked || e.code?.type !== "Closed") say(`Marking ${key} read: ${e.message}`);
    });
}

window.addEventListener("focus", () => scheduleMark());
document.addEventListener("visibilitychange", () => scheduleMark());

/** Starts a search for `text` (older than `before`, if given) and shows its first page. */
function startSearch(text, before = null) {
  if (client.version < 2) return say("This server does not search (it speaks protocol version 1).");
  state.search = newSearch(text.trim(), before);
  return searchPage();
}

/** The next page of the search shown. */
async function searchPage() {
  const s = state.search;
  if (!s || s.loading) return;
  s.loading = true;
  s.error = "";
  searchPanel.render(s);
  try {
    const reply = await client.request(searchRequest(s));
    addResults(s, reply);
  } catch (e) {
    s.error = `Search: ${e.message}`;
    s.more = false;
  } finally {
    s.loading = false;
    if (state.search === s) searchPanel.render(s);
  }
}

/** Opens the conversation of a search result, showing the message if it is loaded. */
async function openResult(key, message) {
  await select(key);
  conversation.reveal(message.id.toString());
}

// ---- edits, deletions, moderation -------------------------------------------------------

/** The actions offered on a stored message: own ones edited or deleted, any removed by a moderator. */
function messageActions(message) {
  if (client.version < 2 || !state.user) return [];
  const actions = message.from === state.user ? ["edit", "delete"] : [];
  const room = message.target.type === "Room" ? message.target.name : null;
  if (room && message.from !== state.user && state.standings.rank(room, state.user) >= RANK.Moderator) actions.push("redact");
  return actions;
}

async function messageAction(message, action) {
  say("");
  if (action === "edit") return startEditing(message);
  if (action === "delete") {
    const ok = await ask({ title: "Delete this message? Its text is erased for everyone.", input: false, confirm: "Delete" });
    if (ok !== null) await client.change(message, { type: "Delete" });
  } else if (action === "redact") {
    const reason = await ask({ title: `Remove ${message.from}'s message?`, label: "Reason, shown in its place (may be empty)", confirm: "Remove", maxLength: REASON_MAX });
    if (reason !== null) await client.change(message, { type: "Redact", reason: reason.trim() });
  }
}

/** A loaded message by id, in any conversation. */
function findMessage(id) {
  for (const c of state.convs.values()) {
    const m = c.messages.get(id.toString());
    if (m) return m;
  }
  return null;
}

/** /edit, /delete, /redact by id: the message need not be loaded here. */
async function changeById(id, what) {
  const m = findMessage(id);
  if (m) {
    if (m.deleted) return say(`Message ${id} was deleted.`);
    await client.change(m, what);
    return;
  }
  const request = what.type === "Edit" ? { type: "Edit", message: id, text: what.text }
    : what.type === "Delete" ? { type: "Delete", message: id } : { type: "Redact", message: id, reason: what.reason };
  await client.request(request);
  say(`Message ${id}: done.`);
}

function startEditing(message) {
  state.editing = { key: keyOfConversation(message.target, message.from), id: message.id };
  input.value = message.text;
  editingBar.hidden = false;
  sendButton.textContent = "Save";
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

function stopEditing() {
  if (!state.editing) return;
  state.editing = null;
  editingBar.hidden = true;
  sendButton.textContent = "Send";
  input.value = "";
}

async function moderate(room, user, action) {
  say("");
  let reason = "";
  if (WITH_REASON.has(action)) {
    const verb = action === "Kicked" ? "Kick" : "Ban";
    const answer = await ask({
      title: `${verb} ${user} from #${room}?`,
      label: "Reason, shown to the room (may be empty)",
      confirm: verb,
      maxLength: REASON_MAX,
    });
    if (answer === null) return;
    reason = answer.trim();
  }
  try {
    await client.request(moderationRequest(room, user, action, reason));
  } catch (e) {
    say(`${ACTION_LABELS[action].replace("…", "")}: ${e.message}`);
  }
}

async function editTopic() {
  const room = currentRoom();
  if (!room) return;
  const topic = await ask({
    title: `Topic of #${room}`,
    label: "Topic (empty clears it)",
    value: state.topics.get(room) ?? "",
    confirm: "Set topic",
    maxLength: TOPIC_MAX,
  });
  if (topic === null) return;
  try {
    await client.request({ type: "SetTopic", room, topic });
  } catch (e) {
    say(e.message);
  }
}

// ---- the client's events ---------------------------------------------------------------

client.addEventListener("status", ({ detail }) => {
  statusLine.textContent = detail.info ? `${detail.status}: ${detail.info}` : detail.status;
  statusLine.dataset.status = detail.status;
});

client.addEventListener("session", async ({ detail: session }) => {
  state.user = session.user;
  loadStandings(session.user);
  loadDeletions(session.user);
  state.names.set(session.user, session.display_name);
  document.getElementById("me").textContent = state.display_name = session.display_name;
  login.hide();
});

client.addEventListener("caughtup", async () => {
  try {
    await refreshRooms();
    await refreshUsers();
    for (const key of JSON.parse(localStorage.getItem(`chat.directs.${state.user}`) || "[]")) conv(key);
    if (!state.current) {
      const last = sessionStorage.getItem("chat.current");
      const fallback = client.welcome?.default_room ? `#${client.welcome.default_room}` : [...state.convs.keys()][0];
      const first = last && (state.convs.has(last) || last.startsWith("@")) ? last : fallback;
      if (first) await select(first);
    } else if (state.current.startsWith("#")) {
      refreshMembers(state.current);
    }
  } catch (e) {
    say(e.message);
  }
  render();
});

client.addEventListener("loggedout", ({ detail }) => {
  state.user = null;
  state.reads.clear();
  state.search = null;
  searchPanel.render(null);
  state.convs.clear();
  state.current = null;
  state.topics.clear();
  state.standings = new Standings();
  state.deletions = new Map();
  stopEditing();
  login.show(detail.reason);
});

// Right after login, before the backlog: the server's unread counts and read markers.
client.addEventListener("unread", ({ detail }) => {
  for (const [key, { readUpTo, unread }] of unreadEntries(detail.counts)) {
    state.reads.marked(key, readUpTo);
    if (unread === 0 && !state.convs.has(key) && key.startsWith("@")) continue;
    conv(key).unread = key === state.current ? 0 : unread;
  }
  render();
});

// Another device of this user read a conversation: what it read is not unread here.
client.addEventListener("readmarker", ({ detail }) => {
  const key = keyOf(detail.target);
  state.reads.marked(key, detail.up_to);
  const c = state.convs.get(key);
  if (c) c.unread = unreadAfterMarker(c.unread, c.messages.values(), state.reads.marker(key), state.user);
  render();
});

client.addEventListener("message", ({ detail }) => {
  addMessage(detail);
  render();
});

client.addEventListener("sent", ({ detail }) => {
  addMessage(detail);
  render();
});

client.addEventListener("edited", ({ detail }) => {
  noteId(detail.id);
  applyEdit(conv(keyOfConversation(detail.target, detail.from)), detail);
  render();
});

client.addEventListener("deleted", ({ detail }) => {
  noteId(detail.id);
  if (detail.redacted && detail.target.type === "Room") {
    state.standings.atLeast(detail.target.name, detail.by, "Moderator");
    saveStandings();
  }
  recordDeletion(detail);
  // Only an author deletes a direct message, so `by` names the other side of the conversation.
  applyDelete(conv(keyOfConversation(detail.target, detail.by)), detail);
  if (state.editing && state.editing.id === detail.message) {
    stopEditing();
    say("The message you were editing was deleted.");
  }
  render();
});

client.addEventListener("moderated", ({ detail }) => {
  state.standings.moderated(detail);
  saveStandings();
  const key = `#${detail.room}`;
  const text = moderationText(detail, state.user, (u) => state.displayName(u));
  const removed = detail.action.type === "Kicked" || detail.action.type === "Banned";
  const c = state.convs.get(key);
  if (removed && detail.user === state.user) {
    dropConversation(key);
    say(text);
  } else if (c) {
    addNotice(c, text, state.latest, "moderation");
    if (removed && c.members) c.members = c.members.filter((m) => m.user !== detail.user);
  } else {
    say(text);
  }
  render();
});

client.addEventListener("topic", ({ detail }) => {
  state.topics.set(detail.room, detail.topic);
  if (detail.by) {
    state.standings.atLeast(detail.room, detail.by, "Moderator");
    saveStandings();
    const text = topicText(detail, state.user, (u) => state.displayName(u));
    const c = state.convs.get(`#${detail.room}`);
    if (c && text) addNotice(c, text, state.latest, "topic");
  }
  render();
});

client.addEventListener("displayname", ({ detail }) => {
  state.names.set(detail.user, detail.display_name);
  if (detail.user === state.user) document.getElementById("me").textContent = detail.display_name;
  render();
});

client.addEventListener("pending", ({ detail }) => {
  conv(keyOf(detail.target)).pending.set(detail.client_msg_id.toString(), detail);
  conversation.stickToBottom = true;
  render();
});

client.addEventListener("failed", ({ detail }) => {
  conv(keyOf(detail.entry.target)).pending.delete(detail.entry.client_msg_id.toString());
  say(detail.error.message);
  render();
});

client.addEventListener("notice", ({ detail }) => say(detail.text));

client.addEventListener("presence", ({ detail }) => {
  state.online.set(detail.user, detail.online);
  render();
});

const typingTimers = new Map();
client.addEventListener("typing", ({ detail }) => {
  const key = detail.target.type === "Room" ? keyOf(detail.target) : `@${detail.user}`;
  const set = state.typing.get(key) ?? new Set();
  state.typing.set(key, set);
  const timer = `${key} ${detail.user}`;
  clearTimeout(typingTimers.get(timer));
  if (detail.active) {
    set.add(detail.user);
    typingTimers.set(timer, setTimeout(() => {
      set.delete(detail.user);
      conversation.renderTyping();
    }, TYPING_SHOWN_MS));
  } else {
    set.delete(detail.user);
  }
  conversation.renderTyping();
});

client.addEventListener("member", ({ detail }) => {
  const key = `#${detail.room}`;
  if (detail.user === state.user && detail.event.type === "Left") {
    dropConversation(key);
  } else if (detail.user === state.user && detail.event.type === "Invited") {
    say(`${detail.event.by} invited you to #${detail.room}: /join ${detail.room}`);
  } else if (state.convs.has(key) && state.current === key) {
    refreshMembers(key);
  }
  render();
});

// ---- input -------------------------------------------------------------------------------

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  } else if (event.key === "Escape" && state.editing) {
    event.preventDefault();
    stopEditing();
  }
});
input.addEventListener("input", () => {
  if (!state.current || state.editing) return;
  const composing = input.value.length > 0 && !input.value.startsWith("/");
  client.typing(targetOf(state.current), composing);
});
document.getElementById("compose").addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});
document.getElementById("cancel-edit").addEventListener("click", () => {
  stopEditing();
  input.focus();
});

async function submit() {
  const line = input.value;
  if (!line.trim()) return;
  say("");
  if (state.editing) return saveEdit(line);
  input.value = "";
  try {
    await run(parse(line));
  } catch (e) {
    say(e.message);
  }
}

async function saveEdit(text) {
  const { key, id } = state.editing;
  const message = state.convs.get(key)?.messages.get(id.toString());
  if (!message || message.deleted) {
    stopEditing();
    return say("That message is gone.");
  }
  if (text === message.text) return stopEditing();
  try {
    await client.change(message, { type: "Edit", text });
    stopEditing();
  } catch (e) {
    say(e.message);
  }
}

async function run(action) {
  switch (action.kind) {
    case "text":
      if (!state.current) return say("Join a room first: /join ROOM");
      client.sendText(targetOf(state.current), action.text);
      return;
    case "error":
      return say(action.text);
    case "help":
      return say(HELP.join("\n"));
    case "join": {
      // Creating it first tells whether this user made the room (and so owns it).
      let reply;
      try {
        reply = await client.request({ type: "CreateRoom", room: action.room, invite_only: false });
        state.standings.created(reply.room.name, state.user);
        saveStandings();
      } catch (e) {
        if (e.code?.type !== "RoomExists") throw e;
        reply = await client.request({ type: "Join", room: action.room });
      }
      conv(`#${reply.room.name}`);
      return select(`#${reply.room.name}`);
    }
    case "create": {
      const reply = await client.request({ type: "CreateRoom", room: action.room, invite_only: action.inviteOnly });
      state.standings.created(reply.room.name, state.user);
      saveStandings();
      conv(`#${reply.room.name}`);
      return select(`#${reply.room.name}`);
    }
    case "leave": {
      const room = action.room ?? currentRoom();
      if (!room) return say("Usage: /leave ROOM");
      await client.request({ type: "Leave", room });
      dropConversation(`#${room.toLowerCase()}`);
      render();
      return say(`You left #${room}.`);
    }
    case "invite": {
      const room = action.room ?? currentRoom();
      if (!room) return say("Usage: /invite USER ROOM");
      await client.request({ type: "Invite", room, user: action.user });
      return say(`Invited ${action.user} to #${room}.`);
    }
    case "msg":
      conv(`@${action.user}`);
      await select(`@${action.user}`);
      if (action.text) client.sendText({ type: "User", name: action.user }, action.text);
      return;
    case "nick":
      await client.request({ type: "SetDisplayName", display_name: action.name });
      state.names.set(state.user, action.name);
      document.getElementById("me").textContent = action.name;
      render();
      return say(`You are now ${action.name}.`);
    case "who": {
      const room = action.room ?? currentRoom();
      if (!room) return say("Usage: /who ROOM");
      const reply = await client.request({ type: "Who", room });
      const role = (u) => {
        const s = state.standings.get(reply.room, u);
        return [s.role !== "Member" ? s.role.toLowerCase() : "", s.muted ? "muted" : ""].filter(Boolean);
      };
      return say(`#${reply.room}: ${memberStatuses(reply).map((m) => {
        const marks = [...role(m.user), m.online ? "online" : ""].filter(Boolean);
        return marks.length ? `${m.user} (${marks.join(", ")})` : m.user;
      }).join(", ")}`);
    }
    case "rooms": {
      const rooms = await refreshRooms();
      render();
      return say(rooms.map((r) => `#${r.name} (${r.members}${r.invite_only ? ", invite-only" : ""}${r.joined ? ", joined" : ""})${r.topic ? ` — ${r.topic}` : ""}`).join("\n"));
    }
    case "users": {
      const users = await refreshUsers();
      render();
      return say(users.map((u) => `${u.user}${u.online ? " (online)" : ""}`).join(", "));
    }
    case "moderate": {
      const room = currentRoom();
      if (!room) return say(`Open a room first: /${action.action === "Opped" ? "op" : "kick"} acts in the current room.`);
      await client.request(moderationRequest(room, action.user, action.action, action.reason));
      return; // The Moderated event that follows shows it.
    }
    case "topic": {
      const room = currentRoom();
      if (!room) return say("Open a room first: /topic sets the current room's topic.");
      await client.request({ type: "SetTopic", room, topic: action.topic });
      return;
    }
    case "edit":
      return changeById(action.id, { type: "Edit", text: action.text });
    case "delete":
      return changeById(action.id, { type: "Delete" });
    case "redact":
      return changeById(action.id, { type: "Redact", reason: action.reason });
    case "audit": {
      const room = action.server ? null : action.room ?? currentRoom();
      if (!action.server && !room) return say("Usage: /audit ROOM, or /audit * for accounts");
      const reply = await client.request({ type: "AuditLog", room, before: null, limit: 20 });
      if (!reply.entries.length) return say("The log is empty.");
      const lines = [...reply.entries].reverse().map((e) =>
        `[${e.position}] ${new Date(Number(e.at)).toLocaleString()} ${moderationText(e, state.user, (u) => state.displayName(u))}`);
      if (reply.more) lines.push("Older entries exist.");
      return say(lines.join("\n"));
    }
    case "read":
      if (client.version < 2) return say("This server does not keep read markers (it speaks protocol version 1).");
      if (!state.current) return say("Open a conversation first: /read marks it read.");
      return markRead(state.current, true);
    case "search":
      return startSearch(action.text, action.before);
    case "disable":
      await client.request({ type: "SetDisabled", user: action.user, disabled: action.disabled });
      return say(`${action.user}'s account is ${action.disabled ? "disabled" : "enabled"}.`);
    default:
      return say("?");
  }
}

document.getElementById("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = document.getElementById("join-name").value.trim();
  if (name) run({ kind: "join", room: name.replace(/^#/, "") }).catch((e) => say(e.message));
});
document.getElementById("create-private").addEventListener("click", () => {
  const name = document.getElementById("join-name").value.trim();
  if (name) run({ kind: "create", room: name.replace(/^#/, ""), inviteOnly: true }).catch((e) => say(e.message));
});
document.getElementById("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = document.getElementById("search-text").value.trim();
  if (text) startSearch(text).catch((e) => say(e.message));
});
document.getElementById("logout").addEventListener("click", () => client.logout());
document.getElementById("menu").addEventListener("click", () => document.body.classList.toggle("menu-open"));

if (!client.token) login.show("");
client.start();
