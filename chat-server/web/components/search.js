// The search results panel (protocol version 2): the messages found, newest first, each with
// its conversation, sender, time and text (as text); "More" asks for older ones; a result
// opens its conversation.
import { appendText, el } from "../lib/format.js";
import { conversationKey } from "../lib/reads.js";

export class SearchPanel {
  /**
   * `actions`: `onMore()`, `onOpen(key, message)`, `onClose()`, `displayName(user)`, and
   * `me()`: the logged-in user.
   */
  constructor(actions) {
    this.actions = actions;
    this.panel = document.getElementById("search");
    this.title = document.getElementById("search-title");
    this.list = document.getElementById("search-results");
    this.more = document.getElementById("search-more");
    this.error = document.getElementById("search-error");
    this.more.addEventListener("click", () => actions.onMore());
    document.getElementById("search-close").addEventListener("click", () => actions.onClose());
    this.list.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      const li = event.target.closest("li.result");
      if (!li) return;
      const message = this.shown.find((m) => m.id.toString() === li.dataset.id);
      if (message) actions.onOpen(li.dataset.key, message);
    });
    this.shown = [];
  }

  /** Shows `search` (`lib/search.js`), or hides the panel if null. */
  render(search) {
    this.panel.hidden = !search;
    if (!search) {
      this.shown = [];
      return this.list.replaceChildren();
    }
    const count = search.results.length;
    this.title.textContent = search.loading && !count ? `Searching for “${search.text}”…`
      : `${count}${search.more ? "+" : ""} result${count === 1 ? "" : "s"} for “${search.text}”`;
    this.error.textContent = search.error;
    this.more.hidden = !search.more;
    this.more.disabled = search.loading;
    this.more.textContent = search.loading ? "Loading…" : "More";
    this.shown = search.results;
    this.list.replaceChildren(...search.results.map((m) => this.result(m)));
  }

  result(message) {
    const key = conversationKey(message.target, message.from, this.actions.me());
    const li = el("li", "result");
    li.dataset.id = message.id.toString();
    li.dataset.key = key;
    li.tabIndex = 0;
    li.setAttribute("role", "button");
    li.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        this.actions.onOpen(key, message);
      }
    });
    const head = el("div", "head");
    const at = new Date(Number(message.sent_at));
    const time = el("time", "time", at.toLocaleString([], { dateStyle: "short", timeStyle: "short" }));
    time.dateTime = at.toISOString();
    time.title = `message ${message.id} · ${at.toLocaleString()}`;
    head.append(el("span", "result-conv", key), el("span", "from", this.actions.displayName(message.from)), time);
    const text = el("div", "text");
    appendText(text, message.text);
    li.append(head, text);
    return li;
  }
}
