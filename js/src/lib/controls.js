// Controls bound to model traits. Every control carries data-trait="<trait>"; user text goes through
// textContent only.

import { COLORMAPS } from "./colormap.js";
import { NORMALIZATIONS } from "./normalize.js";

/**
 * Call `send(v)` at most every `ms` while values keep coming, and always with the last value:
 * a slider drag sends a few intermediate requests (each superseding the previous one) and the final one.
 */
export function throttle(send, ms = 80, now = () => Date.now()) {
  let last = -Infinity, pending, timer = null, hasPending = false;
  function fire() {
    timer = null;
    if (!hasPending) return;
    hasPending = false;
    last = now();
    send(pending);
  }
  return {
    push(v) {
      pending = v;
      hasPending = true;
      const wait = last + ms - now();
      if (wait <= 0) { if (timer) { clearTimeout(timer); timer = null; } fire(); }
      else if (!timer) timer = setTimeout(fire, wait);
    },
    flush() {
      if (timer) { clearTimeout(timer); timer = null; }
      fire();
    },
    cancel() { if (timer) clearTimeout(timer); timer = null; hasPending = false; },
  };
}

function labelled(text, control) {
  const wrap = document.createElement("label");
  wrap.className = "fw-control";
  const name = document.createElement("span");
  name.className = "fw-control-name";
  name.textContent = text;
  wrap.append(name, control);
  return wrap;
}

function setTrait(model, trait, value, onSend) {
  model.set(trait, value);
  model.save_changes();
  if (onSend) onSend(trait, value);
}

/**
 * A range input for an integer position in [min, max] (max: a number or a function, re-read on every
 * refresh, e.g. when a list trait named in `listen` changes). `toTrait(i)` / `fromTrait(v)` translate between the slider
 * position and the trait value (e.g. layer index <-> layer name). `describe(i)` is the text shown next to it.
 * Returns {element, input, setMax(n), refresh()}.
 */
export function slider(model, trait, { label = trait, min = 0, max = 0, toTrait = (i) => i, fromTrait = (v) => v,
  describe = (i) => String(i), ms = 80, onSend = null, listen = [] } = {}) {
  const input = document.createElement("input");
  input.type = "range";
  input.min = String(min);
  input.step = "1";
  let maxOf = typeof max === "function" ? max : () => max;
  input.max = String(maxOf());
  input.dataset.trait = trait;
  const value = document.createElement("span");
  value.className = "fw-value fw-label";
  const send = throttle((i) => setTrait(model, trait, toTrait(i), onSend), ms);
  input.addEventListener("input", () => { value.textContent = describe(+input.value); send.push(+input.value); });
  input.addEventListener("change", () => { send.push(+input.value); send.flush(); });
  function refresh() {
    input.max = String(Math.max(min, maxOf()));
    const i = fromTrait(model.get(trait));
    const known = typeof i === "number" && i >= min;
    if (known && i !== +input.value) input.value = String(i);
    value.textContent = known ? describe(i) : String(model.get(trait));
  }
  model.on(`change:${trait}`, refresh);
  for (const t of listen) model.on(`change:${t}`, refresh);
  const element = labelled(label, input);
  element.append(value);
  refresh();
  return {
    element, input,
    setMax(n) { maxOf = () => n; refresh(); },
    refresh,
    dispose() { send.cancel(); model.off(`change:${trait}`, refresh); for (const t of listen) model.off(`change:${t}`, refresh); },
  };
}

/** A select over fixed choices ([value, text] pairs or plain strings). */
export function select(model, trait, choices, { label = trait, onSend = null } = {}) {
  const sel = document.createElement("select");
  sel.dataset.trait = trait;
  for (const c of choices) {
    const [v, text] = Array.isArray(c) ? c : [c, c];
    const opt = document.createElement("option");
    opt.value = String(v);
    opt.textContent = text;
    sel.append(opt);
  }
  const numeric = typeof model.get(trait) === "number";
  sel.addEventListener("change", () => setTrait(model, trait, numeric ? +sel.value : sel.value, onSend));
  const refresh = () => { sel.value = String(model.get(trait)); };
  model.on(`change:${trait}`, refresh);
  refresh();
  return { element: labelled(label, sel), input: sel, refresh, dispose() { model.off(`change:${trait}`, refresh); } };
}

