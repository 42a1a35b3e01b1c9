// Render the ```mermaid blocks (pymdownx.superfences emits <pre class="mermaid">) with the
// mermaid.min.js shipped next to this file: the site needs no network to show its diagrams.
window.addEventListener("load", function () {
  if (!window.mermaid) { return; }
  window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
  window.mermaid.run({ querySelector: "pre.mermaid" });
});
