// node --test: what the page learns of roles, mutes and bans, what it offers, and its words;
// a conversation's timeline with edits, deletions and notices.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Standings, actionsOn, moderationRequest, moderationText, topicText,
} from "../lib/moderation.js";
import {
  newTimeline, addMessage, applyEdit, applyDelete, mergePage, addNotice, items, oldestId, tombstone,
} from "../lib/timeline.js";
import { ClientMessage, encodeFrame } from "../lib/chat-proto.js";

const mod = (by, user, action, reason = "") => ({ room: "mod", by, user, action: { type: action }, reason });

test("roles are learned from creation and from moderation events", () => {
  const s = new Standings();
  assert.deepEqual(s.get("mod", "alice"), { role: "Member", muted: false, banned: false });
  s.created("mod", "alice");
  assert.equal(s.get("mod", "alice").role, "Owner");
  s.moderated(mod("alice", "bob", "Opped"));
  assert.equal(s.get("mod", "bob").role, "Moderator");
  s.moderated(mod("alice", "bob", "Deopped"));
  assert.equal(s.get("mod", "bob").role, "Member");
  s.moderated(mod("alice", "bob", "Muted"));
  assert.equal(s.get("mod", "bob").muted, true);
  s.moderated(mod("alice", "bob", "Unmuted"));
  assert.equal(s.get("mod", "bob").muted, false);
  // A ban takes the moderator role away.
  s.moderated(mod("alice", "carol", "Opped"));
  s.moderated(mod("alice", "carol", "Banned", "spam"));
  assert.deepEqual(s.get("mod", "carol"), { role: "Member", muted: false, banned: true });
  assert.deepEqual(s.banned("mod"), ["carol"]);
  s.moderated(mod("alice", "carol", "Unbanned"));
  assert.deepEqual(s.banned("mod"), []);
  // Rooms are apart.
  assert.equal(s.get("other", "alice").role, "Member");
});

test("who acted is at least what the action needs, never lowered", () => {
  const s = new Standings();
  s.moderated(mod("dave", "bob", "Kicked"));
  assert.equal(s.get("mod", "dave").role, "Moderator");
  s.moderated(mod("erin", "bob", "Opped"));
  assert.equal(s.get("mod", "erin").role, "Owner");
  s.moderated(mod("erin", "bob", "Muted"));
  assert.equal(s.get("mod", "erin").role, "Owner");
  s.atLeast("mod", "frank", "Moderator");
  s.atLeast("mod", "frank", "Member");
  assert.equal(s.get("mod", "frank").role, "Moderator");
});

test("standings survive a round trip through storage; bad storage starts empty", () => {
  const s = new Standings();
  s.created("mod", "alice");
  s.moderated(mod("alice", "bob", "Muted"));
  s.moderated(mod("alice", "bob", "Unmuted")); // back to nothing known: not stored
  s.moderated(mod("alice", "carol", "Banned"));
  const saved = JSON.parse(JSON.stringify(s));
  assert.deepEqual(saved, { mod: { alice: { role: "Owner", muted: false, banned: false }, carol: { role: "Member", muted: false, banned: true } } });
  const back = new Standings(saved);
  assert.equal(back.get("mod", "alice").role, "Owner");
  assert.equal(back.get("mod", "carol").banned, true);
  assert.equal(new Standings({ mod: { x: { role: "King", muted: "yes" } } }).get("mod", "x").role, "Member");
  assert.equal(new Standings("nonsense").rooms.size, 0);
});

