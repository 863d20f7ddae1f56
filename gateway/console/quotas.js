// The quota list of a tenant or a consumer as rows of fields (name, counted
// by, strategy, limit, window), one row per quota; keys the form does not
// show (a calendar window's timezone, alert levels) are kept as they were.
import { h } from "./vendor/preact.mjs";
import htm from "./vendor/htm.mjs";

const html = htm.bind(h);
const STRATEGIES = ["total_tokens", "prompt_tokens", "completion_tokens", "requests", "cost"];
const BY = ["consumer", "tenant", "route", "upstream", "ip"];

/** A new row for an owner of kind `what` ("tenant" or "consumer"). */
export function newQuota(what, n) {
  return { name: `${what}-quota-${n}`, by: what, strategy: "total_tokens", limit: "", window: "1m" };
}

/** The rows as the admin API takes them; throws a message naming the row. */
export function quotasBody(rows) {
  return rows.map((q, i) => {
    const limit = String(q.limit).trim();
    if (!q.name.trim()) throw new Error(`quota ${i + 1}: a name is needed`);
    if (!/^\d+(\.\d+)?$/.test(limit)) throw new Error(`quota ${q.name}: the limit must be a number`);
    if (!q.window.trim()) throw new Error(`quota ${q.name}: a window is needed (1m, 1h, 1d, month, ...)`);
    return { ...q, name: q.name.trim(), window: q.window.trim(), limit };
  });
}

/** Editable rows; `onChange(rows)` gets the new list. */
export function QuotaRows({ what, rows, onChange }) {
  const set = (i, k) => (e) => onChange(rows.map((q, j) => (j === i ? { ...q, [k]: e.currentTarget.value } : q)));
  const byOptions = (cur) => (BY.includes(cur) ? BY : [cur, ...BY]);
  return html`<fieldset class="quotas"><legend>Quotas of this ${what}</legend>
    ${rows.length === 0 && html`<p class="muted">No quota: only the route's and the tenant's limits apply.</p>`}
    ${rows.map((q, i) => html`<div class="quota" role="group" aria-label=${`quota ${i + 1}`}>
      <label>Name<input required value=${q.name} onInput=${set(i, "name")} size="14" /></label>
      <label>Counted by<select value=${q.by} onChange=${set(i, "by")}>
        ${byOptions(q.by).map((b) => html`<option value=${b}>${b}</option>`)}</select></label>
      <label>Strategy<select value=${q.strategy} onChange=${set(i, "strategy")}>
        ${STRATEGIES.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
      <label>Limit${q.strategy === "cost" ? " (money)" : ""}<input required inputmode="decimal"
        value=${q.limit} onInput=${set(i, "limit")} size="10" /></label>
      <label>Window<input required value=${q.window} onInput=${set(i, "window")} size="6"
        title="1m, 1h, 1d, 30d, or day, week, month" /></label>
      <button type="button" class="plain" onClick=${() => onChange(rows.filter((_, j) => j !== i))}
        aria-label=${`Remove quota ${q.name}`}>Remove</button>
    </div>`)}
    <button type="button" class="plain" onClick=${() => onChange([...rows, newQuota(what, rows.length + 1)])}>Add a quota</button>
  </fieldset>`;
}
