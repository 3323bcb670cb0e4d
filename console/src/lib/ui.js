// What every page shares: htm bound to Preact, formatting, and the list, form and action
// building blocks. Values are rendered as text nodes by Preact (escaped), never as HTML.
import { cloneElement, h, toChildArray } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import htm from "htm";
import { api } from "./api.js";

export const html = htm.bind(h);

const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
export const money = (v) => (v === null || v === undefined ? "—" : usd.format(Number(v)));
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

let uid = 0;
export function Field({ label, children, id }) {
  const [fid] = useState(() => id || `f${++uid}`);
  const control = cloneElement(toChildArray(children)[0], { id: fid });
  return html`<div class="field"><label for=${fid}>${label}</label>${control}</div>`;
}

export function Notice({ error, ok }) {
  if (error) return html`<p class="notice error" role="alert">${error.detail || error.message || String(error)}</p>`;
  if (ok) return html`<p class="notice ok" role="status">${ok}</p>`;
  return null;
}

export function Pager({ pagination, onPage }) {
  if (!pagination) return null;
  const { page, totalPages, total } = pagination;
  return html`<nav class="pager" aria-label="Pages">
    <button type="button" disabled=${page <= 1} onClick=${() => onPage(page - 1)}>Previous</button>
    <span>Page ${page} of ${Math.max(totalPages, 1)} (${total} in all)</span>
    <button type="button" disabled=${page >= totalPages} onClick=${() => onPage(page + 1)}>Next</button>
  </nav>`;
}

// A paginated, filterable list of an admin route. `filters` are the query parameters; a new
// `refresh` value loads the page again (after a change elsewhere on the page).
export function useList(path, filters, { limit = 20, refresh = 0 } = {}) {
  const [state, setState] = useState({ rows: [], pagination: null, error: null, loading: true });
  const [page, setPage] = useState(1);
  const key = JSON.stringify(filters);
  const load = useCallback(async () => {
    setState((s) => ({ ...s, loading: true }));
    try {
      const json = await api.get(path, { ...filters, page, limit });
      setState({ rows: json.data || [], pagination: json.pagination, error: null, loading: false });
    } catch (error) {
      setState({ rows: [], pagination: null, error, loading: false });
    }
  }, [path, key, page, refresh]);
  useEffect(() => { setPage(1); }, [key]);
  useEffect(() => { load(); }, [load]);
  return { ...state, page, setPage, reload: load };
}

// Confirm, run, report: the server's message on success or on error, then reload.
export function useAction(reload) {
  const [notice, setNotice] = useState({});
  const run = async (question, fn) => {
    if (question && !window.confirm(question)) return;
    try {
      const json = await fn();
      setNotice({ ok: json?.message || "Done" });
      reload && (await reload());
    } catch (error) {
      setNotice({ error });
    }
  };
  return [notice, run];
}

export function Table({ caption, columns, rows, empty = "Nothing here." }) {
  return html`<table>
    <caption>${caption}</caption>
    <thead><tr>${columns.map((c) => html`<th scope="col">${c.label}</th>`)}</tr></thead>
    <tbody>
      ${rows.length === 0 && html`<tr><td colspan=${columns.length}>${empty}</td></tr>`}
      ${rows.map((row) => html`<tr key=${row.id}>${columns.map((c) => html`<td>${c.cell ? c.cell(row) : row[c.key]}</td>`)}</tr>`)}
    </tbody>
  </table>`;
}

export function Select({ value, onChange, options, ...rest }) {
  return html`<select value=${value} onChange=${(e) => onChange(e.target.value)} ...${rest}>
    ${options.map((o) => html`<option value=${o}>${o || "any"}</option>`)}
  </select>`;
}

export function Input({ value, onInput, ...rest }) {
  return html`<input value=${value} onInput=${(e) => onInput(e.target.value)} ...${rest} />`;
}

// The filter bar of a list: a <form role="search"> whose fields update `filters`. A field is
// [name, label], [name, label, [options]] (a select) or [name, label, "input type"].
export function Filters({ filters, set, fields }) {
  const control = (name, kind) => {
    const change = (v) => set({ ...filters, [name]: v });
    if (Array.isArray(kind)) return html`<${Select} value=${filters[name]} options=${kind} onChange=${change} />`;
    return html`<${Input} type=${kind || "text"} value=${filters[name]} onInput=${change} />`;
  };
  return html`<form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
    ${fields.map(([name, label, kind]) => html`<${Field} label=${label}>${control(name, kind)}<//>`)}
  </form>`;
}
