// fw.FeatureVis: activation maximization that runs while you steer it. Objective controls restart the run
// (compute traits); regularizer, transform, parameterization and learning-rate controls are live: Python
// writes them into the Settings object the optimization re-reads at every step, so the run goes on.
import { floatSlider, layerSlider, select, slider, toggle } from "./lib/controls.js";
import { button, drawCurve, drawRow } from "./lib/synthesis.js";
import { canvas, mountView, textEl } from "./lib/view.js";

const LIVE_FLOATS = [
  ["lr", "learning rate", 0.005, 0.2, 0.005], ["l2", "L2", 0, 1, 0.01], ["alpha", "alpha-norm", 0, 1, 0.01],
  ["tv", "total variation", 0, 2, 0.02], ["edge", "edge energy", 0, 2, 0.02], ["blur", "blur sigma", 0, 2, 0.05],
  ["grad_blur", "gradient blur", 0, 2, 0.05], ["clip", "clip share", 0, 0.5, 0.01], ["noise", "noise", 0, 0.05, 0.001],
  ["scale", "scale +-", 0, 0.3, 0.01], ["rotate", "rotate +-deg", 0, 45, 1],
];

function build(ctx) {
  const { model, controls, body } = ctx;
  const layers = () => model.get("layers") || [];
  const layerIndex = () => Math.max(0, layers().indexOf(model.get("layer")));
  const send = (action) => () => model.send({ action });
  const made = [];
  const add = (c) => { made.push(c); controls.append(c.element); return c; };

  const buttons = textEl("div", "fw-control fw-buttons");
  buttons.append(button("start", "start", send("start")), button("stop", "stop", send("stop")),
    button("reset", "reset", send("reset")));
  controls.append(buttons);
  add(select(model, "objective", model.get("objectives"), { label: "objective", onSend: ctx.onSend }));
  add(layerSlider(model, ctx.onSend));
  const channel = add(slider(model, "channel", {
    label: "channel", max: () => (model.get("channels")[layerIndex()] || 1) - 1, onSend: ctx.onSend, listen: ["layer"],
  }));
  add(slider(model, "class_index", {
    label: "class", max: () => (model.get("classes") || []).length - 1, onSend: ctx.onSend,
    describe: (i) => `${i} ${(model.get("classes") || [])[i] ?? ""}`,
  }));
  add(slider(model, "batch", { label: "facets", min: 1, max: 6, onSend: ctx.onSend }));
  add(floatSlider(model, "diversity", { label: "diversity", min: 0, max: 2, step: 0.05, onSend: ctx.onSend }));
  const live = textEl("div", "fw-controls fw-live");
  live.append(textEl("span", "fw-control-name", "live:"));
  controls.after(live);
  const addLive = (c) => { made.push(c); live.append(c.element); return c; };
  addLive(select(model, "param", model.get("params"), { label: "parameterization" }));
  addLive(toggle(model, "decorrelate", { label: "decorrelate colours" }));
  for (const [trait, label, min, max, step] of LIVE_FLOATS) addLive(floatSlider(model, trait, { label, min, max, step }));
  addLive(slider(model, "pad", { label: "pad", max: 16 }));
  addLive(slider(model, "jitter", { label: "jitter", max: 16 }));

  const main = canvas("fw-main");
  const curve = canvas("fw-curve");
  const step = textEl("div", "fw-step fw-stats");
  const target = textEl("div", "fw-note fw-label");
  const side = textEl("div", "fw-side");
  side.append(step, curve, target);
  body.append(main, side);
  drawCurve(curve, null);

  // reset clears the result: clear the pictures too (mountView only draws results that carry a seq)
  const onClear = () => {
    const r = model.get("result");
    if (!r || typeof r.seq !== "number") {
      main.width = main.height = 0;
      drawCurve(curve, null);
      step.textContent = "";
      target.textContent = "";
    }
  };
  model.on("change:result", onClear);
  Object.assign(ctx, { main, curve, step, target, channel });
  ctx.dispose = () => { for (const c of made) c.dispose(); model.off("change:result", onClear); };
}

function draw(result, ctx) {
  if (!result.images) return;
  drawRow(ctx.main, result.images);
  drawCurve(ctx.curve, result.objective.data, { label: "objective" });
  const more = result.stopped ? " (stopped)" : result.partial ? " (running)" : "";
  ctx.step.textContent = `step ${result.step} / ${result.steps}${more}`;
  ctx.step.dataset.step = String(result.step);
  ctx.target.textContent = result.target || "";
}

export default {
  render({ model, el }) {
    return mountView(model, el, { name: "featurevis", build, draw });
  },
};
