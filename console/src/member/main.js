// The member demo page (development): sign in as a demo member, start offers, watch the balance
// and the pending balance move live, read notifications, chat, and withdraw.
import "../lib/style.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, idempotencyKey, me, signOut } from "../lib/api.js";
import { SignIn, useSession } from "../lib/signin.js";
import { connectSocket } from "../lib/socket.js";
import { Field, Input, Notice, Select, html, money, when } from "../lib/ui.js";

// What `savebucks seed-demo` creates (common/commands/seed_demo.py).
const DEMO = [["Alice", "alice@savebucks.local"], ["Bob", "bob@savebucks.local"]];
const DEMO_PASSWORD = "demo-user-password";

function Offers() {
  const [offers, setOffers] = useState([]);
  const [links, setLinks] = useState({});
  const [error, setError] = useState(null);
  useEffect(() => { api.get("/api/offers", { limit: 20 }).then((j) => setOffers(j.data), setError); }, []);
  const start = async (o) => {
    try {
      const j = await api.post(`/api/offers/${o.id}/click`);
      setLinks({ ...links, [o.id]: j.data.url });
    } catch (e) { setError(e); }
  };
  return html`<section aria-labelledby="offers-h"><h2 id="offers-h">Offers</h2>
    <${Notice} error=${error} />
    <ul class="offers">${offers.map((o) => html`<li key=${o.id}>
      <strong>${o.title}</strong> <span>${o.category}</span> <span>earn ${money(o.payout)}</span>
      <button type="button" onClick=${() => start(o)}>Start</button>
      ${links[o.id] && html`<a href=${links[o.id]} rel="noopener noreferrer" target="_blank">Open the offer</a>`}
    </li>`)}</ul>
  </section>`;
}

function Chat({ socket, live, messages }) {
  const [room, setRoom] = useState(null);
  const [history, setHistory] = useState([]);
  const [text, setText] = useState("");
  useEffect(() => {
    api.get("/api/chat/rooms").then((j) => {
      const first = j.data[0];
      if (!first) return;
      setRoom(first);
      api.get(`/api/chat/rooms/${first.id}/messages`, { limit: 30 }).then((m) => setHistory(m.data));
    });
  }, []);
  // (Re)join whenever the socket is (again) ready: a reconnected socket starts in no room.
  useEffect(() => { if (room && socket && live) socket.send("chat:join", { roomId: room.id }); }, [room, socket, live]);
  const send = (e) => {
    e.preventDefault();
    if (!text.trim() || !room) return;
    socket.send("chat:send", { roomId: room.id, content: text, type: "text" });
    setText("");
  };
  const shown = [...history, ...messages.filter((m) => room && m.roomId === room.id && !history.some((h) => h.id === m.id))];
  return html`<section aria-labelledby="chat-h"><h2 id="chat-h">Chat${room ? `: ${room.name}` : ""}</h2>
    <ol class="chat" aria-live="polite">${shown.map((m) => html`<li key=${m.id}><strong>${m.user?.name ?? m.userId}</strong>: <span class="content">${m.content}</span></li>`)}</ol>
    <form onSubmit=${send} class="row">
      <${Field} label="Message"><${Input} value=${text} maxlength="2000" onInput=${setText} /><//>
      <button type="submit" disabled=${!live}>Send</button>
    </form>
  </section>`;
}

function Withdraw({ onDone }) {
  const [form, setForm] = useState({ amount: "", method: "paypal", destination: "", key: idempotencyKey() });
  const [notice, setNotice] = useState({});
  const submit = async (e) => {
    e.preventDefault();
    if (!window.confirm(`Withdraw ${form.amount} USD to ${form.destination}?`)) return;
    try {
      const j = await api.post("/api/payments", { amount: Number(form.amount), method: form.method, destination: form.destination },
        { "Idempotency-Key": form.key });
      setNotice({ ok: j.message || `Payment ${j.data.id}: ${j.data.status}` });
      setForm({ ...form, amount: "", key: idempotencyKey() });
      onDone();
    } catch (error) { setNotice({ error }); }
  };
  return html`<form class="panel" onSubmit=${submit} aria-labelledby="wd-h"><h2 id="wd-h">Withdraw</h2>
    <${Field} label="Amount (USD)"><${Input} value=${form.amount} required inputmode="decimal" onInput=${(v) => setForm({ ...form, amount: v })} /><//>
    <${Field} label="Method"><${Select} value=${form.method} options=${["paypal", "crypto", "giftcard"]} onChange=${(v) => setForm({ ...form, method: v })} /><//>
    <${Field} label="Destination"><${Input} value=${form.destination} required onInput=${(v) => setForm({ ...form, destination: v })} /><//>
    <${Notice} ...${notice} />
    <button type="submit">Withdraw</button>
  </form>`;
}

function Member({ user, setUser, onSignOut }) {
  const [socket, setSocket] = useState(null);
  const [live, setLive] = useState(false);
  const [notes, setNotes] = useState([]);
  const [messages, setMessages] = useState([]);
  const refresh = () => me().then(setUser, () => {});
  useEffect(() => {
    api.get("/api/notifications", { limit: 10 }).then((j) => setNotes(j.data), () => {});
    const ws = connectSocket((frame) => {
      if (frame.event === "balance:updated") {
        setUser((u) => ({ ...u, balance: frame.data.newBalance }));
        refresh(); // the pending balance is not in the event
      } else if (frame.event === "notification:new") {
        setNotes((n) => [frame.data, ...n].slice(0, 10));
      } else if (frame.event === "chat:message") {
        setMessages((m) => [...m, frame.data].slice(-100));
      } else if (frame.event === "payment:status") {
        refresh();
      }
    }, (state) => setLive(state === "live"));
    setSocket(ws);
    return () => ws.close();
  }, []);
  return html`<div class="layout member">
    <header><strong>SaveBucks</strong> <span>${user.name}</span>
      <span>Balance <strong data-testid="balance">${money(user.balance)}</strong></span>
      <span>Pending <strong data-testid="pending">${money(user.pendingBalance)}</strong></span>
      <button type="button" onClick=${onSignOut}>Sign out</button></header>
    <main id="main">
      <${Offers} />
      <section aria-labelledby="notes-h"><h2 id="notes-h">Notifications</h2>
        <ul>${notes.length === 0 && html`<li>None yet.</li>`}${notes.map((n) => html`<li key=${n.id}>${n.title}: ${n.body} <time>${when(n.createdAt)}</time></li>`)}</ul>
      </section>
      <${Chat} socket=${socket} live=${live} messages=${messages} />
      <${Withdraw} onDone=${refresh} />
    </main>
  </div>`;
}

function App() {
  const [user, setUser] = useSession();
  const [preset, setPreset] = useState(null);
  if (user === undefined) return html`<p class="loading">Loading…</p>`;
  if (!user) {
    const hint = html`<p>Demo members (password <code>${DEMO_PASSWORD}</code>):
      ${DEMO.map(([name, email]) => html` <button type="button" onClick=${() => setPreset({ email, password: DEMO_PASSWORD })}>Use ${name}</button>`)}</p>`;
    return html`<${SignIn} key=${preset?.email || "blank"} preset=${preset} title="SaveBucks demo" hint=${hint} onSignedIn=${setUser} />`;
  }
  const out = async () => { await signOut().catch(() => {}); setUser(null); };
  return html`<${Member} user=${user} setUser=${setUser} onSignOut=${out} />`;
}

render(html`<${App} />`, document.getElementById("app"));
