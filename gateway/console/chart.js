// A small line chart of one series (SVG drawn by Preact, no chart library):
// the values of the overview's 10-second buckets, with the peak and the
// latest value written out as text, so nothing depends on reading the line.
import { h } from "./vendor/preact.mjs";
import htm from "./vendor/htm.mjs";

const html = htm.bind(h);
const W = 300;
const H = 60;

/** hh:mm of a Unix second, in the browser's time zone. */
function clock(t) {
  return new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/**
 * `points`: [{t, v}] oldest first (v null where there is no value);
 * `format` turns a value into text with its unit.
 */
export function Chart({ title, points, format }) {
  const values = points.map((p) => p.v).filter((v) => v != null);
  const peak = values.length ? Math.max(...values) : null;
  const last = points.length ? points[points.length - 1].v : null;
  const scale = peak > 0 ? peak : 1;
  const text = (v) => (v == null ? "–" : format(v));
  const step = points.length > 1 ? W / (points.length - 1) : W;
  // one path, broken where a bucket has no value (`M` starts a new piece)
  let d = "";
  let pen = false;
  points.forEach((p, i) => {
    if (p.v == null) { pen = false; return; }
    const x = (i * step).toFixed(1);
    const y = (H - (p.v / scale) * (H - 4) - 2).toFixed(1);
    // (a lone value is a dot: a zero-length piece with round caps)
    d += pen ? `L${x} ${y}` : `M${x} ${y}h0.01`;
    pen = true;
  });
  const from = points.length ? clock(points[0].t) : "";
  const to = points.length ? clock(points[points.length - 1].t) : "";
  const summary = `${title}: peak ${text(peak)}, latest ${text(last)}, ${from} to ${to}`;
  return html`<figure class="chart">
    <figcaption><b>${title}</b> <span class="muted">peak ${text(peak)} · latest ${text(last)}</span></figcaption>
    <svg viewBox=${`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label=${summary}>
      <line x1="0" y1=${H - 1} x2=${W} y2=${H - 1} class="axis" />
      ${d && html`<path d=${d} class="line" vector-effect="non-scaling-stroke" />`}
    </svg>
    <div class="chart-times muted"><span>${from}</span><span>${to}</span></div>
  </figure>`;
}
