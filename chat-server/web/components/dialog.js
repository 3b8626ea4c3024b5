// A modal question in the page's one <dialog>: a reason, a topic, or a confirmation.
const dialog = () => document.getElementById("ask");

/**
 * Asks; resolves with the text typed (or "" without an input) when confirmed, null when
 * cancelled (Cancel, Escape). Every text is set as text, never as HTML.
 */
export function ask({ title, label = "", value = "", confirm = "OK", input = true, maxLength = 512 }) {
  const box = dialog();
  const form = document.getElementById("ask-form");
  const field = document.getElementById("ask-input");
  document.getElementById("ask-title").textContent = title;
  document.getElementById("ask-label-text").textContent = label;
  document.getElementById("ask-label").hidden = !input;
  document.getElementById("ask-ok").textContent = confirm;
  field.value = value;
  field.maxLength = maxLength;
  return new Promise((resolve) => {
    const done = (answer) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      box.removeEventListener("cancel", onCancel);
      if (box.open) box.close();
      resolve(answer);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      done(input ? field.value : "");
    };
    const onCancel = (event) => {
      event.preventDefault();
      done(null);
    };
    const cancel = document.getElementById("ask-cancel");
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    box.addEventListener("cancel", onCancel);
    box.showModal();
    if (input) {
      field.focus();
      field.select();
    } else {
      document.getElementById("ask-ok").focus();
    }
  });
}
