// node --test: read markers and unread counts (lib/reads.js), as the terminal client keeps
// them (chat-client/src/reads.rs), and search paging (lib/search.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  MAX_CONVERSATIONS, Reads, conversationKey, isUnread, unreadAfterMarker, unreadEntries,
} from "../lib/reads.js";
import { SEARCH_PAGE, addResults, newSearch, searchRequest } from "../lib/search.js";

test("marks only what is newer than the marker and than what was asked", () => {
  const reads = new Reads();
  assert.equal(reads.toMark("#general", null), null);
  assert.equal(reads.toMark("#general", 5n), 5n);
  reads.asked("#general", 5n);
  assert.equal(reads.toMark("#general", 5n), null, "asked already, not answered yet");
  assert.equal(reads.marker("#general"), 0n);
  reads.done("#general", 5n);
  assert.equal(reads.marker("#general"), 5n);
  assert.equal(reads.toMark("#general", 5n), null);
  assert.equal(reads.toMark("#general", 9n), 9n);
});

test("a marker never moves back", () => {
  const reads = new Reads();
  assert.equal(reads.marked("@bob", 7n), true);
  assert.equal(reads.marked("@bob", 3n), false);
  assert.equal(reads.marked("@bob", 7n), false);
  assert.equal(reads.marker("@bob"), 7n);
  assert.equal(reads.toMark("@bob", 6n), null);
  // Another device's marker past what this page asked for.
  reads.asked("@bob", 8n);
  reads.marked("@bob", 10n);
  assert.equal(reads.toMark("@bob", 9n), null);
  assert.equal(reads.toMark("@bob", 11n), 11n);
});

test("a failed mark may be asked again; the marker stays", () => {
  const reads = new Reads();
  reads.marked("#a", 4n);
  reads.asked("#a", 6n);
  reads.failed("#a", 6n);
  assert.equal(reads.marker("#a"), 4n);
  assert.equal(reads.toMark("#a", 6n), 6n);
  // A failure of an older request does not forget a newer one.
  reads.asked("#a", 8n);
  reads.failed("#a", 6n);
  assert.equal(reads.toMark("#a", 8n), null);
});

test("stays bounded", () => {
  const reads = new Reads();
  for (let i = 0; i < MAX_CONVERSATIONS + 10; i += 1) reads.marked(`@u${i}`, BigInt(i + 1));
  assert.equal(reads.known.size, MAX_CONVERSATIONS);
  assert.equal(reads.marker("@u0"), 0n, "the smallest marker forgotten");
  assert.equal(reads.marker(`@u${MAX_CONVERSATIONS + 9}`), BigInt(MAX_CONVERSATIONS + 10));
  reads.clear();
  assert.equal(reads.known.size, 0);
});

test("a direct message belongs to the other user", () => {
  assert.equal(conversationKey({ type: "User", name: "alice" }, "bob", "alice"), "@bob");
  assert.equal(conversationKey({ type: "User", name: "bob" }, "alice", "alice"), "@bob");
  assert.equal(conversationKey({ type: "Room", name: "rust" }, "bob", "alice"), "#rust");
});

test("unread: messages of others past the marker", () => {
  const m = (id, from, deleted = null) => ({ id, from, deleted });
  assert.equal(isUnread(m(5n, "bob"), "alice", 4n), true);
  assert.equal(isUnread(m(5n, "bob"), "alice", 5n), false);
  assert.equal(isUnread(m(5n, "alice"), "alice", 0n), false);
  const loaded = [m(3n, "bob"), m(5n, "bob"), m(6n, "alice"), m(7n, "bob", { by: "bob" }), m(8n, "carol")];
  // Another device read up to 4: 5 and 8 are still unread here, no more than counted before.
  assert.equal(unreadAfterMarker(9, loaded, 4n, "alice"), 2);
  assert.equal(unreadAfterMarker(1, loaded, 4n, "alice"), 1);
  assert.equal(unreadAfterMarker(9, loaded, 8n, "alice"), 0);
  assert.equal(unreadAfterMarker(3, [], 1n, "alice"), 0, "nothing loaded past the marker");
});

test("the server's Unread list by conversation key", () => {
  const counts = [
    { target: { type: "Room", name: "rust" }, read_up_to: 40n, unread: 2, latest: 42n },
    { target: { type: "User", name: "bob" }, read_up_to: 0n, unread: 0, latest: 0n },
  ];
  assert.deepEqual(unreadEntries(counts), [
    ["#rust", { readUpTo: 40n, unread: 2, latest: 42n }],
    ["@bob", { readUpTo: 0n, unread: 0, latest: 0n }],
  ]);
});

test("search pages: newest first, each message once, the next page before the oldest", () => {
  const s = newSearch("deploy friday");
  assert.deepEqual(searchRequest(s), { type: "Search", text: "deploy friday", before: null, limit: SEARCH_PAGE });
  const m = (id) => ({ id, from: "bob", target: { type: "Room", name: "ops" }, text: `deploy ${id}` });
  assert.equal(addResults(s, { messages: [m(9n), m(7n)], more: true }), 2);
  assert.equal(s.more, true);
  assert.deepEqual(searchRequest(s).before, 7n);
  assert.equal(addResults(s, { messages: [m(7n), m(3n)], more: false }), 1);
  assert.deepEqual(s.results.map((r) => r.id), [9n, 7n, 3n]);
  assert.equal(s.more, false);
  // A page adding nothing stops the paging, whatever it says.
  const t = newSearch("x");
  addResults(t, { messages: [m(5n)], more: true });
  addResults(t, { messages: [m(5n)], more: true });
  assert.equal(t.more, false);
});

test("a search may start before an id", () => {
  const s = newSearch("x", 100n);
  assert.equal(searchRequest(s).before, 100n);
  addResults(s, { messages: [{ id: 50n }], more: true });
  assert.equal(searchRequest(s).before, 50n);
});
