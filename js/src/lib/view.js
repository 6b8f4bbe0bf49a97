// The frame every view shares: root element, status display, controls row, and the rule for which
// result is drawn. Python numbers each request (`seq`); a result carries the seq it answers. We draw a
// result only if it is at least as new as the one on screen, and dim the picture (class fw-stale) while
// a newer request is running, so an old picture is never shown as if it were current.
import { decode, decodeTree, isTensor } from "./tensor.js";
import { statusBar } from "./status.js";

/**
 * mountView(model, el, {name, build, draw, redrawOn})
 *   build(ctx): create controls into ctx.controls and pictures into ctx.body (called once);
 *   draw(result, ctx): paint a decoded result (called for every new result and on client-side changes);
 *   redrawOn: traits that only change the drawing (colormap, opacity, channel...) -> draw again, no Python.
 * ctx: {model, root, controls, body, result, onSend, sync()}. Returns a cleanup function for anywidget.
 */
export function mountView(model, el, { name, build, draw, redrawOn = [] }) {
  const root = document.createElement("div");
  root.className = `fw-view fw-${name}`;
  root.dataset.seq = "-1";
  el.append(root);
  const status = statusBar(model, root);
  const controls = document.createElement("div");
  controls.className = "fw-controls";
  const body = document.createElement("div");
  body.className = "fw-body";
  root.append(controls, body);

  let drawnSeq = -1;
  let pendingLocal = false;
  let decodedFrom = null;
  const computeTraits = () => model.get("compute_traits") || [];

  const ctx = {
    model, root, controls, body, result: null,
    // Controls call this after sending a trait: a compute trait makes the picture stale at once,
    // before Python has even answered with the new seq.
    onSend(trait) {
      if (computeTraits().includes(trait)) { pendingLocal = true; markStale(); }
    },
  };

  function markStale() {
    const r = ctx.result;
    const stale = drawnSeq >= 0 && (pendingLocal || model.get("seq") > drawnSeq || (r && r.partial === true));
    body.classList.toggle("fw-stale", stale);
    for (const c of body.querySelectorAll("canvas")) c.classList.toggle("fw-stale", stale);
  }

  function onResult() {
    const raw = model.get("result");
    if (!raw || typeof raw.seq !== "number") return;
    if (raw.seq < drawnSeq) return; // an answer to a request that was superseded: never drawn
    if (raw !== decodedFrom) {
      ctx.result = decodeTree(raw);
      decodedFrom = raw;
    }
    repaint();
    drawnSeq = raw.seq;
    root.dataset.seq = String(drawnSeq);
    markStale();
  }

  function repaint() {
    if (!ctx.result) return;
    try {
      draw(ctx.result, ctx);
    } catch (e) {
      // A drawing bug must be visible, not a silently blank canvas.
      console.error("featwidget: drawing failed", e);
      const banner = root.querySelector(".fw-error");
      banner.textContent = `Drawing failed: ${e && e.message ? e.message : e}`;
      banner.style.display = "block";
    }
  }

  function onSeq() {
    pendingLocal = false;
    markStale();
  }

  build(ctx);
  const handlers = [["change:result", onResult], ["change:seq", onSeq], ["change:status", markStale]];
  for (const t of redrawOn) handlers.push([`change:${t}`, repaint]);
  for (const [e, f] of handlers) model.on(e, f);
  onResult();
  markStale();
  ctx.repaint = repaint;

  return () => {
    for (const [e, f] of handlers) model.off(e, f);
    status.dispose();
    if (ctx.dispose) ctx.dispose();
    root.remove();
  };
}

/** A <canvas> with the given classes. */
export function canvas(...classes) {
  const c = document.createElement("canvas");
  c.className = classes.join(" ");
  return c;
}

/** A <div>/<span> with a class and text (textContent: never parsed as HTML). */
export function textEl(tag, cls, text = "") {
  const e = document.createElement(tag);
  e.className = cls;
  e.textContent = text;
  return e;
}

/** A number in 3 significant digits, in exponent form when very large or small (stats, colour ranges). */
export function num(v) {
  return Math.abs(v) >= 1000 || (Math.abs(v) < 0.001 && v !== 0) ? v.toExponential(2) : v.toPrecision(3);
}

/** The decoded tensor of trait `key`, decoded again only when the trait's value changes (e.g. the input image,
 * which every redraw needs but which arrives once). */
export function traitTensor(ctx, key) {
  const raw = ctx.model.get(key);
  ctx.decoded = ctx.decoded || {};
  const hit = ctx.decoded[key];
  if (!hit || hit.raw !== raw) ctx.decoded[key] = { raw, t: isTensor(raw) ? decode(raw) : null };
  return ctx.decoded[key].t;
}
