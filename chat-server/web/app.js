// The browser chat client: wires the protocol client (lib/client.js) to the views
// (components/). State lives here; views render it.
import { ChatClient, keyOf, targetOf, describe } from "./lib/client.js";
import { parse, HELP } from "./lib/commands.js";
import { mountLogin } from "./components/login.js";
import { Sidebar } from "./components/sidebar.js";
import { Conversation } from "./components/conversation.js";

const HISTORY_PAGE = 50;
const TYPING_SHOWN_MS = 7000;

const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const client = new ChatClient({ url: `${scheme}//${location.host}/ws`, storage: localStorage });

const state = {
  user: null,
  convs: new Map(), // key -> { key, messages: Map(id -> message), pending: Map, unread, more, loading, members }
  current: null,
  online: new Map(),
  names: new Map(),
  typing: new Map(), // key -> Set(user)
  displayName(user) {
    const name = this.names.get(user);
    return name && name !== user ? `${name} (${user})` : user;
  },
};

const login = mountLogin(client);
const sidebar = new Sidebar(state, select);
const conversation = new Conversation(state, loadOlder);
const input = document.getElementById("input");
const notice = document.getElementById("notice");
const statusLine = document.getElementById("status");

function conv(key) {
  let c = state.convs.get(key);
  if (!c) {
    c = { key, messages: new Map(), pending: new Map(), unread: 0, more: true, loading: false, members: null, loaded: false };
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
}

function say(text) {
  notice.textContent = text;
}

/** The conversation a message belongs to, from this user's point of view. */
function keyOfMessage(m) {
  if (m.target.type === "Room") return keyOf(m.target);
  return m.from === state.user ? keyOf(m.target) : `@${m.from}`;
}

function addMessage(m) {
  const key = keyOfMessage(m);
  const c = conv(key);
  c.pending.delete(m.client_msg_id.toString());
  if (c.messages.has(m.id.toString())) return;
  c.messages.set(m.id.toString(), m);
  if (key !== state.current && m.from !== state.user) c.unread += 1;
  state.typing.get(key)?.delete(m.from);
}

async function select(key) {
  state.current = key;
  sessionStorage.setItem("chat.current", key);
  const c = conv(key);
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

async function refreshMembers(key) {
  try {
    const reply = await client.request({ type: "Who", room: key.slice(1) });
    conv(key).members = reply.members;
    for (const m of reply.members) {
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
  const ids = [...c.messages.values()].map((m) => m.id);
  const before = ids.length ? ids.reduce((a, b) => (a < b ? a : b)) : null;
  try {
    const reply = await client.request({ type: "History", target: targetOf(c.key), before, limit: HISTORY_PAGE });
    for (const m of reply.messages) {
      client.seen.add(m.id.toString());
      if (!c.messages.has(m.id.toString())) c.messages.set(m.id.toString(), m);
    }
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

async function refreshRooms() {
  const reply = await client.request({ type: "ListRooms" });
  for (const room of reply.rooms) if (room.joined) conv(`#${room.name}`);
  return reply.rooms;
}

async function refreshUsers() {
  const reply = await client.request({ type: "ListUsers" });
  for (const u of reply.users) {
    state.online.set(u.user, u.online);
    state.names.set(u.user, u.display_name);
  }
  return reply.users;
}

// ---- the client's events ---------------------------------------------------------------

client.addEventListener("status", ({ detail }) => {
  statusLine.textContent = detail.info ? `${detail.status}: ${detail.info}` : detail.status;
  statusLine.dataset.status = detail.status;
});

client.addEventListener("session", async ({ detail: session }) => {
  state.user = session.user;
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
  state.convs.clear();
  state.current = null;
  login.show(detail.reason);
});

client.addEventListener("message", ({ detail }) => {
  addMessage(detail);
  render();
});

client.addEventListener("sent", ({ detail }) => {
  addMessage(detail);
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
    state.convs.delete(key);
    if (state.current === key) state.current = null;
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
  }
});
input.addEventListener("input", () => {
  if (!state.current) return;
  const composing = input.value.length > 0 && !input.value.startsWith("/");
  client.typing(targetOf(state.current), composing);
});
document.getElementById("compose").addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});

async function submit() {
  const line = input.value;
  if (!line.trim()) return;
  input.value = "";
  say("");
  const action = parse(line);
  try {
    await run(action);
  } catch (e) {
    say(e.code ? describe(e.code, e.message) : e.message);
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
    case "join":
      await client.request({ type: "Join", room: action.room });
      conv(`#${action.room.toLowerCase()}`);
      return select(`#${action.room.toLowerCase()}`);
    case "create":
      await client.request({ type: "CreateRoom", room: action.room, invite_only: action.inviteOnly });
      return select(`#${action.room.toLowerCase()}`);
    case "leave": {
      const room = action.room ?? state.current?.slice(1);
      if (!room) return say("Usage: /leave ROOM");
      await client.request({ type: "Leave", room });
      state.convs.delete(`#${room}`);
      if (state.current === `#${room}`) state.current = null;
      render();
      return say(`You left #${room}.`);
    }
    case "invite": {
      const room = action.room ?? state.current?.slice(1);
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
      return say(`You are now ${action.name}.`);
    case "who": {
      const room = action.room ?? state.current?.slice(1);
      const reply = await client.request({ type: "Who", room });
      return say(`#${room}: ${reply.members.map((m) => `${m.user}${m.online ? " (online)" : ""}`).join(", ")}`);
    }
    case "rooms": {
      const rooms = await refreshRooms();
      render();
      return say(rooms.map((r) => `#${r.name} (${r.members}${r.invite_only ? ", invite-only" : ""}${r.joined ? ", joined" : ""})`).join("  "));
    }
    case "users": {
      const users = await refreshUsers();
      render();
      return say(users.map((u) => `${u.user}${u.online ? " (online)" : ""}`).join(", "));
    }
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
document.getElementById("logout").addEventListener("click", () => client.logout());
document.getElementById("menu").addEventListener("click", () => document.body.classList.toggle("menu-open"));

if (!client.token) login.show("");
client.start();
