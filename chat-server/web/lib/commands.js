// The CLI's /commands, parsed into actions (pure).
export const HELP = [
  "/join ROOM — join (or create) a room",
  "/create ROOM [private] — create a room, invite-only with 'private'",
  "/leave [ROOM] — leave a room",
  "/invite USER [ROOM] — invite someone to a room",
  "/msg USER [TEXT] — open a direct conversation (and send TEXT)",
  "/nick NAME — set your display name",
  "/who [ROOM] — list a room's members",
  "/rooms — list rooms",
  "/users — list users",
  "/topic [TEXT] — set (or clear) this room's topic (owner, moderators)",
  "/op NAME, /deop NAME — make a member a moderator, or not (owner)",
  "/kick NAME [REASON] — remove a member from this room; they may rejoin (moderators)",
  "/ban NAME [REASON], /unban NAME — keep someone out of this room, or let them back (moderators)",
  "/mute NAME, /unmute NAME — stop a member posting here, or let them (moderators)",
  "/edit ID TEXT — replace the text of your message ID (hover a message for its id)",
  "/delete ID — delete your message ID",
  "/redact ID [REASON] — remove any message of this room (moderators)",
  "/audit [ROOM|*] — recent moderation in a room, or * for accounts (moderators)",
  "/read — mark this conversation read (on your other devices too)",
  "/search [--before ID] TEXT — find messages with every word of TEXT in your conversations",
  "/disable NAME, /enable NAME — disable an account or enable it again (server operators)",
  "/help — this list",
];

/** The ModAction of each moderation command taking only a name. */
const BY_NAME = { op: "Opped", deop: "Deopped", unban: "Unbanned", mute: "Muted", unmute: "Unmuted" };
/** The ModAction of each moderation command taking a name and a reason. */
const WITH_REASON = { kick: "Kicked", ban: "Banned" };
const U64_MAX = 0xffffffffffffffffn;

/** A typed line: `{ kind: "text", text }`, a command, or `{ kind: "error", text }`. */
export function parse(line) {
  if (!line.startsWith("/") || line.startsWith("//")) {
    return { kind: "text", text: line.startsWith("//") ? line.slice(1) : line };
  }
  const [head, ...rest] = line.slice(1).split(/\s+/);
  const args = rest.filter(Boolean);
  const room = (name) => name?.replace(/^#/, "");
  // Everything after the command word and `skip` more words, as typed (inner spaces and lines
  // kept), trimmed.
  const after = (skip) => line.replace(new RegExp(`^\\/\\S+(\\s+\\S+){${skip}}\\s*`), "").trim();
  const name = head.toLowerCase();
  if (name in BY_NAME) {
    return args.length === 1 ? { kind: "moderate", action: BY_NAME[name], user: args[0], reason: "" } : usage(`/${name} NAME`);
  }
  if (name in WITH_REASON) {
    return args[0] ? { kind: "moderate", action: WITH_REASON[name], user: args[0], reason: after(1) } : usage(`/${name} NAME [REASON]`);
  }
  switch (name) {
    case "join":
    case "j":
      return args[0] ? { kind: "join", room: room(args[0]) } : usage("/join ROOM");
    case "create":
      return args[0] ? { kind: "create", room: room(args[0]), inviteOnly: args[1] === "private" || args[1] === "--invite-only" } : usage("/create ROOM [private]");
    case "leave":
    case "part":
      return { kind: "leave", room: room(args[0]) };
    case "invite":
      return args[0] ? { kind: "invite", user: args[0], room: room(args[1]) } : usage("/invite USER [ROOM]");
    case "msg":
    case "query": {
      if (!args[0]) return usage("/msg USER [TEXT]");
      const text = line.replace(/^\/\S+\s+\S+\s?/, "");
      return { kind: "msg", user: args[0], text };
    }
    case "nick":
      return args.length ? { kind: "nick", name: line.replace(/^\/\S+\s+/, "") } : usage("/nick NAME");
    case "who":
      return { kind: "who", room: room(args[0]) };
    case "rooms":
    case "list":
      return { kind: "rooms" };
    case "users":
      return { kind: "users" };
    case "topic":
      return { kind: "topic", topic: after(0) };
    case "edit": {
      const id = messageId(args[0]);
      return id !== null && args.length >= 2 ? { kind: "edit", id, text: after(1) } : usage("/edit ID TEXT");
    }
    case "delete": {
      const id = messageId(args[0]);
      return id !== null && args.length === 1 ? { kind: "delete", id } : usage("/delete ID");
    }
    case "redact": {
      const id = messageId(args[0]);
      return id !== null ? { kind: "redact", id, reason: after(1) } : usage("/redact ID [REASON]");
    }
    case "audit":
      if (args.length > 1) return usage("/audit [ROOM|*]");
      return args[0] === "*" ? { kind: "audit", server: true } : { kind: "audit", server: false, room: room(args[0]) };
    case "disable":
    case "enable":
      return args.length === 1 ? { kind: "disable", user: args[0], disabled: name === "disable" } : usage(`/${name} NAME`);
    case "read":
      return args.length ? usage("/read") : { kind: "read" };
    case "search": {
      if (args[0] === "--before") {
        const before = messageId(args[1]);
        return before !== null && args.length >= 3 ? { kind: "search", text: after(2), before } : usage("/search [--before ID] TEXT");
      }
      return args.length ? { kind: "search", text: after(0), before: null } : usage("/search [--before ID] TEXT");
    }
    case "help":
      return { kind: "help" };
    default:
      return { kind: "error", text: `Unknown command /${head}; try /help.` };
  }
}

/** A message id as typed ("42" or "#42"), as a BigInt; null if it is not one. */
export function messageId(word) {
  const digits = word?.replace(/^#/, "");
  if (!digits || !/^[0-9]{1,20}$/.test(digits)) return null;
  const id = BigInt(digits);
  return id <= U64_MAX ? id : null;
}

function usage(text) {
  return { kind: "error", text: `Usage: ${text}` };
}
