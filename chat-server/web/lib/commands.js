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
  "/help — this list",
];

/** A typed line: `{ kind: "text", text }`, a command, or `{ kind: "error", text }`. */
export function parse(line) {
  if (!line.startsWith("/") || line.startsWith("//")) {
    return { kind: "text", text: line.startsWith("//") ? line.slice(1) : line };
  }
  const [head, ...rest] = line.slice(1).split(/\s+/);
  const args = rest.filter(Boolean);
  const room = (name) => name?.replace(/^#/, "");
  switch (head.toLowerCase()) {
    case "join":
    case "j":
      return args[0] ? { kind: "join", room: room(args[0]) } : usage("/join ROOM");
    case "create":
      return args[0] ? { kind: "create", room: room(args[0]), inviteOnly: args[1] === "private" } : usage("/create ROOM [private]");
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
    case "help":
      return { kind: "help" };
    default:
      return { kind: "error", text: `Unknown command /${head}; try /help.` };
  }
}

function usage(text) {
  return { kind: "error", text: `Usage: ${text}` };
}
