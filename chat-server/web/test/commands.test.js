// node --test: the /commands, parsed as the CLI parses them (chat-client/src/command.rs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parse, messageId, HELP } from "../lib/commands.js";
import { describe } from "../lib/client.js";

test("text, and a doubled slash for text starting with one", () => {
  assert.deepEqual(parse("hello /there"), { kind: "text", text: "hello /there" });
  assert.deepEqual(parse("//join is a command"), { kind: "text", text: "/join is a command" });
});

test("moderation commands taking a name", () => {
  const cases = { op: "Opped", deop: "Deopped", unban: "Unbanned", mute: "Muted", unmute: "Unmuted" };
  for (const [command, action] of Object.entries(cases)) {
    assert.deepEqual(parse(`/${command} bob`), { kind: "moderate", action, user: "bob", reason: "" });
    assert.deepEqual(parse(`/${command.toUpperCase()}  bob `), { kind: "moderate", action, user: "bob", reason: "" });
    assert.deepEqual(parse(`/${command}`), { kind: "error", text: `Usage: /${command} NAME` });
    assert.deepEqual(parse(`/${command} bob carol`), { kind: "error", text: `Usage: /${command} NAME` });
  }
});

test("kick and ban take a reason, as typed", () => {
  assert.deepEqual(parse("/kick bob"), { kind: "moderate", action: "Kicked", user: "bob", reason: "" });
  assert.deepEqual(parse("/kick bob  too  many links "), { kind: "moderate", action: "Kicked", user: "bob", reason: "too  many links" });
  assert.deepEqual(parse("/ban carol <b>spam</b>"), { kind: "moderate", action: "Banned", user: "carol", reason: "<b>spam</b>" });
  assert.deepEqual(parse("/ban"), { kind: "error", text: "Usage: /ban NAME [REASON]" });
  assert.deepEqual(parse("/kick"), { kind: "error", text: "Usage: /kick NAME [REASON]" });
});

test("topic sets, or clears without text", () => {
  assert.deepEqual(parse("/topic Rust and  more"), { kind: "topic", topic: "Rust and  more" });
  assert.deepEqual(parse("/topic"), { kind: "topic", topic: "" });
  assert.deepEqual(parse("/topic   "), { kind: "topic", topic: "" });
});

test("edit, delete and redact take a message id", () => {
  assert.deepEqual(parse("/edit 42 new text"), { kind: "edit", id: 42n, text: "new text" });
  assert.deepEqual(parse("/edit #42 two\nlines"), { kind: "edit", id: 42n, text: "two\nlines" });
  assert.deepEqual(parse("/edit 18446744073709551615 x"), { kind: "edit", id: 18446744073709551615n, text: "x" });
  assert.deepEqual(parse("/edit 42"), { kind: "error", text: "Usage: /edit ID TEXT" });
  assert.deepEqual(parse("/edit x text"), { kind: "error", text: "Usage: /edit ID TEXT" });
  assert.deepEqual(parse("/delete 7"), { kind: "delete", id: 7n });
  assert.deepEqual(parse("/delete"), { kind: "error", text: "Usage: /delete ID" });
  assert.deepEqual(parse("/delete 7 8"), { kind: "error", text: "Usage: /delete ID" });
  assert.deepEqual(parse("/delete -1"), { kind: "error", text: "Usage: /delete ID" });
  assert.deepEqual(parse("/redact 9"), { kind: "redact", id: 9n, reason: "" });
  assert.deepEqual(parse("/redact 9 off topic"), { kind: "redact", id: 9n, reason: "off topic" });
  assert.deepEqual(parse("/redact"), { kind: "error", text: "Usage: /redact ID [REASON]" });
});

test("message ids are u64", () => {
  assert.equal(messageId("0"), 0n);
  assert.equal(messageId("#12"), 12n);
  assert.equal(messageId("18446744073709551616"), null);
  assert.equal(messageId("1e3"), null);
  assert.equal(messageId(""), null);
  assert.equal(messageId(undefined), null);
});

