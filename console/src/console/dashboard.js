// Dashboard: the stats cards, revenue and signups per day over a chosen period, what waits for
// a decision, and the live event feed from /ws.
import { useEffect, useState } from "preact/hooks";
import { api } from "../lib/api.js";
import { Field, Notice, Select, Table, html, money, when } from "../lib/ui.js";
import { DayChart } from "./charts.js";

const CARDS = [
  ["total_users", "Users", String], ["active_users", "Active users", String],
  ["total_offers", "Offers", String], ["total_revenue", "Revenue", money],
  ["pending_payments", "Pending payments", money],
];

export function Dashboard({ feed }) {
  const [period, setPeriod] = useState("30");
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let live = true;
    Promise.all([
      api.get("/api/admin/analytics/dashboard"),
      api.get("/api/admin/analytics/revenue", { period }),
      api.get("/api/admin/analytics/users", { period }),
      api.get("/api/admin/payments", { status: "pending", limit: 5 }),
      api.get("/api/admin/analytics/offers", { period }),
    ]).then(([dash, revenue, users, pending, offers]) => {
      if (live) { setData({ period, dash: dash.data, revenue: revenue.data, users: users.data, pending, offers: offers.data }); setError(null); }
    }).catch((e) => live && setError(e));
    return () => { live = false; };
  }, [period]);
  if (error) return html`<${Notice} error=${error} />`;
  if (!data) return html`<p>Loading…</p>`;
  const { stats, recent_activity: recent } = data.dash;
  const revenueDays = data.revenue.map((r) => r.date);
  const userDays = data.users.days;
  return html`<section aria-labelledby="dash-h">
    <h1 id="dash-h">Dashboard</h1>
    <ul class="cards">
      ${CARDS.map(([key, label, fmt]) => html`<li class="card"><span>${label}</span><strong>${fmt(stats[key])}</strong></li>`)}
      <li class="card"><span>Waiting for approval</span><strong>${recent.pending_approvals}</strong></li>
    </ul>
    <p>Last 7 days: ${recent.new_users} new users, ${recent.recent_sales} sales, ${recent.recent_clicks} clicks.</p>
    <${Field} label="Period"><${Select} value=${period} onChange=${setPeriod} options=${["7", "30", "90", "365"]} /><//>
    <div class="charts">
      <${DayChart} kind="line" label=${`Revenue per day, last ${data.period} days`} days=${revenueDays}
        series=${[{ label: "Revenue (USD)", values: data.revenue.map((r) => Number(r.revenue)) }]}
        summary=${`total ${money(data.revenue.reduce((n, r) => n + Number(r.revenue), 0))}`} />
      <${DayChart} kind="bar" label=${`Signups and active users per day, last ${data.period} days`} days=${userDays.map((d) => d.date)}
        series=${[{ label: "Signups", values: userDays.map((d) => d.signups) }, { label: "Active", values: userDays.map((d) => d.active) }]}
        summary=${`${userDays.reduce((n, d) => n + d.signups, 0)} signups`} />
    </div>
    <${Table} caption=${`Offers by revenue, last ${data.period} days`} rows=${data.offers.slice(0, 10).map((o) => ({ ...o, id: o.offerId }))} columns=${[
      { label: "Offer", key: "title" }, { label: "Clicks", key: "clicks" }, { label: "Conversions", key: "conversions" },
      { label: "Conversion rate", cell: (o) => (o.conversionRate === null ? "—" : `${(Number(o.conversionRate) * 100).toFixed(1)} %`) },
      { label: "Revenue", cell: (o) => money(o.revenue) }, { label: "Per click", cell: (o) => money(o.epc) }]}
      empty="No clicks or sales in the period." />
    <h2>Payments waiting</h2>
    <p>${data.pending.pagination?.total ?? 0} pending payments. <a href="#/decisions">Decide sales and payments</a></p>
    <h2>Live events</h2>
    <ol class="feed" aria-live="polite">
      ${feed.length === 0 && html`<li>No event yet.</li>`}
      ${feed.map((f) => html`<li key=${f.key}><time>${when(f.at)}</time> <code>${f.event}</code> ${f.text}</li>`)}
    </ol>
  </section>`;
}
