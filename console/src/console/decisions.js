// What waits for an admin: sales (approve queued to the workers, reject), payments over the
// auto-pay limit (approve, reject), missing-credit claims, and the postback log with replay.
import { useState } from "preact/hooks";
import { api } from "../lib/api.js";
import { Filters, Notice, Pager, Table, html, money, useAction, useList, when } from "../lib/ui.js";

function DecisionList({ title, path, statuses, initial, columns, actions }) {
  const [filters, setFilters] = useState({ status: initial });
  const list = useList(path, filters);
  const [notice, run] = useAction(list.reload);
  return html`<section aria-label=${title}>
    <h2>${title}</h2>
    <${Filters} filters=${filters} set=${setFilters} fields=${[["status", `${title} status`, statuses]]} />
    <${Notice} ...${notice} />
    <${Notice} error=${list.error} />
    <${Table} caption=${title} rows=${list.rows} columns=${[...columns, { label: "Actions", cell: (row) => actions(row, run) }]} />
    <${Pager} pagination=${list.pagination} onPage=${list.setPage} />
  </section>`;
}

const ask = (what) => window.prompt(`Reason for rejecting ${what}`);

export function Decisions() {
  return html`<div>
    <h1>Sales and payments</h1>
    <${DecisionList} title="Payments" path="/api/admin/payments" initial="pending"
      statuses=${["", "pending", "processing", "paid", "failed", "cancelled"]}
      columns=${[{ label: "Id", key: "id" }, { label: "User", key: "userId" }, { label: "Amount", cell: (p) => money(p.amount) },
        { label: "Method", key: "method" }, { label: "Destination", key: "destination" },
        { label: "Status", cell: (p) => html`<span data-testid=${`payment-${p.id}-status`}>${p.status}</span>` },
        { label: "Needs approval", cell: (p) => (p.needsApproval ? "yes" : "no") }, { label: "Created", cell: (p) => when(p.createdAt) }]}
      actions=${(p, run) => p.status === "pending" && html`<div class="actions">
        <button type="button" onClick=${() => run(`Approve payment ${p.id} of ${money(p.amount)}?`, () => api.post(`/api/admin/payments/${p.id}/approve`))}>Approve</button>
        <button type="button" onClick=${() => { const reason = ask(`payment ${p.id}`); if (reason) run(null, () => api.post(`/api/admin/payments/${p.id}/reject`, { reason })); }}>Reject</button>
      </div>`} />
    <${DecisionList} title="Sales" path="/api/admin/sales" initial="pending"
      statuses=${["", "pending", "approved", "rejected", "reversed"]}
      columns=${[{ label: "Id", key: "id" }, { label: "User", key: "userId" }, { label: "Offer", key: "offerTitle" },
        { label: "Commission", cell: (s) => money(s.commissionAmount) }, { label: "Status", key: "status" },
        { label: "Created", cell: (s) => when(s.createdAt) }]}
      actions=${(s, run) => s.status === "pending" && html`<div class="actions">
        <button type="button" onClick=${() => run(`Approve sale ${s.id}?`, () => api.post(`/api/admin/sales/${s.id}/approve`))}>Approve</button>
        <button type="button" onClick=${() => run(`Reject sale ${s.id}?`, () => api.post(`/api/admin/sales/${s.id}/reject`))}>Reject</button>
      </div>`} />
  </div>`;
}

export function Claims() {
  return html`<div><h1>Claims</h1>
    <${DecisionList} title="Claims" path="/api/admin/claims" initial="open" statuses=${["", "open", "approved", "rejected"]}
      columns=${[{ label: "Id", key: "id" }, { label: "User", key: "userId" }, { label: "Offer", key: "offerTitle" },
        { label: "Message", key: "message" }, { label: "Status", key: "status" }, { label: "Amount", cell: (c) => money(c.amount) },
        { label: "Created", cell: (c) => when(c.createdAt) }]}
      actions=${(c, run) => c.status === "open" && html`<div class="actions">
        <button type="button" onClick=${() => run(`Approve claim ${c.id} at the offer's payout?`, () => api.post(`/api/admin/claims/${c.id}/approve`))}>Approve</button>
        <button type="button" onClick=${() => { const reason = ask(`claim ${c.id}`); if (reason) run(null, () => api.post(`/api/admin/claims/${c.id}/reject`, { reason })); }}>Reject</button>
      </div>`} />
  </div>`;
}

export function Postbacks() {
  const [filters, setFilters] = useState({ network: "", outcome: "", txnId: "", userId: "", from: "", to: "" });
  const list = useList("/api/admin/postbacks", filters);
  const [notice, run] = useAction(list.reload);
  return html`<section aria-labelledby="pb-h">
    <h1 id="pb-h">Postback log</h1>
    <${Filters} filters=${filters} set=${setFilters} fields=${[["network", "Network"], ["outcome", "Outcome"], ["txnId", "Transaction id"], ["userId", "User id"],
      ["from", "From (UTC)", "datetime-local"], ["to", "Until (UTC)", "datetime-local"]]} />
    <${Notice} ...${notice} />
    <${Notice} error=${list.error} />
    <${Table} caption="Postbacks" rows=${list.rows} columns=${[
      { label: "Id", key: "id" }, { label: "Network", key: "network" }, { label: "Verdict", key: "verdict" },
      { label: "Outcome", key: "outcome" }, { label: "Txn", key: "txnId" }, { label: "User", key: "userId" },
      { label: "Params", cell: (p) => html`<code>${Object.entries(p.params).map(([k, v]) => `${k}=${v}`).join(" ")}</code>` },
      { label: "Received", cell: (p) => when(p.createdAt) },
      { label: "Actions", cell: (p) => html`<button type="button" onClick=${() => run(`Replay postback ${p.id}?`, () => api.post(`/api/admin/postbacks/${p.id}/replay`))}>Replay</button>` }]} />
    <${Pager} pagination=${list.pagination} onPage=${list.setPage} />
  </section>`;
}

export function Audit() {
  const [filters, setFilters] = useState({ action: "", actorId: "", targetType: "", targetId: "", since: "", until: "" });
  const list = useList("/api/admin/audit-log", filters);
  return html`<section aria-labelledby="audit-h">
    <h1 id="audit-h">Audit log</h1>
    <${Filters} filters=${filters} set=${setFilters} fields=${[["action", "Action"], ["actorId", "Actor id"], ["targetType", "Target type"], ["targetId", "Target id"],
      ["since", "Since (UTC)", "datetime-local"], ["until", "Until (UTC)", "datetime-local"]]} />
    <${Notice} error=${list.error} />
    <${Table} caption="Audit log" rows=${list.rows} columns=${[
      { label: "When", cell: (a) => when(a.createdAt) }, { label: "Actor", key: "actorId" }, { label: "Action", key: "action" },
      { label: "Target", cell: (a) => `${a.targetType || ""} ${a.targetId || ""}` }, { label: "From", key: "ip" },
      { label: "Trace", cell: (a) => html`<code>${a.traceId}</code>` }]} />
    <${Pager} pagination=${list.pagination} onPage=${list.setPage} />
  </section>`;
}
