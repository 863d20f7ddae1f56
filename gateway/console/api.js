// The admin API as the console calls it: the admin token the operator
// signed in with (sessionStorage, never a cookie) as the Bearer header, and
// the hook and the error line the pages share.
import { h } from "./vendor/preact.mjs";
import { useEffect, useState } from "./vendor/hooks.mjs";
import htm from "./vendor/htm.mjs";

const html = htm.bind(h);
export const TOKEN = "gateway-admin-token";

/** Calls the admin API; an error carries the API's message and status. */
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
    err.body = body;
    throw err;
  }
  return body;
}

/** Loads `path` now and every `every` ms; [data, error, reload]. */
export function useApi(path, every = 0) {
  const [data, setData] = useState(null);
  const [error, setError] = useState("");
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const load = () => api(path)
      .then((d) => live && (setData(d), setError("")))
      .catch((e) => live && setError(e.message));
    load();
    const t = every ? setInterval(load, every) : null;
    return () => { live = false; if (t) clearInterval(t); };
  }, [path, every, tick]);
  return [data, error, () => setTick((n) => n + 1)];
}

export function Failed({ error }) {
  return error ? html`<p class="error" role="alert">${error}</p>` : null;
}
