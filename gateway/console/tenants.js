// Tenants -> consumers -> keys: create and edit (allowed models, quotas,
// metadata), keys created (the plaintext shown once), rotated with a grace,
// revoked; deletes ask first. Names and metadata are shown as text only.
import { h } from "./vendor/preact.mjs";
import { useRef, useState } from "./vendor/hooks.mjs";
import htm from "./vendor/htm.mjs";
import { api, useApi, Failed } from "./api.js";
import { QuotaRows, quotasBody } from "./quotas.js";

const html = htm.bind(h);
const seg = encodeURIComponent;

/** A JSON text field's value, or an error naming the field. */
function parseJson(name, text, fallback) {
  if (!text.trim()) return fallback;
  try { return JSON.parse(text); } catch (e) { throw new Error(`${name} is not JSON: ${e.message}`); }
}

/** The form of a tenant or a consumer (`what`), saved with PUT `path(id)`. */
function Editor({ what, path, initial, onSaved }) {
  const [id, setId] = useState(initial ? initial.id : "");
  const [models, setModels] = useState(initial ? initial.allowed_models.join(", ") : "*");
  const [quotas, setQuotas] = useState(initial
    ? initial.quotas.map((q) => ({ ...q, limit: String(q.limit) })) : []);
  const [metadata, setMetadata] = useState(initial ? JSON.stringify(initial.metadata) : "{}");
  const [msg, setMsg] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    setMsg(null);
    try {
      const body = {
        allowed_models: models.split(",").map((m) => m.trim()).filter(Boolean),
        quotas: quotasBody(quotas),
        metadata: parseJson("metadata", metadata, {}),
      };
      await api(path(id), { method: "PUT", body: JSON.stringify(body),
        headers: { "content-type": "application/json" } });
      setMsg({ ok: true, text: `Saved ${what} ${id}.` });
      onSaved();
    } catch (err) {
      setMsg({ ok: false, text: err.message });
    }
  };
  return html`<form class="editor" onSubmit=${save} aria-label=${`${what} editor`}>
    <label>${what === "tenant" ? "Tenant" : "Consumer"} name<input required value=${id} readOnly=${!!initial}
      onInput=${(e) => setId(e.currentTarget.value.trim())} /></label>
    <label>Allowed models (globs, comma-separated)<input value=${models}
      onInput=${(e) => setModels(e.currentTarget.value)} /></label>
    <${QuotaRows} what=${what} rows=${quotas} onChange=${setQuotas} />
    <label>Metadata (JSON object)<textarea rows="2" value=${metadata}
      onInput=${(e) => setMetadata(e.currentTarget.value)}></textarea></label>
    <button type="submit">${initial ? "Save" : `Create ${what}`}</button>
    ${msg && html`<p class=${msg.ok ? "notice" : "error"} role="status">${msg.text}</p>`}
  </form>`;
}

function Keys({ tenant, consumer }) {
  const base = `/admin/tenants/${seg(tenant)}/consumers/${seg(consumer)}/keys`;
  const [keys, error, reload] = useApi(base);
  const [name, setName] = useState("");
  const [expires, setExpires] = useState("");
  const [grace, setGrace] = useState("3600");
  const secret = useRef(null);
  const [fresh, setFresh] = useState(null);
  const [msg, setMsg] = useState(null);
  const act = async (what, fn) => {
    setMsg(null);
    try { await fn(); setMsg({ ok: true, text: what }); reload(); } catch (e) { setMsg({ ok: false, text: e.message }); }
  };
  const create = (e) => {
    e.preventDefault();
    act("Key created: copy it now, it is not shown again.", async () => {
      const body = {};
      if (name) body.name = name;
      // (a datetime-local field is the browser's local time: sent as UTC)
      if (expires) body.expires_at = new Date(expires).toISOString().replace(/\.\d{3}Z$/, "Z");
      setFresh(await api(base, { method: "POST", body: JSON.stringify(body),
        headers: { "content-type": "application/json" } }));
      setName("");
      setExpires("");
    });
  };
  const copy = async () => {
    try { await navigator.clipboard.writeText(fresh.key); setMsg({ ok: true, text: "Copied." }); }
    catch {
      // (no clipboard access, e.g. a plain-http origin other than localhost): select it for Ctrl+C
      const range = document.createRange();
      range.selectNodeContents(secret.current);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      setMsg({ ok: false, text: "The browser refused the clipboard: the key is selected, press Ctrl+C (⌘C)." });
    }
  };
  const rotate = (k) => {
    const g = Number(grace);
    if (!Number.isInteger(g) || g < 0) { setMsg({ ok: false, text: "The grace is a whole number of seconds." }); return; }
    act(`Rotated: the new key is shown above; the old one works for ${g} more seconds.`,
      async () => setFresh(await api(`${base}/${seg(k.id)}/rotate`, { method: "POST",
        body: JSON.stringify({ grace_s: g }), headers: { "content-type": "application/json" } })));
  };
  return html`<div class="keys">
    <h4>Keys of ${consumer}</h4>
    <${Failed} error=${error} />
    ${fresh && html`<div class="warn" role="alert"><p><b>⚠ Store this key now.</b> It is shown this once:
      the gateway keeps only its hash and cannot show it again.</p>
      <code class="secret" ref=${secret}>${fresh.key}</code> <button class="plain" onClick=${copy}>Copy</button></div>`}
    ${keys && html`<div class="scroll"><table><thead><tr><th>Prefix</th><th>Name</th><th>Created</th>
      <th>Expires</th><th>State</th><th></th></tr></thead><tbody>
      ${keys.map((k) => html`<tr><td>${k.prefix}</td><td>${k.name || "–"}</td><td>${k.created_at}</td>
        <td>${k.expires_at || "never"}</td><td>${k.revoked ? "revoked" : "active"}</td><td>
        <button class="plain" onClick=${() => rotate(k)}>Rotate</button>
        <button class="plain" onClick=${() => confirm(`Revoke key ${k.prefix}? Every replica refuses it within a second.`)
          && act(`Revoked ${k.prefix}.`, () => api(`${base}/${seg(k.id)}`, { method: "DELETE" }))}>Revoke</button>
        </td></tr>`)}</tbody></table></div>`}
    <form class="inline" onSubmit=${create}><label>New key name<input value=${name}
      onInput=${(e) => setName(e.currentTarget.value)} /></label>
      <label>Expires (empty: never)<input type="datetime-local" value=${expires}
        onInput=${(e) => setExpires(e.currentTarget.value)} /></label>
      <button type="submit">Create key</button>
      <label>Old key's grace when rotating (s)<input value=${grace} inputmode="numeric" size="6"
        onInput=${(e) => setGrace(e.currentTarget.value.trim())} /></label></form>
    ${msg && html`<p class=${msg.ok ? "notice" : "error"} role="status">${msg.text}</p>`}
  </div>`;
}

