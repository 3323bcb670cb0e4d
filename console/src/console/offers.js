// Offers: list by status, create, edit, approve, reject with a reason, pause.
import { useState } from "preact/hooks";
import { api } from "../lib/api.js";
import { Field, Filters, Input, Notice, Pager, Select, Table, html, money, useAction, useList } from "../lib/ui.js";

const EMPTY = { title: "", description: "", category: "", network: "", externalId: "", payoutType: "share",
  userShare: "0.7", fixedPayout: "", networkPayout: "0", trackingUrl: "" };
const EDITABLE = ["title", "description", "category", "payoutType", "userShare", "fixedPayout", "networkPayout", "trackingUrl"];
const NUMBERS = ["userShare", "fixedPayout", "networkPayout"];

function body(form, keys) {
  const out = {};
  for (const k of keys) {
    const v = form[k];
    if (v === "" || v === null || v === undefined) continue;
    out[k] = NUMBERS.includes(k) ? Number(v) : v;
  }
  return out;
}

function OfferForm({ initial, editing, onSave, onCancel }) {
  const [form, setForm] = useState(initial);
  const set = (k) => (v) => setForm({ ...form, [k]: v });
  const text = (k, label, extra = {}) => html`<${Field} label=${label}><${Input} value=${form[k] ?? ""} onInput=${set(k)} ...${extra} /><//>`;
  return html`<form class="panel" onSubmit=${(e) => { e.preventDefault(); onSave(form); }} aria-label=${editing ? "Edit offer" : "New offer"}>
    <h2>${editing ? `Edit offer ${initial.id}` : "New offer"}</h2>
    ${text("title", "Title", { required: true })}
    ${text("description", "Description")}
    ${text("category", "Category", { required: true })}
    ${!editing && text("network", "Network", { required: true })}
    ${!editing && text("externalId", "Network's offer id", { required: true })}
    <${Field} label="Payout type"><${Select} value=${form.payoutType} options=${["share", "fixed"]} onChange=${set("payoutType")} /><//>
    ${text("userShare", "Member's share (0 to 1)", { inputmode: "decimal" })}
    ${text("fixedPayout", "Fixed payout (USD)", { inputmode: "decimal" })}
    ${text("networkPayout", "Network payout (USD)", { inputmode: "decimal" })}
    ${text("trackingUrl", "Tracking URL (https, with {clickId})")}
    <button type="submit">${editing ? "Save offer" : "Create offer"}</button>
    <button type="button" onClick=${onCancel}>Cancel</button>
  </form>`;
}

export function Offers() {
  const [filters, setFilters] = useState({ status: "" });
  const list = useList("/api/admin/offers", filters);
  const [notice, run] = useAction(list.reload);
  const [editing, setEditing] = useState(null);
  const save = (form) => run(editing.id ? `Save offer ${editing.id}?` : `Create offer "${form.title}"?`, async () => {
    const json = editing.id
      ? await api.put(`/api/admin/offers/${editing.id}`, body(form, EDITABLE))
      : await api.post("/api/admin/offers", body(form, Object.keys(EMPTY)));
    setEditing(null);
    return { message: json.message || `Offer ${json.data.id} saved (${json.data.status})` };
  });
  const reject = (o) => {
    const reason = window.prompt(`Reason for rejecting "${o.title}"`);
    if (reason) run(null, () => api.post(`/api/admin/offers/${o.id}/reject`, { reason }));
  };
  const actions = (o) => html`<div class="actions">
    <button type="button" onClick=${() => setEditing({ ...EMPTY, ...o, fixedPayout: o.fixedPayout ?? "", trackingUrl: o.trackingUrl ?? "" })}>Edit</button>
    ${o.status !== "active" && html`<button type="button" onClick=${() => run(`Approve "${o.title}"?`, () => api.post(`/api/admin/offers/${o.id}/approve`))}>Approve</button>`}
    ${o.status === "pending" && html`<button type="button" onClick=${() => reject(o)}>Reject</button>`}
    ${o.status === "active" && html`<button type="button" onClick=${() => run(`Pause "${o.title}"?`, () => api.del(`/api/admin/offers/${o.id}`))}>Pause</button>`}
  </div>`;
  return html`<section aria-labelledby="offers-h">
    <h1 id="offers-h">Offers</h1>
    <button type="button" onClick=${() => setEditing({ ...EMPTY })}>New offer</button>
    ${editing && html`<${OfferForm} key=${editing.id || "new"} initial=${editing} editing=${Boolean(editing.id)} onSave=${save} onCancel=${() => setEditing(null)} />`}
    <${Filters} filters=${filters} set=${setFilters} fields=${[["status", "Status", ["", "pending", "active", "rejected", "paused"]]]} />
    <${Notice} ...${notice} />
    <${Notice} error=${list.error} />
    <${Table} caption="Offers" rows=${list.rows} columns=${[
      { label: "Id", key: "id" }, { label: "Title", key: "title" }, { label: "Category", key: "category" },
      { label: "Network", key: "network" }, { label: "Payout", cell: (o) => money(o.payout) },
      { label: "Status", key: "status" }, { label: "Actions", cell: actions }]} />
    <${Pager} pagination=${list.pagination} onPage=${list.setPage} />
  </section>`;
}
