// Chart.js with only the parts the dashboard draws (line and bar over categories), so the
// bundle carries no unused controllers. Canvas drawing needs no inline style (CSP).
import {
  BarController, BarElement, CategoryScale, Chart, Filler, Legend, LineController, LineElement,
  LinearScale, PointElement, Tooltip,
} from "chart.js";
import { useEffect, useRef } from "preact/hooks";
import { html } from "../lib/ui.js";

Chart.register(BarController, BarElement, CategoryScale, Filler, Legend, LineController,
  LineElement, LinearScale, PointElement, Tooltip);

export function DayChart({ kind, label, days, series, summary }) {
  const canvas = useRef(null);
  useEffect(() => {
    const chart = new Chart(canvas.current, {
      type: kind,
      data: {
        labels: days,
        datasets: series.map((s, i) => ({
          label: s.label, data: s.values, borderColor: i ? "#b45309" : "#1d4ed8",
          backgroundColor: i ? "rgba(180,83,9,0.35)" : "rgba(29,78,216,0.35)", fill: kind === "line",
        })),
      },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        scales: { y: { beginAtZero: true } } },
    });
    return () => chart.destroy();
  }, [kind, JSON.stringify(days), JSON.stringify(series)]);
  // The canvas is described for screen readers by the summary beside it.
  return html`<figure class="chart">
    <figcaption>${label}</figcaption>
    <div class="chart-box"><canvas ref=${canvas} role="img" aria-label=${`${label}: ${summary}`}></canvas></div>
  </figure>`;
}