function Consumers({ tenant }) {
  const base = `/admin/tenants/${seg(tenant)}/consumers`;
  const [list, error, reload] = useApi(base);
  const [open, setOpen] = useState(null);
  const [msg, setMsg] = useState(null);
  const remove = async (c) => {
    if (!confirm(`Delete consumer ${c.name}? Its keys stop working.`)) return;
    try { await api(`${base}/${seg(c.name)}`, { method: "DELETE" }); setMsg(`Deleted ${c.name}.`); reload(); }
    catch (e) { setMsg(e.message); }
  };
  return html`<div class="consumers">
    <h3>Consumers of ${tenant}</h3>
    <${Failed} error=${error} />
    ${msg && html`<p role="status">${msg}</p>`}
    ${list && html`<ul class="rows">${list.map((c) => html`<li>
      <button class="plain" aria-expanded=${open === c.name} onClick=${() => setOpen(open === c.name ? null : c.name)}>${c.name}</button>
      <span class="muted"> models: ${c.allowed_models.join(", ")}; ${c.quotas.length} quota(s); ${JSON.stringify(c.metadata)}</span>
      <button class="plain" onClick=${() => remove(c)}>Delete</button>
      ${open === c.name && html`<${Editor} what="consumer" initial=${{ ...c, id: c.name }}
        path=${(id) => `${base}/${seg(id)}`} onSaved=${reload} /><${Keys} tenant=${tenant} consumer=${c.name} />`}
    </li>`)}</ul>`}
    <h4>New consumer of ${tenant}</h4>
    <${Editor} what="consumer" path=${(id) => `${base}/${seg(id)}`} onSaved=${reload} />
  </div>`;
}

export function Tenants() {
  const [list, error, reload] = useApi("/admin/tenants");
  const [open, setOpen] = useState(null);
  const [msg, setMsg] = useState(null);
  const remove = async (t) => {
    if (!confirm(`Delete tenant ${t.id}? Its consumers and keys stop working.`)) return;
    try { await api(`/admin/tenants/${seg(t.id)}`, { method: "DELETE" }); setMsg(`Deleted ${t.id}.`); reload(); }
    catch (e) { setMsg(e.message); }
  };
  return html`<section aria-labelledby="tenants-title">
    <h2 id="tenants-title">Tenants, consumers and keys</h2>
    <${Failed} error=${error} />
    ${msg && html`<p role="status">${msg}</p>`}
    ${list && html`<ul class="rows">${list.map((t) => html`<li>
      <button class="plain" aria-expanded=${open === t.id} onClick=${() => setOpen(open === t.id ? null : t.id)}>${t.id}</button>
      <span class="muted"> models: ${t.allowed_models.join(", ")}; ${t.quotas.length} quota(s); ${JSON.stringify(t.metadata)}</span>
      <button class="plain" onClick=${() => remove(t)}>Delete</button>
      ${open === t.id && html`<${Editor} what="tenant" initial=${t} path=${(id) => `/admin/tenants/${seg(id)}`}
        onSaved=${reload} /><${Consumers} tenant=${t.id} />`}
    </li>`)}</ul>`}
    <h3>New tenant</h3>
    <${Editor} what="tenant" path=${(id) => `/admin/tenants/${seg(id)}`} onSaved=${reload} />
  </section>`;
}
