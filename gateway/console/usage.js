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

const COLUMNS = ["tenant", "consumer", "model", "provider", "day"];
const FIGURES = [["requests", "Requests"], ["input_tokens", "Input tokens"],
  ["output_tokens", "Output tokens"], ["cached_tokens", "Cached"], ["reasoning_tokens", "Reasoning"],
  ["cost", "Cost"], ["unpriced_requests", "Unpriced"], ["estimated_requests", "Estimated"]];

/** The report's query string from the form's fields (empty ones left out). */
function reportQuery(q, format) {
  // (no group_by: every column)
  const p = new URLSearchParams(q.groupBy.length ? { group_by: q.groupBy.join(",") } : {});
  if (q.from) p.set("from", q.from);
  if (q.to) p.set("to", q.to);
  if (q.tenant) p.set("tenant", q.tenant);
  if (format) p.set("format", format);
  return p.toString();
}

function ReportTable({ report }) {
  const cols = report.group_by;
  if (report.rows.length === 0) {
    return html`<p class="muted">No usage from ${report.from} to ${report.to}.</p>`;
  }
  return html`<div class="scroll"><table class="report">
    <caption>${report.from} to ${report.to}${report.tenant ? `, tenant ${report.tenant}` : ""}; costs in ${report.currency}</caption>
    <thead><tr>${cols.map((c) => html`<th scope="col">${c}</th>`)}
      ${FIGURES.map(([, t]) => html`<th scope="col" class="num">${t}</th>`)}</tr></thead>
    <tbody>${report.rows.map((r) => html`<tr>${cols.map((c) => html`<td>${r[c]}</td>`)}
      ${FIGURES.map(([f]) => html`<td class="num">${r[f]}</td>`)}</tr>`)}</tbody>
    <tfoot><tr><th scope="row" colspan=${cols.length}>Total</th>
      ${FIGURES.map(([f]) => html`<td class="num">${report.totals[f]}</td>`)}</tr></tfoot>
  </table></div>`;
}

function Report() {
  const [q, setQ] = useState({ groupBy: ["tenant", "model"], from: "", to: "", tenant: "" });
  const [report, setReport] = useState(null);
  const [error, setError] = useState("");
  const set = (k) => (e) => setQ({ ...q, [k]: e.currentTarget.value.trim() });
  const toggle = (c) => setQ({ ...q, groupBy: q.groupBy.includes(c)
    ? q.groupBy.filter((x) => x !== c) : COLUMNS.filter((x) => x === c || q.groupBy.includes(x)) });
  const load = async (e) => {
    e.preventDefault();
    setError("");
    try { setReport(await api(`/admin/usage/report?${reportQuery(q)}`)); }
    catch (err) { setReport(null); setError(err.message); }
  };
  const csv = async () => {
    setError("");
    try {
      const resp = await fetch(`/admin/usage/report?${reportQuery(q, "csv")}`,
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
    <h3>Usage report (from the usage ledger)</h3>
    <form class="inline" onSubmit=${load} aria-label="Usage report">
      <fieldset><legend>Group by</legend>${COLUMNS.map((c) => html`<label class="check">
        <input type="checkbox" checked=${q.groupBy.includes(c)} onChange=${() => toggle(c)} />${c}</label>`)}
      </fieldset>
      <label>From (default: the 1st of this month)<input type="date" value=${q.from} onChange=${set("from")} /></label>
      <label>To (default: today)<input type="date" value=${q.to} onChange=${set("to")} /></label>
      <label>Tenant (all when empty)<input value=${q.tenant} onInput=${set("tenant")} size="14" /></label>
      <button type="submit">Show report</button> <button type="button" class="plain" onClick=${csv}>Download CSV</button>
    </form>
    <${Failed} error=${error} />
    ${report && html`<${ReportTable} report=${report} />`}
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
