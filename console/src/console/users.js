// Users: search and filters, and one user's detail (ledger by kind, sales, status change and a
// balance adjustment that carries an Idempotency-Key made here).
import { useEffect, useState } from "preact/hooks";
import { api, idempotencyKey } from "../lib/api.js";
import { Field, Filters, Input, Notice, Pager, Select, Table, html, money, useAction, useList, when } from "../lib/ui.js";

export function Users() {
  const [filters, setFilters] = useState({ search: "", status: "", role: "" });
  const list = useList("/api/admin/users", filters);
  return html`<section aria-labelledby="users-h">
    <h1 id="users-h">Users</h1>
    <${Filters} filters=${filters} set=${setFilters} fields=${[
      ["search", "Search name or email"], ["status", "Status", ["", "active", "suspended", "banned"]],
      ["role", "Role", ["", "user", "admin"]]]} />
    <${Notice} error=${list.error} />
    <${Table} caption="Users" rows=${list.rows} columns=${[
      { label: "Id", key: "id" },
      { label: "Name", cell: (u) => html`<a href=${`#/users/${u.id}`}>${u.name}</a>` },
      { label: "Email", key: "email" }, { label: "Role", key: "role" }, { label: "Status", key: "status" },
      { label: "Balance", cell: (u) => money(u.balance) }, { label: "Pending", cell: (u) => money(u.pendingBalance) },
      { label: "Joined", cell: (u) => when(u.createdAt) }]} />
    <${Pager} pagination=${list.pagination} onPage=${list.setPage} />
  </section>`;
}

const KINDS = ["", "sale_credit", "sale_reversal", "payout_hold", "payout_release", "adjustment",
  "prize", "referral", "referral_reversal"];

function LedgerEntries({ id, version }) {
  const [filters, setFilters] = useState({ kind: "" });
  const list = useList(`/api/admin/users/${id}/ledger`, filters, { refresh: version });
  return html`<section aria-label="Ledger entries">
    <${Filters} filters=${filters} set=${setFilters} fields=${[["kind", "Entry kind", KINDS]]} />
    <${Notice} error=${list.error} />
    <${Table} caption="Ledger entries" rows=${list.rows} columns=${[
      { label: "Id", key: "id" }, { label: "When", cell: (e) => when(e.createdAt) }, { label: "Kind", key: "kind" },
      { label: "Amount", cell: (e) => money(e.amount) },
      { label: "Cause", cell: (e) => (e.referenceType ? `${e.referenceType} ${e.referenceId ?? ""}` : "—") }]} />
    <${Pager} pagination=${list.pagination} onPage=${list.setPage} />
  </section>`;
}

export function UserDetail({ id }) {
  const [user, setUser] = useState(null);
  const [error, setError] = useState(null);
  const [version, setVersion] = useState(0); // bumped after a change: the entries load again
  const load = () => api.get(`/api/admin/users/${id}`).then((j) => { setUser(j.data); setError(null); setVersion((v) => v + 1); }, setError);
  useEffect(() => { load(); }, [id]);
  const [notice, run] = useAction(load);
  const [status, setStatus] = useState({ status: "active", reason: "" });
  const [adjust, setAdjust] = useState({ amount: "", reason: "", key: idempotencyKey() });
  if (error) return html`<${Notice} error=${error} />`;
  if (!user) return html`<p>Loading…</p>`;
  const kinds = Object.entries(user.ledger.byKind).map(([kind, t]) => ({ id: kind, kind, ...t }));
  const sales = Object.entries(user.sales).map(([s, t]) => ({ id: s, status: s, ...t }));
  const changeStatus = (e) => {
    e.preventDefault();
    run(`Set ${user.email} to ${status.status}?`, () => api.put(`/api/admin/users/${id}/status`, status));
  };
  const adjustBalance = (e) => {
    e.preventDefault();
    run(`Adjust ${user.email}'s balance by ${adjust.amount} USD?`, async () => {
      // The key stays the same until the adjustment succeeds, so a retry cannot post twice.
      const json = await api.post(`/api/admin/users/${id}/adjust-balance`,
        { amount: Number(adjust.amount), reason: adjust.reason }, { "Idempotency-Key": adjust.key });
      setAdjust({ amount: "", reason: "", key: idempotencyKey() });
      return { message: json.message || `Balance is now ${money(json.data.balance)}` };
    });
  };
  return html`<section aria-labelledby="user-h">
    <p><a href="#/users">All users</a></p>
    <h1 id="user-h">${user.name} <small>${user.email}</small></h1>
    <dl class="facts">
      <dt>Role</dt><dd>${user.role}</dd><dt>Status</dt><dd>${user.status}</dd>
      <dt>Balance</dt><dd data-testid="user-balance">${money(user.balance)}</dd><dt>Pending</dt><dd>${money(user.pendingBalance)}</dd>
      <dt>Debt</dt><dd>${money(user.debt)}</dd><dt>Referees</dt><dd>${user.referral.referees}</dd>
      <dt>Referral earnings</dt><dd>${money(user.referral.earnings)}</dd><dt>Joined</dt><dd>${when(user.createdAt)}</dd>
    </dl>
    <${Notice} ...${notice} />
    <${Table} caption=${`Ledger by kind (total ${money(user.ledger.total)})`} rows=${kinds} columns=${[
      { label: "Kind", key: "kind" }, { label: "Entries", key: "entries" }, { label: "Total", cell: (k) => money(k.total) }]} />
    <${LedgerEntries} id=${id} version=${version} />
    <${Table} caption="Sales by status" rows=${sales} columns=${[
      { label: "Status", key: "status" }, { label: "Count", key: "count" }, { label: "Commission", cell: (s) => money(s.commission) }]} />
    <form class="panel" onSubmit=${changeStatus} aria-labelledby="status-h">
      <h2 id="status-h">Status</h2>
      <${Field} label="New status"><${Select} value=${status.status} options=${["active", "suspended", "banned"]} onChange=${(v) => setStatus({ ...status, status: v })} /><//>
      <${Field} label="Reason for the status change"><${Input} value=${status.reason} onInput=${(v) => setStatus({ ...status, reason: v })} /><//>
      <button type="submit">Change status</button>
    </form>
    <form class="panel" onSubmit=${adjustBalance} aria-labelledby="adjust-h">
      <h2 id="adjust-h">Adjust balance</h2>
      <${Field} label="Amount in USD (negative to debit)"><${Input} value=${adjust.amount} required inputmode="decimal" pattern="-?[0-9]+(\\.[0-9]{1,2})?" onInput=${(v) => setAdjust({ ...adjust, amount: v })} /><//>
      <${Field} label="Reason for the adjustment"><${Input} value=${adjust.reason} required onInput=${(v) => setAdjust({ ...adjust, reason: v })} /><//>
      <button type="submit">Adjust balance</button>
    </form>
  </section>`;
}
