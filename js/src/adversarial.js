// fw.Adversarial: original, adversarial and amplified difference side by side; top-5 before and after.
import { floatSlider, select, slider } from "./lib/controls.js";
import { drawImage, probabilityBars } from "./lib/synthesis.js";
import { decode, isTensor } from "./lib/tensor.js";
import { canvas, mountView, textEl } from "./lib/view.js";

function build(ctx) {
  const { model, controls, body } = ctx;
  const classes = () => model.get("classes") || [];
  const made = [
    floatSlider(model, "epsilon", { label: "epsilon", min: 0.5 / 255, max: 32 / 255, step: 0.5 / 255, onSend: ctx.onSend }),
    slider(model, "steps", { label: "steps", min: 1, max: 50, onSend: ctx.onSend }),
    select(model, "norm", ["linf", "l2"], { label: "norm", onSend: ctx.onSend }),
    slider(model, "target_class", {
      label: "target", min: -1, max: () => classes().length - 1, onSend: ctx.onSend,
      describe: (i) => (i < 0 ? "none (untargeted)" : `${i} ${classes()[i] ?? ""}`),
    }),
    floatSlider(model, "amplify", { label: "amplify difference", min: 1, max: 50, step: 1 }),
  ];
  controls.append(...made.map((c) => c.element));
  const original = canvas("fw-input");
  const main = canvas("fw-main");
  const diff = canvas("fw-diff");
  const pictures = textEl("div", "fw-pictures");
  pictures.append(original, main, diff);
  const stats = textEl("div", "fw-stats fw-label");
  const bars = textEl("div", "fw-pictures");
  const left = textEl("div", "fw-side");
  left.append(pictures, stats, bars);
  body.append(left);
  const showOriginal = () => {
    const raw = model.get("input_image");
    if (isTensor(raw)) drawImage(original, decode(raw), 160);
  };
  model.on("change:input_image", showOriginal);
  showOriginal();
  Object.assign(ctx, { main, diff, stats, bars });
  ctx.dispose = () => { for (const c of made) c.dispose(); model.off("change:input_image", showOriginal); };
}

function draw(result, ctx) {
  const { model } = ctx;
  drawImage(ctx.main, result.adversarial, 160);
  const d = result.delta;
  const k = model.get("amplify");
  const amp = { dtype: "float32", shape: d.shape, size: d.size, data: d.data.map((v) => Math.min(1, Math.max(0, 0.5 + k * v))) };
  drawImage(ctx.diff, amp, 160);
  const path = (result.trajectory || []).map((s) => s.label).join(" → ");
  ctx.stats.textContent = `${result.fooled ? "fooled" : "not fooled"} · L-inf ${(255 * result.linf).toFixed(1)}/255 · L2 ${result.l2.toFixed(3)} · ${path}`;
  ctx.bars.replaceChildren(probabilityBars("before", model.get("before")), probabilityBars("after", result.after));
}

export default {
  render({ model, el }) {
    return mountView(model, el, { name: "adversarial", build, draw, redrawOn: ["amplify"] });
  },
};
