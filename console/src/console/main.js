// The admin console: sign-in, then one page per hash route (#/dashboard, #/users, ...).
// Nothing is stored in the browser: a reload signs in again through the refresh cookie.
import "../lib/style.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { signOut } from "../lib/api.js";
import { SignIn, useSession } from "../lib/signin.js";
import { connectSocket } from "../lib/socket.js";
import { html } from "../lib/ui.js";
import { Dashboard } from "./dashboard.js";
import { Audit, Claims, Decisions, Postbacks } from "./decisions.js";
import { Offers } from "./offers.js";
import { Risk } from "./risk.js";
import { UserDetail, Users } from "./users.js";

const PAGES = [
  ["dashboard", "Dashboard", Dashboard], ["users", "Users", Users], ["offers", "Offers", Offers],
  ["decisions", "Sales and payments", Decisions], ["claims", "Claims", Claims],
  ["postbacks", "Postback log", Postbacks], ["risk", "Risk", Risk], ["audit", "Audit log", Audit],
];

function useRoute() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return hash.replace(/^#\/?/, "").split("/");
}

function describe(frame) {
  const d = frame.data || {};
  if (frame.event === "offer:new") return `offer "${d.offer?.title ?? ""}"`;
  if (frame.event === "balance:updated") return `balance ${d.newBalance} (${d.reason})`;
  if (frame.event === "payment:status") return `payment ${d.paymentId} ${d.status}`;
  return "";
}

function Console({ user, onSignOut }) {
  const [name, id] = useRoute();
  const [feed, setFeed] = useState([]);
  const [socket, setSocket] = useState("offline");
  useEffect(() => {
    const ws = connectSocket((frame) => {
      if (["ready", "pong"].includes(frame.event)) return;
      setFeed((f) => [{ key: `${Date.now()}-${Math.random()}`, at: new Date().toISOString(), event: frame.event, text: describe(frame) }, ...f].slice(0, 50));
    }, setSocket);
    return () => ws.close();
  }, []);
  const pages = PAGES;
  const current = name === "users" && id ? null : pages.find(([key]) => key === name) || pages[0];
  const Page = current ? current[2] : null;
  return html`<div class="layout">
    <a class="skip" href="#main">Skip to content</a>
    <header>
      <strong>SaveBucks console</strong>
      <span>Signed in as ${user.name} (${user.role})</span>
      <span class=${`socket ${socket}`}>Live events: ${socket}</span>
      <button type="button" onClick=${onSignOut}>Sign out</button>
    </header>
    <nav aria-label="Sections"><ul>
      ${pages.map(([key, label]) => html`<li><a href=${`#/${key}`} aria-current=${current && current[0] === key ? "page" : undefined}>${label}</a></li>`)}
    </ul></nav>
    <main id="main" tabindex="-1">
      ${user.role !== "admin" && html`<p class="notice error" role="alert">This account is not an administrator: the API refuses the console's calls.</p>`}
      ${Page ? html`<${Page} feed=${feed} />` : html`<${UserDetail} id=${id} />`}
    </main>
  </div>`;
}

function App() {
  const [user, setUser] = useSession();
  if (user === undefined) return html`<p class="loading">Loading the console…</p>`;
  if (!user) return html`<${SignIn} title="SaveBucks console" onSignedIn=${setUser} />`;
  const out = async () => {
    await signOut().catch(() => {});
    setUser(null);
  };
  return html`<${Console} user=${user} onSignOut=${out} />`;
}

render(html`<${App} />`, document.getElementById("app"));
