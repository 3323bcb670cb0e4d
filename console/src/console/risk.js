// Risk (docs/risk.md): the review queue, members by score with their signals, and the payouts
// freeze.
import { useState } from "preact/hooks";
import { api } from "../lib/api.js";
import { Filters, Notice, Pager, Table, html, useAction, useList } from "../lib/ui.js";

export function Risk() {
  const [filters, setFilters] = useState({ minScore: "" });
  const list = useList("/api/admin/risk", filters);
  const [notice, run] = useAction(list.reload);
  const freeze = (u, frozen) => {
    const reason = window.prompt(`Reason to ${frozen ? "freeze" : "unfreeze"} payouts of user ${u.userId}`);
    if (reason) run(null, () => api.put(`/api/admin/users/${u.userId}/payouts`, { frozen, reason }));
  };
  return html`<section aria-labelledby="risk-h">
    <h1 id="risk-h">Risk</h1>
    <${Filters} filters=${filters} set=${setFilters} fields=${[["minScore", "Minimum score"]]} />
    <${Notice} ...${notice} />
    <${Notice} error=${list.error} />
    <${Table} caption="Users by risk score" rows=${list.rows} columns=${[
      { label: "User", cell: (u) => html`<a href=${`#/users/${u.userId}`}>${u.name || u.email}</a>` },
      { label: "Score", key: "score" },
      { label: "Signals", cell: (u) => (u.signals || []).map((s) => s.kind).join(", ") },
      { label: "Payouts", cell: (u) => html`<button type="button" onClick=${() => freeze(u, !u.payoutsFrozen)}>${u.payoutsFrozen ? "Unfreeze" : "Freeze"} payouts</button>` }]} />
    <${Pager} pagination=${list.pagination} onPage=${list.setPage} />
  </section>`;
}
