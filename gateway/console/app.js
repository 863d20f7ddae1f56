// The console: sign-in with the admin token (kept in sessionStorage, sent as
// the Bearer header on every /admin/* call) and its pages. Everything shown
// is written as text (Preact escapes it): names and metadata never become
// markup.
import { h, render } from "./vendor/preact.mjs";
import { useEffect, useState } from "./vendor/hooks.mjs";
import htm from "./vendor/htm.mjs";
import { Tenants } from "./tenants.js";
import { Usage } from "./usage.js";
import { Chart } from "./chart.js";
import { api, useApi, Failed, TOKEN } from "./api.js";

const html = htm.bind(h);

function SignIn({ onSignedIn, reason }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(reason || "");
  const submit = async (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN, token);
    try {
      await api("/admin/health");
      onSignedIn();
    } catch (err) {
      sessionStorage.removeItem(TOKEN);
      setError(err.status === 401 ? "That admin token is not accepted." : err.message);
    }
  };
  return html`<form class="signin" onSubmit=${submit} aria-labelledby="signin-title">
    <h1 id="signin-title">AI gateway console</h1>
    <input type="text" name="username" autocomplete="username" value="admin" hidden />
    <label for="token">Admin token (server.admin_token)</label>
    <input id="token" type="password" autocomplete="current-password" required
      value=${token} onInput=${(e) => setToken(e.currentTarget.value)} />
    <button type="submit">Sign in</button>
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </form>`;
}

const WINDOWS = ["5m", "15m", "1h"];

function Overview() {
  const [stats, setStats] = useState(null);
  const [error, setError] = useState("");
  const [win, setWin] = useState("1h");
  useEffect(() => {
    let live = true;
    const load = () => api(`/admin/stats?window=${win}`)
      .then((s) => live && (setStats(s), setError("")))
      .catch((e) => live && setError(e.message));
    load();
    const t = setInterval(load, 5000);
    return () => { live = false; clearInterval(t); };
  }, [win]);
  if (error) return html`<p class="error" role="alert">${error}</p>`;
  if (!stats) return html`<p class="muted">Loading…</p>`;
  const t = stats.totals;
  // (percentiles are the upper bounds of histogram buckets: "at most")
  const ms = (v) => (v == null ? "–" : `≤ ${v} ms`);
  const cards = [
    ["Requests/s", t.requests_per_s], ["Tokens/s", t.tokens_per_s],
    ["Error rate (5xx)", `${(t.error_rate * 100).toFixed(2)} %`], ["Requests", t.requests],
    ["TTFT p50 / p99", `${ms(t.ttft_ms.p50)} / ${ms(t.ttft_ms.p99)}`],
    ["Latency p50 / p99", `${ms(t.latency_ms.p50)} / ${ms(t.latency_ms.p99)}`],
    ["Spend", `${t.cost} ${stats.currency}`],
  ];
  const per = stats.bucket_s;
  const rate = (n) => n / per;
  const num = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const series = (f) => stats.series.map((b) => ({ t: b.t, v: f(b) }));
  const charts = [
    ["Requests/s", series((b) => rate(b.requests)), (v) => `${num(v)}/s`],
    ["Tokens/s", series((b) => rate(b.input_tokens + b.output_tokens)), (v) => `${num(v)}/s`],
    ["5xx errors (share)", series((b) => (b.requests ? b.errors / b.requests : null)),
      (v) => `${(v * 100).toFixed(1)} %`],
    ["Latency p95", series((b) => b.latency_p95_ms), (v) => `≤ ${v} ms`],
    ["TTFT p95", series((b) => b.ttft_p95_ms), (v) => `≤ ${v} ms`],
    ["Spend", series((b) => Number(b.cost)), (v) => `${v} ${stats.currency}`],
  ];
  return html`<section aria-labelledby="overview-title">
    <h2 id="overview-title">Overview</h2>
    <p class="muted">${`This replica (the one answering the console, not the whole fleet), in ${per}-second buckets. Latency percentiles are histogram bucket bounds.`}</p>
    <label class="window">Window <select value=${win} onChange=${(e) => setWin(e.currentTarget.value)}>
      ${WINDOWS.map((w) => html`<option value=${w}>last ${w}</option>`)}</select></label>
    <div class="cards">${cards.map(([k, v]) => html`<div class="card"><span>${k}</span><b>${v}</b></div>`)}</div>
    <div class="charts">${charts.map(([title, points, format]) => html`<${Chart}
      title=${title} points=${points} format=${format} />`)}</div>
  </section>`;
}