test("the actions offered follow the ranks: outrank whom you act on", () => {
  const s = new Standings();
  s.created("mod", "alice");
  s.moderated(mod("alice", "bob", "Opped"));
  assert.deepEqual(actionsOn(s, "mod", "alice", "carol"), ["Opped", "Muted", "Kicked", "Banned"]);
  assert.deepEqual(actionsOn(s, "mod", "alice", "bob"), ["Deopped", "Muted", "Kicked", "Banned"]);
  assert.deepEqual(actionsOn(s, "mod", "bob", "carol"), ["Muted", "Kicked", "Banned"]);
  assert.deepEqual(actionsOn(s, "mod", "bob", "alice"), []); // a moderator cannot act on the owner
  assert.deepEqual(actionsOn(s, "mod", "carol", "dave"), []); // a member has no actions
  assert.deepEqual(actionsOn(s, "mod", "alice", "alice"), []); // nobody acts on themselves
  s.moderated(mod("alice", "carol", "Muted"));
  assert.deepEqual(actionsOn(s, "mod", "bob", "carol"), ["Unmuted", "Kicked", "Banned"]);
  s.moderated(mod("alice", "carol", "Banned"));
  assert.deepEqual(actionsOn(s, "mod", "bob", "carol"), ["Unbanned"]);
});

test("each action becomes its request, which encodes", () => {
  const cases = [
    ["Opped", { type: "SetRole", room: "mod", user: "bob", role: { type: "Moderator" } }],
    ["Deopped", { type: "SetRole", room: "mod", user: "bob", role: { type: "Member" } }],
    ["Kicked", { type: "Kick", room: "mod", user: "bob", reason: "r" }],
    ["Banned", { type: "Ban", room: "mod", user: "bob", reason: "r" }],
    ["Unbanned", { type: "Unban", room: "mod", user: "bob" }],
    ["Muted", { type: "Mute", room: "mod", user: "bob", muted: true }],
    ["Unmuted", { type: "Mute", room: "mod", user: "bob", muted: false }],
  ];
  for (const [action, request] of cases) {
    assert.deepEqual(moderationRequest("mod", "bob", action, "r"), request);
    assert.ok(encodeFrame(ClientMessage, { type: "Request", id: 1, request }).length > 4);
  }
  assert.throws(() => moderationRequest("mod", "bob", "Redacted"));
});

test("moderation and topics in words, naming who acted and why", () => {
  const name = (u) => (u === "bob" ? "Bobby (bob)" : u);
  assert.equal(moderationText(mod("alice", "bob", "Kicked", "spam"), "carol", name), "alice kicked Bobby (bob) from #mod: spam");
  assert.equal(moderationText(mod("alice", "bob", "Muted"), "bob", name), "alice muted you in #mod");
  assert.equal(moderationText(mod("alice", "bob", "Opped"), "alice", name), "You made Bobby (bob) a moderator of #mod");
  assert.equal(moderationText(mod("alice", "bob", "Deopped"), "x"), "alice made bob a plain member of #mod");
  assert.equal(moderationText(mod("alice", "bob", "Banned", "<img src=x>"), "x"), "alice banned bob from #mod: <img src=x>");
  assert.equal(moderationText(mod("alice", "bob", "Unbanned"), "x"), "alice unbanned bob in #mod");
  assert.equal(moderationText(mod("alice", "bob", "Unmuted"), "x"), "alice unmuted bob in #mod");
  assert.equal(topicText({ room: "mod", topic: "be kind", by: "alice" }, "x"), "alice set the topic of #mod: be kind");
  assert.equal(topicText({ room: "mod", topic: "", by: "alice" }, "alice"), "You cleared the topic of #mod");
  assert.equal(topicText({ room: "mod", topic: "be kind", by: "" }, "x"), "Topic of #mod: be kind");
  assert.equal(topicText({ room: "mod", topic: "", by: "" }, "x"), null);
});

const msg = (id, text, from = "bob") => ({ id: BigInt(id), from, target: { type: "Room", name: "mod" }, sent_at: 1000n * BigInt(id), client_msg_id: BigInt(id), text });

