// Rendering helpers that never interpret message text as HTML: text becomes text nodes, URLs
// become links with rel="noopener noreferrer".
const URL_RE = /\bhttps?:\/\/[^\s<>"']+/g;

/** Appends `text` to `parent` as text nodes and safe links. */
export function appendText(parent, text) {
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    parent.append(document.createTextNode(text.slice(last, match.index)));
    const a = document.createElement("a");
    a.href = match[0];
    a.textContent = match[0];
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    parent.append(a);
    last = match.index + match[0].length;
  }
  parent.append(document.createTextNode(text.slice(last)));
}

/** An element with a class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** "14:05" for a time in Unix milliseconds (BigInt). */
export function clock(ms) {
  return new Date(Number(ms)).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
