// The login view: register or log in with a password.
export function mountLogin(client, onError) {
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const action = event.submitter?.value === "register" ? "register" : "login";
    error.textContent = "";
    const username = form.username.value.trim();
    const password = form.password.value;
    try {
      await client.login(action, username, password);
      form.password.value = "";
    } catch (e) {
      error.textContent = e.message;
      onError?.(e);
    }
  });
  return {
    show(reason) {
      document.getElementById("login").hidden = false;
      document.getElementById("chat").hidden = true;
      error.textContent = reason || "";
    },
    hide() {
      document.getElementById("login").hidden = true;
      document.getElementById("chat").hidden = false;
    },
  };
}