test("edits and deletions change loaded messages; a tombstone says who removed it", () => {
  const t = newTimeline();
  assert.equal(addMessage(t, msg(10, "first")), true);
  assert.equal(addMessage(t, msg(10, "first")), false);
  assert.equal(applyEdit(t, { message: 10n, text: "second" }), true);
  assert.deepEqual([t.messages.get("10").text, t.messages.get("10").edited], ["second", true]);
  addMessage(t, msg(11, "spam"));
  assert.equal(applyDelete(t, { message: 11n, by: "alice", redacted: true, reason: "spam" }), true);
  assert.equal(t.messages.get("11").text, "");
  assert.equal(tombstone(t.messages.get("11").deleted), "removed by a moderator: spam");
  assert.equal(applyEdit(t, { message: 11n, text: "back" }), false); // a tombstone stays one
  applyDelete(t, { message: 10n, by: "bob", redacted: false, reason: "" });
  assert.equal(tombstone(t.messages.get("10").deleted), "message deleted");
  assert.equal(tombstone({ by: "alice", redacted: true, reason: "" }), "removed by a moderator");
  assert.equal(applyEdit(t, { message: 99n, text: "not loaded" }), false);
});

test("history pages bring tombstones and edit marks; a deletion seen first keeps its reason", () => {
  const t = newTimeline();
  // The offline backlog held only the Deleted change (a deleted message is not replayed).
  assert.equal(applyDelete(t, { message: 5n, by: "alice", redacted: true, reason: "rude" }), false);
  addMessage(t, msg(8, "live"));
  const page = [
    { message: msg(8, "live"), edited: false, deleted: false },
    { message: msg(7, "fixed"), edited: true, deleted: false },
    { message: msg(6, ""), edited: false, deleted: true },
    { message: msg(5, ""), edited: false, deleted: true },
  ];
  assert.equal(mergePage(t, page), 3);
  assert.equal(t.messages.get("7").edited, true);
  assert.equal(tombstone(t.messages.get("6").deleted), "message deleted");
  assert.equal(tombstone(t.messages.get("5").deleted), "removed by a moderator: rude");
  assert.equal(oldestId(t), 5n);
  // A page saying a loaded message is deleted makes it a tombstone.
  mergePage(t, [{ message: msg(8, ""), edited: false, deleted: true }]);
  assert.equal(t.messages.get("8").deleted !== null, true);
  assert.equal(t.messages.get("8").text, "");
  assert.equal(oldestId(newTimeline()), null);
});

test("notices sit among the messages by the newest id known when they came", () => {
  const t = newTimeline();
  addNotice(t, "before all", 0n);
  addMessage(t, msg(3, "a"));
  addMessage(t, msg(9, "c"));
  addNotice(t, "after 3", 5n);
  addNotice(t, "also after 3", 5n);
  addNotice(t, "at the end", 9n);
  addMessage(t, msg(4, "b")); // a history page loaded later: older than the notices after 5
  const order = items(t).map((i) => (i.kind === "message" ? i.message.text : i.notice.text));
  assert.deepEqual(order, ["before all", "a", "b", "after 3", "also after 3", "c", "at the end"]);
});

test("account actions read as words", () => {
  const entry = { room: "", by: "root", user: "mallory", action: { type: "Disabled" }, reason: "" };
  assert.equal(moderationText(entry, "alice"), "root disabled the account of mallory");
  assert.equal(moderationText({ ...entry, action: { type: "Enabled" } }, "root"), "You enabled the account of mallory");
});

test("a roster tells the page every member's role and mute", () => {
  const s = new Standings();
  s.set("rust", "bob", { role: "Moderator" });
  s.roster("rust", [
    { status: { user: "alice", display_name: "alice", online: true }, role: { type: "Owner" }, muted: false },
    { status: { user: "bob", display_name: "bob", online: false }, role: { type: "Member" }, muted: true },
  ]);
  assert.equal(s.get("rust", "alice").role, "Owner");
  assert.deepEqual([s.get("rust", "bob").role, s.get("rust", "bob").muted], ["Member", true]);
});
