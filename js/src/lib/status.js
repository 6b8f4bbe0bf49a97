// Status display shared by all views: progress bar, error banner, hint line.

/** Build the status elements into `root` and keep them in sync with the model. Returns {update, dispose}. */
export function statusBar(model, root) {
  const bar = document.createElement("div");
  bar.className = "fw-progress";
  const fill = document.createElement("div");
  fill.className = "fw-progress-fill";
  bar.append(fill);
  const banner = document.createElement("div");
  banner.className = "fw-error";
  banner.setAttribute("role", "alert");
  const hint = document.createElement("div");
  hint.className = "fw-hint";
  root.append(bar, banner, hint);

  function update() {
    const status = model.get("status");
    root.dataset.status = status;
    const running = status === "running";
    bar.style.visibility = running ? "visible" : "hidden";
    fill.style.width = `${Math.round(100 * Math.min(1, Math.max(0, model.get("progress") || 0)))}%`;
    const error = status === "error";
    banner.textContent = error ? model.get("error") || "error" : "";
    banner.style.display = error ? "block" : "none";
    const h = model.get("hint") || "";
    hint.textContent = h;
    hint.style.display = h ? "block" : "none";
  }
  const events = ["change:status", "change:progress", "change:error", "change:hint"];
  for (const e of events) model.on(e, update);
  update();
  return { update, dispose() { for (const e of events) model.off(e, update); } };
}
