// What this browser knows of rooms' roles, mutes and bans (protocol version 2), and
// moderation events in words. Pure: no DOM.
//
// The protocol has no request that lists roles: a client learns them from what it sees. It
// knows it owns a room it created, and every `Moderated` event tells what changed (`Opped`,
// `Muted`, `Banned`, …) and, by who acted, a lower bound of the actor's rank (only an owner
// grants or takes the moderator role; only a moderator kicks, bans, mutes, redacts or sets the
// topic). A server operator acting in a room is counted as its owner. What was learned is
// kept (the app stores it per user), so a reload does not forget it; the server's answer stays
// the only authority (a refused action is reported as the server words it).

export const RANK = { Member: 0, Moderator: 1, Owner: 2 };
const NONE = Object.freeze({ role: "Member", muted: false, banned: false });

export class Standings {
  /** From `toJSON`'s output (anything else starts empty). */
  constructor(saved) {
    this.rooms = new Map();
    if (saved && typeof saved === "object") {
      for (const [room, users] of Object.entries(saved)) {
        const map = new Map();
        for (const [user, s] of Object.entries(users ?? {})) {
          const role = s?.role in RANK ? s.role : "Member";
          map.set(user, { role, muted: s?.muted === true, banned: s?.banned === true });
        }
        this.rooms.set(room, map);
      }
    }
  }

  /** A user's standing in a room: `{ role, muted, banned }` (a plain member if unknown). */
  get(room, user) {
    return this.rooms.get(room)?.get(user) ?? NONE;
  }

  rank(room, user) {
    return RANK[this.get(room, user).role];
  }

  set(room, user, patch) {
    let users = this.rooms.get(room);
    if (!users) this.rooms.set(room, (users = new Map()));
    const next = { ...this.get(room, user), ...patch };
    if (next.role === "Member" && !next.muted && !next.banned) users.delete(user);
    else users.set(user, next);
  }

  /** Raises a user's known role to at least `role` (never lowers it). */
  atLeast(room, user, role) {
    if (user && RANK[role] > this.rank(room, user)) this.set(room, user, { role });
  }

  /**
   * Learns a room's roles and mutes from a `Roster` (the version-2 answer to `Who`): the
   * server's word replaces what the page had inferred, bans excepted (a roster lists members).
   */
  roster(room, members) {
    for (const { status, role, muted } of members) {
      this.set(room, status.user, { role: role.type, muted });
    }
  }

  /** The user created the room: its owner. */
  created(room, user) {
    this.set(room, user, { role: "Owner" });
  }

  /** Learns from a `Moderated` event. */
  moderated({ room, by, user, action }) {
    const act = action.type;
    this.atLeast(room, by, act === "Opped" || act === "Deopped" ? "Owner" : "Moderator");
    switch (act) {
      case "Banned":
        // A ban also takes away a moderator role.
        this.set(room, user, { banned: true, role: "Member" });
        break;
      case "Unbanned":
        this.set(room, user, { banned: false });
        break;
      case "Muted":
        this.set(room, user, { muted: true });
        break;
      case "Unmuted":
        this.set(room, user, { muted: false });
        break;
      case "Opped":
        this.set(room, user, { role: "Moderator" });
        break;
      case "Deopped":
        this.set(room, user, { role: "Member" });
        break;
      default:
        break; // Kicked changes no standing; Redacted is only in the audit log.
    }
  }

  /** The users known to be banned from a room, sorted. */
  banned(room) {
    return [...(this.rooms.get(room) ?? new Map())].filter(([, s]) => s.banned).map(([u]) => u).sort();
  }

  toJSON() {
    const out = {};
    for (const [room, users] of this.rooms) {
      if (users.size) out[room] = Object.fromEntries(users);
    }
    return out;
  }
}

/**
 * What `me` may do to `user` in `room`, as far as this browser knows: a list of ModAction
 * names. An actor must outrank the user acted on; the owner alone grants or takes the moderator
 * role; a banned user (not a member) can only be unbanned.
 */
export function actionsOn(standings, room, me, user) {
  if (!me || user === me) return [];
  const mine = standings.rank(room, me);
  const theirs = standings.get(room, user);
  if (mine < RANK.Moderator || RANK[theirs.role] >= mine) return [];
  if (theirs.banned) return ["Unbanned"];
  const out = [];
  if (mine >= RANK.Owner) out.push(theirs.role === "Moderator" ? "Deopped" : "Opped");
  out.push(theirs.muted ? "Unmuted" : "Muted", "Kicked", "Banned");
  return out;
}

/** The request that carries out `action` on `user` in `room`. */
export function moderationRequest(room, user, action, reason = "") {
  switch (action) {
    case "Opped":
    case "Deopped":
      return { type: "SetRole", room, user, role: { type: action === "Opped" ? "Moderator" : "Member" } };
    case "Kicked":
      return { type: "Kick", room, user, reason };
    case "Banned":
      return { type: "Ban", room, user, reason };
    case "Unbanned":
      return { type: "Unban", room, user };
    case "Muted":
    case "Unmuted":
      return { type: "Mute", room, user, muted: action === "Muted" };
    default:
      throw new Error(`no request for ${action}`);
  }
}

/** A menu label for an action. */
export const ACTION_LABELS = {
  Opped: "Make moderator",
  Deopped: "Make plain member",
  Muted: "Mute",
  Unmuted: "Unmute",
  Kicked: "Kick…",
  Banned: "Ban…",
  Unbanned: "Unban",
};

/** The actions that ask for a reason first. */
export const WITH_REASON = new Set(["Kicked", "Banned"]);

/**
 * A `Moderated` event in words, naming the moderator and the reason: "alice kicked bob: spam".
 * `name` shows a username (e.g. with its display name); `me` becomes "you".
 */
export function moderationText({ room, by, user, action, reason }, me, name = (u) => u) {
  const who = user === me ? "you" : name(user);
  const done = {
    Kicked: `kicked ${who} from #${room}`,
    Banned: `banned ${who} from #${room}`,
    Unbanned: `unbanned ${who} in #${room}`,
    Muted: `muted ${who} in #${room}`,
    Unmuted: `unmuted ${who} in #${room}`,
    Opped: `made ${who} a moderator of #${room}`,
    Deopped: `made ${who} a plain member of #${room}`,
    Redacted: `removed a message of ${who} in #${room}`,
    Disabled: `disabled the account of ${who}`,
    Enabled: `enabled the account of ${who}`,
  }[action.type] ?? `acted on ${who} in #${room}`;
  const actor = by === me ? "You" : name(by);
  return reason ? `${actor} ${done}: ${reason}` : `${actor} ${done}`;
}

/** A `Topic` event in words; null for the topic told on joining an untitled room. */
export function topicText({ room, topic, by }, me, name = (u) => u) {
  if (!by) return topic ? `Topic of #${room}: ${topic}` : null;
  const actor = by === me ? "You" : name(by);
  return topic ? `${actor} set the topic of #${room}: ${topic}` : `${actor} cleared the topic of #${room}`;
}
