// The sidebar: rooms and direct conversations with unread counts, members with online dots.
import { el } from "../lib/format.js";

export class Sidebar {
  constructor(state, onSelect) {
    this.state = state;
    this.onSelect = onSelect;
    this.rooms = document.getElementById("rooms");
    this.directs = document.getElementById("directs");
    this.members = document.getElementById("members");
    this.people = document.getElementById("people");
  }

  render() {
    const { convs, current } = this.state;
    const entries = [...convs.values()].sort((a, b) => a.key.localeCompare(b.key));
    this.rooms.replaceChildren(...entries.filter((c) => c.key.startsWith("#")).map((c) => this.item(c, current)));
    this.directs.replaceChildren(...entries.filter((c) => c.key.startsWith("@")).map((c) => this.item(c, current)));
    const conv = convs.get(current);
    const people = conv?.key.startsWith("#") ? conv.members ?? [] : [];
    const everyone = [...this.state.online.keys()].filter((u) => u !== this.state.user).sort();
    this.people.replaceChildren(...everyone.map((user) => this.person(user)));
    this.members.replaceChildren(...people.map((m) => {
      const li = el("li", "member");
      const online = this.state.online.get(m.user) ?? m.online;
      li.append(el("span", online ? "dot online" : "dot", ""), el("span", "", m.display_name && m.display_name !== m.user ? `${m.display_name} (${m.user})` : m.user));
      li.dataset.user = m.user;
      li.addEventListener("click", () => this.onSelect(`@${m.user}`));
      return li;
    }));
  }

  /** A user with their presence; a click opens the direct conversation. */
  person(user) {
    const li = el("li", "member");
    li.dataset.user = user;
    li.append(el("span", this.state.online.get(user) ? "dot online" : "dot", ""), el("span", "", this.state.displayName(user)));
    li.addEventListener("click", () => this.onSelect(`@${user}`));
    return li;
  }

  item(conv, current) {
    const li = el("li", conv.key === current ? "conv current" : "conv");
    li.dataset.key = conv.key;
    const name = el("span", "name", conv.key);
    li.append(name);
    if (conv.key.startsWith("@")) {
      const online = this.state.online.get(conv.key.slice(1));
      name.prepend(el("span", online ? "dot online" : "dot", ""));
    }
    if (conv.unread > 0) li.append(el("span", "unread", String(conv.unread)));
    li.addEventListener("click", () => this.onSelect(conv.key));
    return li;
  }
}
