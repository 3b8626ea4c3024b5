// The conversation: its title and topic, messages grouped by sender (edited ones marked,
// deleted ones as tombstones), notices of moderation among them, pending messages until
// stored, actions on a message (edit, delete, remove) on hover, focus or tap, history paged on
// scroll, the typing line; a "new messages" line where the unread messages began when it was
// opened.
import { appendText, clock, el } from "../lib/format.js";
import { items, tombstone } from "../lib/timeline.js";

const GROUP_MS = 5 * 60 * 1000;

export class Conversation {
  /**
   * `actions`: `onScrollTop()`, `onTopic()`, `onMessage(message, action)` with action
   * "edit" | "delete" | "redact", and `messageActions(message)`: the actions offered.
   */
  constructor(state, actions) {
    this.state = state;
    this.actions = actions;
    this.list = document.getElementById("messages");
    this.title = document.getElementById("title");
    this.topic = document.getElementById("topic");
    this.topicButton = document.getElementById("topic-button");
    this.typingLine = document.getElementById("typing");
    this.list.addEventListener("scroll", () => {
      if (this.list.scrollTop < 40) actions.onScrollTop();
    });
    this.topicButton.addEventListener("click", () => actions.onTopic());
    // One listener for every message's action buttons (the list is re-rendered often).
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      const li = event.target.closest("li.message");
      if (!li || !li.dataset.id) return;
      const conv = this.state.convs.get(this.state.current);
      const message = conv?.messages.get(li.dataset.id);
      if (!message) return;
      if (button) {
        actions.onMessage(message, button.dataset.action);
      } else if (!event.target.closest("a") && matchMedia("(hover: none)").matches) {
        // A tap shows a message's actions where nothing hovers (phones).
        this.state.selected = this.state.selected === li.dataset.id ? null : li.dataset.id;
        this.render();
      }
    });
  }

  render() {
    const conv = this.state.convs.get(this.state.current);
    this.title.textContent = conv ? conv.key : "";
    const room = conv?.key.startsWith("#") ? conv.key.slice(1) : null;
    const topic = room ? this.state.topics.get(room) ?? "" : "";
    this.topic.replaceChildren();
    appendText(this.topic, topic);
    this.topic.hidden = !topic;
    this.topicButton.hidden = !(room && this.actions.canSetTopic(room));
    if (!conv) return this.list.replaceChildren();
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    const oldHeight = this.list.scrollHeight;
    const oldTop = this.list.scrollTop;
    const rows = [];
    if (conv.more) rows.push(el("li", "more", conv.loading ? "loading…" : "scroll up for older messages"));
    let previous = null;
    let divider = conv.divider ?? null;
    const pending = [...conv.pending.values()].map((p) => ({ kind: "message", message: { ...p, from: this.state.user, pending: true } }));
    for (const item of [...items(conv), ...pending]) {
      if (item.kind === "notice") {
        rows.push(el("li", `notice-line ${item.notice.kind}`, item.notice.text));
        previous = null;
        continue;
      }
      const message = item.message;
      if (divider !== null && !message.pending && message.id > divider && message.from !== this.state.user) {
        const line = el("li", "divider", "new messages");
        line.setAttribute("role", "separator");
        rows.push(line);
        divider = null;
        previous = null;
      }
      rows.push(this.message(message, previous));
      previous = message;
    }
    this.list.replaceChildren(...rows);
    if (atBottom || this.stickToBottom) {
      this.list.scrollTop = this.list.scrollHeight;
      this.stickToBottom = false;
    } else if (this.keepPosition) {
      this.list.scrollTop = oldTop + (this.list.scrollHeight - oldHeight);
      this.keepPosition = false;
    }
    this.renderTyping();
  }

  message(message, previous) {
    const grouped = previous && previous.from === message.from && Number(message.sent_at) - Number(previous.sent_at) < GROUP_MS;
    const classes = ["message"];
    if (grouped) classes.push("grouped");
    if (message.pending) classes.push("pending");
    if (message.from === this.state.user) classes.push("mine");
    if (message.deleted) classes.push("deleted");
    if (message.edited) classes.push("edited");
    const id = message.pending ? undefined : message.id.toString();
    if (id !== undefined && this.state.selected === id) classes.push("selected");
    if (id !== undefined && this.state.found === id) classes.push("found");
    const li = el("li", classes.join(" "));
    if (id !== undefined) {
      li.dataset.id = id;
      li.dataset.from = message.from;
    }
    if (!grouped) {
      const head = el("div", "head");
      const time = el("time", "time", clock(message.sent_at));
      time.dateTime = new Date(Number(message.sent_at)).toISOString();
      if (id !== undefined) time.title = `message ${id} · ${new Date(Number(message.sent_at)).toLocaleString()}`;
      head.append(el("span", "from", this.state.displayName(message.from)), time);
      li.append(head);
    }
    const body = el("div", "body");
    if (message.deleted) {
      body.append(el("div", "tombstone", tombstone(message.deleted)));
    } else {
      const text = el("div", "text");
      appendText(text, message.text);
      body.append(text);
      if (message.edited) body.append(el("span", "edited-mark", "(edited)"));
    }
    li.append(body);
    if (message.pending) li.append(el("span", "state", "sending…"));
    const offered = id === undefined || message.deleted ? [] : this.actions.messageActions(message);
    if (offered.length) {
      const bar = el("div", "actions");
      for (const action of offered) {
        const button = el("button", `act act-${action}`, ACTION_LABELS[action]);
        button.type = "button";
        button.dataset.action = action;
        button.setAttribute("aria-label", `${ACTION_LABELS[action]} message ${id}`);
        bar.append(button);
      }
      li.append(bar);
    }
    return li;
  }

  /** Marks the message `id` (a string) found (a search result) and scrolls to it if loaded. */
  reveal(id) {
    this.state.found = id;
    for (const li of this.list.querySelectorAll("li.found")) li.classList.remove("found");
    const li = [...this.list.querySelectorAll("li.message")].find((m) => m.dataset.id === id);
    if (!li) return false;
    li.classList.add("found");
    li.scrollIntoView({ block: "center" });
    this.stickToBottom = false;
    return true;
  }

  renderTyping() {
    const typers = [...(this.state.typing.get(this.state.current) ?? new Set())];
    this.typingLine.textContent = typers.length === 0 ? ""
      : typers.length === 1 ? `${typers[0]} is typing…` : `${typers.join(", ")} are typing…`;
  }
}

const ACTION_LABELS = { edit: "Edit", delete: "Delete", redact: "Remove" };
