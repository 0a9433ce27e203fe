// Placeholder front end for the heatmap view; replaced by the real view (docs/widgets.md).
function render({ model, el }) {
  const draw = () => {
    const data = model.get("data") || {};
    el.textContent = "gptmagic heatmap: " + (data.kind || "no state");
  };
  draw();
  model.on("change:data", draw);
  return () => model.off("change:data", draw);
}
export default { render };
