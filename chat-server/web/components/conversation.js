// The conversation: messages grouped by sender, pending until stored, history paged on
// scroll, the typing line.
import { appendText, clock, el } from "../lib/format.js";

const GROUP_MS = 5 * 60 * 1000;

export class Conversation {
  constructor(state, onScrollTop) {
    this.state = state;
    this.list = document.getElementById("messages");
    this.title = document.getElementById("title");
    this.typingLine = document.getElementById("typing");
    this.list.addEventListener("scroll", () => {
      if (this.list.scrollTop < 40) onScrollTop();
    });
  }

  render() {
    const conv = this.state.convs.get(this.state.current);
    this.title.textContent = conv ? conv.key : "";
    if (!conv) return this.list.replaceChildren();
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    const oldHeight = this.list.scrollHeight;
    const oldTop = this.list.scrollTop;
    const items = [];
    if (conv.more) items.push(el("li", "more", conv.loading ? "loading…" : "scroll up for older messages"));
    let previous = null;
    const stored = [...conv.messages.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const pending = [...conv.pending.values()].map((p) => ({ ...p, from: this.state.user, pending: true }));
    for (const message of [...stored, ...pending]) {
      const grouped = previous && previous.from === message.from && Number(message.sent_at) - Number(previous.sent_at) < GROUP_MS;
      const li = el("li", `message${grouped ? " grouped" : ""}${message.pending ? " pending" : ""}${message.from === this.state.user ? " mine" : ""}`);
      if (message.id !== undefined) li.dataset.id = message.id.toString();
      if (!grouped) {
        const head = el("div", "head");
        head.append(el("span", "from", this.state.displayName(message.from)), el("time", "time", clock(message.sent_at)));
        li.append(head);
      }
      const body = el("div", "text");
      appendText(body, message.text);
      li.append(body);
      if (message.pending) li.append(el("span", "state", "sending…"));
      items.push(li);
      previous = message;
    }
    this.list.replaceChildren(...items);
    if (atBottom || this.stickToBottom) {
      this.list.scrollTop = this.list.scrollHeight;
      this.stickToBottom = false;
    } else if (this.keepPosition) {
      this.list.scrollTop = oldTop + (this.list.scrollHeight - oldHeight);
      this.keepPosition = false;
    }
    this.renderTyping();
  }

  renderTyping() {
    const typers = [...(this.state.typing.get(this.state.current) ?? new Set())];
    this.typingLine.textContent = typers.length === 0 ? ""
      : typers.length === 1 ? `${typers[0]} is typing…` : `${typers.join(", ")} are typing…`;
  }
}
