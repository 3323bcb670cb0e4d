// Sign-in form and the session on start, shared by the console and the demo page.
import { useEffect, useState } from "preact/hooks";
import { me, renew, session, signIn } from "./api.js";
import { Field, Input, Notice, html } from "./ui.js";

export function SignIn({ title, onSignedIn, hint, preset }) {
  const [form, setForm] = useState(preset || { email: "", password: "" });
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    try {
      onSignedIn(await signIn(form.email, form.password));
    } catch (err) {
      setError(err);
    }
  };
  return html`<main class="signin"><form onSubmit=${submit} aria-labelledby="signin-h">
    <h1 id="signin-h">${title}</h1>
    ${hint}
    <${Field} label="Email"><${Input} type="email" autocomplete="username" required value=${form.email} onInput=${(v) => setForm({ ...form, email: v })} /><//>
    <${Field} label="Password"><${Input} type="password" autocomplete="current-password" required value=${form.password} onInput=${(v) => setForm({ ...form, password: v })} /><//>
    <${Notice} error=${error} />
    <button type="submit">Sign in</button>
  </form></main>`;
}

// The session on start: a valid refresh cookie signs the admin in again (reload, new tab).
export function useSession() {
  const [user, setUser] = useState(undefined);
  useEffect(() => {
    renew().then((ok) => (ok ? me() : null)).then(setUser, () => setUser(null));
    // A session that ends on its own (refresh refused: revoked, expired, account blocked)
    // brings the sign-in form back instead of pages that can no longer load.
    return session.onChange((token) => { if (!token) setUser(null); });
  }, []);
  return [user, setUser];
}