function Health() {
  const [rows, error] = useApi("/admin/health", 5000);
  return html`<section aria-labelledby="health-title">
    <h2 id="health-title">Providers and health</h2>
    <${Failed} error=${error} />
    ${rows && html`<p class="muted">${rows.length && rows[0].view === "fleet"
      ? "As the whole fleet sees it (shared health in the state backend)."
      : "As this replica sees it (the fleet's view could not be read)."}</p>
    <div class="scroll"><table>
      <thead><tr><th>Provider</th><th>Api token</th><th>Fleet state</th><th>Ejected until</th>
        <th>Why (last error)</th><th>Failures in a row</th><th>Seen by</th><th>This replica</th>
        <th>Checks</th><th>In flight here</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr>
        <td>${r.provider}</td><td>${r.token_index == null ? "provider" : `#${r.token_index}`}</td>
        <td class=${r.healthy ? "ok" : "bad"}>${r.healthy ? "✓ healthy" : "✗ ejected"}</td>
        <td>${r.ejected_until || "–"}</td><td>${r.last_error || "–"}</td>
        <td>${r.consecutive_failures}</td>
        <td>${r.last_error || r.consecutive_failures ? (r.source === "active" ? "active probe" : "live traffic") : "–"}</td>
        <td>${r.local_ejected_until ? `✗ ejected until ${r.local_ejected_until}` : "✓ not ejected"}</td>
        <td>${[r.active && "active probe", r.passive && "passive"].filter(Boolean).join(", ") || "none"}</td>
        <td>${r.in_flight == null ? "" : r.in_flight}</td></tr>`)}</tbody>
    </table></div>`}
  </section>`;
}

function Requests() {
  const [filter, setFilter] = useState({ tenant: "", consumer: "", model: "", status: "" });
  const query = new URLSearchParams(Object.entries(filter).filter(([, v]) => v)).toString();
  const [data, error] = useApi(`/admin/requests?limit=100${query ? `&${query}` : ""}`, 3000);
  const field = (name) => html`<label>${name}
    <input name=${name} value=${filter[name]} size="12"
      onChange=${(e) => setFilter({ ...filter, [name]: e.currentTarget.value.trim() })} /></label>`;
  return html`<section aria-labelledby="requests-title">
    <h2 id="requests-title">Live requests</h2>
    <p class="muted">The last requests this replica finished (it keeps ${data ? data.capacity : "…"}), newest first.</p>
    <form class="filters" onSubmit=${(e) => e.preventDefault()}>
      ${field("tenant")} ${field("consumer")} ${field("model")} ${field("status")}</form>
    <${Failed} error=${error} />
    ${data && html`<div class="scroll"><table>
      <thead><tr><th>Time</th><th>Status</th><th>Tenant / consumer</th><th>Model</th>
        <th>Tokens in / out</th><th>Cost</th><th>ms</th><th>Path</th></tr></thead>
      <tbody>${data.records.map((r) => html`<tr>
        <td>${r.start_time}</td><td>${r.response_code}</td>
        <td>${r.ai_log.tenant || "–"} / ${r.ai_log.consumer || "–"}</td>
        <td>${r.ai_log.model || r.ai_log.request_model || "–"}</td>
        <td>${r.ai_log.input_token} / ${r.ai_log.output_token}</td>
        <td>${r.ai_log.cost || "–"}</td><td>${r.duration}</td><td>${r.path}</td></tr>`)}</tbody>
    </table></div>`}
  </section>`;
}

/** The routes of the running config, one line each. */
function Routes({ routes }) {
  const text = (v) => (v == null ? "–" : typeof v === "string" ? v : JSON.stringify(v));
  return html`<h3>Routes</h3><div class="scroll"><table>
    <thead><tr><th>Route</th><th>Match</th><th>Upstreams</th><th>Keys needed</th><th>Quotas</th>
      <th>Fallback on</th></tr></thead>
    <tbody>${routes.map((r) => html`<tr><td>${r.name}</td><td>${text(r.match)}</td>
      <td>${(r.upstreams || []).map((u) => `${u.provider}${u.weight != null ? ` (weight ${u.weight})` : ""}`).join(", ")}</td>
      <td>${r.auth && r.auth.enabled !== false ? "yes" : "no (open)"}</td>
      <td>${(r.quotas || []).map((q) => q.name).join(", ") || "–"}</td>
      <td>${r.fallback && r.fallback.on ? r.fallback.on.join(", ") : "–"}</td></tr>`)}</tbody>
  </table></div>`;
}

function Config() {
  const [data, error, reload] = useApi("/admin/config");
  const [result, setResult] = useState(null);
  const doReload = async () => {
    setResult(null);
    try {
      const r = await api("/admin/config/reload", { method: "POST" });
      setResult({ ok: true, text: `Reloaded: version ${r.version}.`, list: r.warnings || [] });
      reload();
    } catch (e) {
      const problems = (e.body && e.body.problems) || [];
      setResult({ ok: false, list: problems, text: problems.length
        ? `The file was not loaded (${problems.length} problem${problems.length > 1 ? "s" : ""}); version ${e.body.version} stays in use:`
        : e.message });
    }
  };
  return html`<section aria-labelledby="config-title">
    <h2 id="config-title">Routes and config</h2>
    <${Failed} error=${error} />
    ${data && html`<p>Version ${data.version}, from ${data.source}. Secrets are masked.</p>
      ${data.warnings.length > 0 && html`<ul>${data.warnings.map((w) => html`<li>${w}</li>`)}</ul>`}
      <button onClick=${doReload}>Reload the config file</button>
      ${result && html`<div class=${result.ok ? "notice" : "error"} role="status"><p>${result.text}</p>
        ${result.list.length > 0 && html`<ul>${result.list.map((p) => html`<li>${p}</li>`)}</ul>`}</div>`}
      <${Routes} routes=${data.config.routes || []} />
      <h3>The running config</h3>
      <pre class="config">${JSON.stringify(data.config, null, 2)}</pre>`}
  </section>`;
}

const PAGES = [
  ["overview", "Overview", Overview],
  ["tenants", "Tenants", Tenants],
  ["usage", "Usage and budgets", Usage],
  ["health", "Providers and health", Health],
  ["requests", "Live requests", Requests],
  ["config", "Routes and config", Config],
];

function usePage() {
  const current = () => (location.hash || "#overview").slice(1);
  const [page, setPage] = useState(current());
  useEffect(() => {
    const on = () => setPage(current());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return PAGES.find(([id]) => id === page) || PAGES[0];
}

function App() {
  const [signedIn, setSignedIn] = useState(!!sessionStorage.getItem(TOKEN));
  const [id, , Page] = usePage();
  const signOut = () => { sessionStorage.removeItem(TOKEN); setSignedIn(false); };
  if (!signedIn) return html`<${SignIn} onSignedIn=${() => setSignedIn(true)} />`;
  return html`<header>
      <h1>AI gateway</h1>
      <nav aria-label="Pages">${PAGES.map(([pid, title]) => html`<a href=${`#${pid}`}
        aria-current=${pid === id ? "page" : null}>${title}</a>`)}</nav>
      <button class="plain" onClick=${signOut}>Sign out</button>
    </header>
    <${Page} />`;
}

const root = document.getElementById("app");
root.textContent = ""; // (the "Loading" line: Preact adds to what is there)
render(html`<${App} />`, root);
