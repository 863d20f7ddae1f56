// Usage and budgets: each quota window as a used/limit bar with its reset
// time (the fleet's figures, from the state backend), and the usage ledger's
// report by group with a CSV download.
import { h } from "./vendor/preact.mjs";
import { useState } from "./vendor/hooks.mjs";
import htm from "./vendor/htm.mjs";
import { api, useApi, Failed, TOKEN } from "./api.js";

const html = htm.bind(h);

function Bar({ used, limit }) {
  const u = Number(used), l = Number(limit);
  const pct = l > 0 ? Math.min(100, (u / l) * 100) : 0;
  return html`<div class="bar" role="meter" aria-valuemin="0" aria-valuemax=${l} aria-valuenow=${u}
      aria-label=${`${used} of ${limit} used`}>
    <span style=${{ width: `${pct}%` }}></span></div>`;
}

function Report() {
  const [groupBy, setGroupBy] = useState("tenant,model");
  const [report, setReport] = useState(null);
  const [error, setError] = useState("");
  const load = async (e) => {
    e.preventDefault();
    setError("");
    try { setReport(await api(`/admin/usage/report?group_by=${encodeURIComponent(groupBy)}`)); }
    catch (err) { setError(err.message); }
  };
  const csv = async () => {
    setError("");
    try {
      const resp = await fetch(`/admin/usage/report?format=csv&group_by=${encodeURIComponent(groupBy)}`,
        { headers: { authorization: `Bearer ${sessionStorage.getItem(TOKEN) || ""}` } });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const url = URL.createObjectURL(await resp.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = "usage-report.csv";
      a.click();
      URL.revokeObjectURL(url);
    } catch (err) { setError(`The CSV could not be made: ${err.message}`); }
  };
  return html`<div>
    <h3>Usage report (this month, from the usage ledger)</h3>
    <form class="inline" onSubmit=${load}>
      <label>Group by<input value=${groupBy} onInput=${(e) => setGroupBy(e.currentTarget.value)} /></label>
      <button type="submit">Show</button> <button type="button" class="plain" onClick=${csv}>Download CSV</button>
    </form>
    <${Failed} error=${error} />
    ${report && html`<pre class="config">${JSON.stringify(report, null, 2)}</pre>`}
  </div>`;
}

export function Usage() {
  const [rows, error] = useApi("/admin/usage", 5000);
  return html`<section aria-labelledby="usage-title">
    <h2 id="usage-title">Usage and budgets</h2>
    <${Failed} error=${error} />
    ${rows && rows.length === 0 && html`<p class="muted">No quota window has been used yet.</p>`}
    ${rows && rows.length > 0 && html`<div class="scroll"><table>
      <thead><tr><th>Quota</th><th>Counts</th><th>Used / limit</th><th></th><th>Resets</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr>
        <td>${r.quota} <span class="muted">(${r.strategy}, ${r.window})</span></td>
        <td>${r.by}: ${r.key}</td><td>${r.used} / ${r.limit}</td>
        <td class="barcell"><${Bar} used=${r.used} limit=${r.limit} /></td><td>${r.reset_at}</td></tr>`)}
      </tbody></table></div>`}
    <${Report} />
  </section>`;
}