test("the version-1 commands still parse", () => {
  assert.deepEqual(parse("/join #Rust"), { kind: "join", room: "Rust" });
  assert.deepEqual(parse("/create r --invite-only"), { kind: "create", room: "r", inviteOnly: true });
  assert.deepEqual(parse("/create r private"), { kind: "create", room: "r", inviteOnly: true });
  assert.deepEqual(parse("/msg bob hi  there"), { kind: "msg", user: "bob", text: "hi  there" });
  assert.deepEqual(parse("/nick Bob B"), { kind: "nick", name: "Bob B" });
  assert.deepEqual(parse("/leave"), { kind: "leave", room: undefined });
  assert.deepEqual(parse("/frobnicate"), { kind: "error", text: "Unknown command /frobnicate; try /help." });
});

test("help lists every command", () => {
  const help = HELP.join("\n");
  for (const command of ["/op", "/deop", "/kick", "/ban", "/unban", "/mute", "/unmute", "/topic", "/edit", "/delete", "/redact", "/join"]) {
    assert.ok(help.includes(command), command);
  }
});

test("errors in words: the server's text as a sentence, with hints", () => {
  assert.equal(describe({ type: "Forbidden" }, "you are muted in #mod"), "You are muted in #mod.");
  assert.equal(describe({ type: "Forbidden" }, "only the owner or a moderator sets the topic"), "Only the owner or a moderator sets the topic.");
  assert.equal(describe({ type: "Forbidden" }, ""), "You may not do that.");
  assert.equal(describe({ type: "NotAMember" }, "you are not in #x"), "You are not in #x (/join it first).");
  assert.equal(describe({ type: "NotAMember" }, "bob is not in #x"), "Bob is not in #x.");
  assert.equal(describe({ type: "RateLimited", retry_after_ms: 1500 }, "slow"), "Too fast: try again in 2 s.");
  assert.equal(describe({ type: "Unavailable", retry_after_ms: 1000 }, "disk"), "The server cannot store anything right now: try again in 1 s.");
  assert.equal(describe({ type: "BadRequest" }, "that message was deleted"), "That message was deleted.");
  assert.equal(describe({ type: "BadCredentials" }, "x"), "Wrong username or password.");
});

test("audit and account commands", () => {
  assert.deepEqual(parse("/audit"), { kind: "audit", server: false, room: undefined });
  assert.deepEqual(parse("/audit #rust"), { kind: "audit", server: false, room: "rust" });
  assert.deepEqual(parse("/audit *"), { kind: "audit", server: true });
  assert.equal(parse("/audit a b").kind, "error");
  assert.deepEqual(parse("/disable mallory"), { kind: "disable", user: "mallory", disabled: true });
  assert.deepEqual(parse("/enable mallory"), { kind: "disable", user: "mallory", disabled: false });
  assert.equal(parse("/disable").kind, "error");
});

test("read and search, as the terminal client parses them", () => {
  assert.deepEqual(parse("/read"), { kind: "read" });
  assert.deepEqual(parse("/READ "), { kind: "read" });
  assert.deepEqual(parse("/read now"), { kind: "error", text: "Usage: /read" });
  assert.deepEqual(parse("/search  deploy   friday "), { kind: "search", text: "deploy   friday", before: null });
  assert.deepEqual(parse("/search --before #42 deploy friday"), { kind: "search", text: "deploy friday", before: 42n });
  assert.deepEqual(parse("/search --before 42 4"), { kind: "search", text: "4", before: 42n });
  assert.deepEqual(parse("/search <b>x</b>"), { kind: "search", text: "<b>x</b>", before: null });
  for (const bad of ["/search", "/search   ", "/search --before", "/search --before 42", "/search --before x y", "/search --before 18446744073709551616 y"]) {
    assert.deepEqual(parse(bad), { kind: "error", text: "Usage: /search [--before ID] TEXT" }, bad);
  }
  const help = HELP.join("\n");
  assert.ok(help.includes("/read") && help.includes("/search [--before ID] TEXT"));
});
