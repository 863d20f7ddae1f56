// The console: sign-in with the admin token (kept in sessionStorage, sent as
// the Bearer header on every /admin/* call) and its pages. Everything shown
// is written as text (Preact escapes it): names and metadata never become
// markup.
import { h, render } from "./vendor/preact.mjs";
import { useEffect, useState } from "./vendor/hooks.mjs";
import htm from "./vendor/htm.mjs";

const html = htm.bind(h);
const TOKEN = "gateway-admin-token";

/** Calls the admin API; a 401 signs out with the reason. */
export async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN) || "";
  const resp = await fetch(path, {
    ...options,
    headers: { ...(options.headers || {}), authorization: `Bearer ${token}` },
  });
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!resp.ok) {
    const message = (body && body.error && body.error.message) || `HTTP ${resp.status}`;
    const err = new Error(message);
    err.status = resp.status;
    throw err;
  }
  return body;
}

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
    <label for="token">Admin token (server.admin_token)</label>
    <input id="token" type="password" autocomplete="current-password" required
      value=${token} onInput=${(e) => setToken(e.currentTarget.value)} />
    <button type="submit">Sign in</button>
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </form>`;
}

function Overview() {
  const [stats, setStats] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    const load = () => api("/admin/stats?window=1h")
      .then((s) => live && (setStats(s), setError("")))
      .catch((e) => live && setError(e.message));
    load();
    const t = setInterval(load, 5000);
    return () => { live = false; clearInterval(t); };
  }, []);
  if (error) return html`<p class="error" role="alert">${error}</p>`;
  if (!stats) return html`<p class="muted">Loading…</p>`;
  const t = stats.totals;
  const ms = (v) => (v == null ? "–" : `${v} ms`);
  const cards = [
    ["Requests/s", t.requests_per_s], ["Tokens/s", t.tokens_per_s],
    ["Error rate", `${(t.error_rate * 100).toFixed(2)} %`], ["Requests", t.requests],
    ["TTFT p50 / p99", `${ms(t.ttft_ms.p50)} / ${ms(t.ttft_ms.p99)}`],
    ["Latency p50 / p99", `${ms(t.latency_ms.p50)} / ${ms(t.latency_ms.p99)}`],
    ["Spend", `${t.cost} ${stats.currency}`],
  ];
  return html`<section aria-labelledby="overview-title">
    <h2 id="overview-title">Overview</h2>
    <p class="muted">The last hour of this replica (the one answering the console), in 10-second buckets.</p>
    <div class="cards">${cards.map(([k, v]) => html`<div class="card"><span>${k}</span><b>${v}</b></div>`)}</div>
  </section>`;
}

function App() {
  const [signedIn, setSignedIn] = useState(!!sessionStorage.getItem(TOKEN));
  const signOut = () => { sessionStorage.removeItem(TOKEN); setSignedIn(false); };
  if (!signedIn) return html`<${SignIn} onSignedIn=${() => setSignedIn(true)} />`;
  return html`<header>
      <h1>AI gateway</h1>
      <nav aria-label="Pages"><a href="#overview" aria-current="page">Overview</a></nav>
      <button class="plain" onClick=${signOut}>Sign out</button>
    </header>
    <${Overview} />`;
}

const root = document.getElementById("app");
root.textContent = ""; // (the "Loading" line: Preact adds to what is there)
render(html`<${App} />`, root);
