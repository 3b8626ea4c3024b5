// The sidebar: rooms (with their topics) and direct conversations with unread counts; the
// current room's members with online dots, role badges (owner, moderator, muted) and a small
// menu of moderation actions, and the users known to be banned; everyone else.
import { el } from "../lib/format.js";
import { ACTION_LABELS } from "../lib/moderation.js";

export class Sidebar {
  /**
   * `actions`: `onSelect(key)`, `onModerate(room, user, action)`, and `actionsOn(room, user)`:
   * the moderation actions offered.
   */
  constructor(state, actions) {
    this.state = state;
    this.actions = actions;
    this.rooms = document.getElementById("rooms");
    this.directs = document.getElementById("directs");
    this.members = document.getElementById("members");
    this.people = document.getElementById("people");
    // A click anywhere but in an open menu closes it; so does Escape.
    document.addEventListener("click", (event) => {
      if (this.state.menuFor && !event.target.closest(".member-menu, .menu-button")) this.closeMenu();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.state.menuFor) this.closeMenu();
    });
  }

  closeMenu() {
    const user = this.state.menuFor;
    this.state.menuFor = null;
    this.render();
    this.members.querySelector(`.menu-button[data-user="${CSS.escape(user)}"]`)?.focus();
  }

  render() {
    const { convs, current } = this.state;
    const entries = [...convs.values()].sort((a, b) => a.key.localeCompare(b.key));
    this.rooms.replaceChildren(...entries.filter((c) => c.key.startsWith("#")).map((c) => this.item(c, current)));
    this.directs.replaceChildren(...entries.filter((c) => c.key.startsWith("@")).map((c) => this.item(c, current)));
    const conv = convs.get(current);
    const room = conv?.key.startsWith("#") ? conv.key.slice(1) : null;
    const people = room ? conv.members ?? [] : [];
    const everyone = [...this.state.online.keys()].filter((u) => u !== this.state.user).sort();
    this.people.replaceChildren(...everyone.map((user) => this.person(user)));
    const banned = room ? this.state.standings.banned(room).filter((u) => !people.some((m) => m.user === u)) : [];
    this.members.replaceChildren(
      ...people.map((m) => this.member(room, m.user, this.state.online.get(m.user) ?? m.online)),
      ...banned.map((user) => this.member(room, user, false)),
    );
    if (this.state.menuFor && !people.some((m) => m.user === this.state.menuFor) && !banned.includes(this.state.menuFor)) {
      this.state.menuFor = null;
    }
  }

  /** A member of `room` (or a user banned from it): name, badges, and the moderation menu. */
  member(room, user, online) {
    const li = el("li", "member");
    li.dataset.user = user;
    const standing = this.state.standings.get(room, user);
    const name = el("button", "who");
    name.type = "button";
    name.title = `Write to ${user}`;
    name.append(el("span", online ? "dot online" : "dot", ""), el("span", "name", this.state.displayName(user)));
    name.addEventListener("click", () => this.actions.onSelect(`@${user}`));
    li.append(name);
    const badges = [];
    if (standing.role !== "Member") badges.push(standing.role.toLowerCase());
    if (standing.muted) badges.push("muted");
    if (standing.banned) badges.push("banned");
    for (const badge of badges) li.append(el("span", `badge badge-${badge}`, badge));
    const offered = this.actions.actionsOn(room, user);
    if (offered.length) {
      const open = this.state.menuFor === user;
      const button = el("button", "menu-button", "⋯");
      button.type = "button";
      button.dataset.user = user;
      button.setAttribute("aria-label", `Moderate ${user}`);
      button.setAttribute("aria-expanded", String(open));
      button.setAttribute("aria-controls", `moderate-${user}`);
      button.addEventListener("click", () => {
        this.state.menuFor = open ? null : user;
        this.render();
        if (!open) this.members.querySelector(".member-menu button")?.focus();
      });
      li.append(button);
      if (open) {
        // A disclosure: the button shows or hides a list of buttons.
        const menu = el("ul", "member-menu");
        menu.id = `moderate-${user}`;
        menu.setAttribute("aria-label", `Moderate ${user}`);
        for (const action of offered) {
          const item = el("li");
          const b = el("button", `menu-item act-${action}`, ACTION_LABELS[action]);
          b.type = "button";
          b.dataset.action = action;
          b.addEventListener("click", () => {
            this.state.menuFor = null;
            this.render();
            this.actions.onModerate(room, user, action);
          });
          item.append(b);
          menu.append(item);
        }
        li.append(menu);
      }
    }
    return li;
  }

  /** A user with their presence; a click opens the direct conversation. */
  person(user) {
    const li = el("li", "member");
    li.dataset.user = user;
    li.append(el("span", this.state.online.get(user) ? "dot online" : "dot", ""), el("span", "", this.state.displayName(user)));
    li.addEventListener("click", () => this.actions.onSelect(`@${user}`));
    return li;
  }

  item(conv, current) {
    const li = el("li", conv.key === current ? "conv current" : "conv");
    li.dataset.key = conv.key;
    const label = el("span", "label");
    const name = el("span", "name", conv.key);
    label.append(name);
    if (conv.key.startsWith("@")) {
      const online = this.state.online.get(conv.key.slice(1));
      name.prepend(el("span", online ? "dot online" : "dot", ""));
    } else {
      const topic = this.state.topics.get(conv.key.slice(1));
      if (topic) {
        const line = el("span", "room-topic", topic.split("\n")[0]);
        line.title = topic;
        label.append(line);
      }
    }
    li.append(label);
    if (conv.unread > 0) li.append(el("span", "unread", String(conv.unread)));
    li.addEventListener("click", () => this.actions.onSelect(conv.key));
    return li;
  }
}
