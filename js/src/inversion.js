// fw.Inversion: the original next to its reconstruction from the chosen layer's code, and the loss per step.
import { floatSlider, layerSlider, slider } from "./lib/controls.js";
import { drawCurve, drawImage } from "./lib/synthesis.js";
import { decode, isTensor } from "./lib/tensor.js";
import { canvas, mountView, textEl } from "./lib/view.js";

function build(ctx) {
  const { model, controls, body } = ctx;
  const made = [
    layerSlider(model, ctx.onSend),
    slider(model, "steps", { label: "steps", min: 10, max: 500, onSend: ctx.onSend }),
    floatSlider(model, "tv", { label: "total variation", min: 0, max: 2, step: 0.05, onSend: ctx.onSend }),
    floatSlider(model, "alpha", { label: "alpha-norm", min: 0, max: 0.01, step: 0.0001, onSend: ctx.onSend }),
  ];
  controls.append(...made.map((c) => c.element));
  const original = canvas("fw-input");
  const main = canvas("fw-main");
  const curve = canvas("fw-curve");
  const stats = textEl("div", "fw-stats fw-label");
  const pictures = textEl("div", "fw-pictures");
  pictures.append(original, main);
  const side = textEl("div", "fw-side");
  side.append(stats, curve);
  body.append(pictures, side);
  const showOriginal = () => {
    const raw = model.get("input_image");
    if (isTensor(raw)) drawImage(original, decode(raw));
  };
  model.on("change:input_image", showOriginal);
  showOriginal();
  Object.assign(ctx, { main, curve, stats });
  ctx.dispose = () => { for (const c of made) c.dispose(); model.off("change:input_image", showOriginal); };
}

function draw(result, ctx) {
  drawImage(ctx.main, result.reconstruction);
  const loss = result.loss.data;
  drawCurve(ctx.curve, loss, { label: "loss" });
  const last = loss.length ? loss[loss.length - 1] : NaN;
  ctx.stats.textContent = `${result.layer} · step ${result.step} / ${result.steps} · ||phi(x')-phi(x)||²/||phi(x)||² = ${last.toPrecision(3)}`;
}

export default {
  render({ model, el }) {
    return mountView(model, el, { name: "inversion", build, draw });
  },
};