/** A checkbox for a boolean trait. */
export function toggle(model, trait, { label = trait, onSend = null } = {}) {
  const box = document.createElement("input");
  box.type = "checkbox";
  box.dataset.trait = trait;
  box.addEventListener("change", () => setTrait(model, trait, box.checked, onSend));
  const refresh = () => { box.checked = !!model.get(trait); };
  model.on(`change:${trait}`, refresh);
  refresh();
  return { element: labelled(label, box), input: box, refresh, dispose() { model.off(`change:${trait}`, refresh); } };
}

/** A range input for a float trait in [min, max] (e.g. opacity); sends continuously, throttled. */
export function floatSlider(model, trait, { label = trait, min = 0, max = 1, step = 0.05, ms = 80, onSend = null } = {}) {
  const input = document.createElement("input");
  input.type = "range";
  Object.assign(input, { min: String(min), max: String(max), step: String(step) });
  input.dataset.trait = trait;
  const send = throttle((v) => setTrait(model, trait, v, onSend), ms);
  input.addEventListener("input", () => send.push(+input.value));
  input.addEventListener("change", () => { send.push(+input.value); send.flush(); });
  const refresh = () => { input.value = String(model.get(trait)); };
  model.on(`change:${trait}`, refresh);
  refresh();
  return { element: labelled(label, input), input, refresh, dispose() { send.cancel(); model.off(`change:${trait}`, refresh); } };
}

/** The class select bound to the `target` trait: "predicted class" (or the custom target), the top-5 with
 * probabilities, then every class. Labels are user text: textContent only. */
export function targetSelect(model, onSend) {
  const sel = document.createElement("select");
  sel.dataset.trait = "target";
  function options() {
    const opts = [];
    const custom = model.get("target_label");
    opts.push([-1, custom ? `custom: ${custom}` : "predicted class"]);
    for (const p of model.get("predictions") || []) opts.push([p.index, `${(100 * p.prob).toFixed(1)}% ${p.label}`]);
    (model.get("classes") || []).forEach((c, i) => opts.push([i, `${i}: ${c}`]));
    sel.replaceChildren(...opts.map(([v, text]) => {
      const o = document.createElement("option");
      o.value = String(v);
      o.textContent = text; // user text: never parsed as HTML
      return o;
    }));
    sel.value = String(model.get("target"));
  }
  sel.addEventListener("change", () => {
    model.set("target", +sel.value);
    model.save_changes();
    onSend("target");
  });
  const events = ["change:predictions", "change:classes", "change:target", "change:target_label"];
  for (const e of events) model.on(e, options);
  options();
  return { element: labelled("target", sel), dispose() { for (const e of events) model.off(e, options); } };
}

/** The display knobs of a signed heatmap over an image (sign, colormap, scale, clip, opacity). They change the
 * drawing only, so they never dim the picture or ask Python for anything. */
export function heatmapControls(model) {
  return {
    sign: select(model, "sign", ["all", "positive", "negative", "absolute"], { label: "sign" }),
    colormap: select(model, "colormap", COLORMAPS, { label: "colormap" }),
    normalization: select(model, "normalization", NORMALIZATIONS, { label: "scale" }),
    percentile: floatSlider(model, "percentile", { label: "clip %", min: 50, max: 100, step: 0.5 }),
    opacity: floatSlider(model, "opacity", { label: "opacity" }),
  };
}

/** The slider over the `layers` list whose trait `layer` holds the layer *name* (the range input's value is
 * its index), re-reading its maximum when the list changes. */
export function layerSlider(model, onSend = null) {
  const layers = () => model.get("layers") || [];
  return slider(model, "layer", {
    label: "layer", max: () => layers().length - 1, onSend, listen: ["layers"],
    toTrait: (i) => layers()[i], fromTrait: (name) => layers().indexOf(name), describe: (i) => layers()[i] ?? "",
  });
}
