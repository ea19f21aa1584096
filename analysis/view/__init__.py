"""The live view: a browser page over a run's records while they are written.

- `analysis.view.records`: what the panels read from a run or sweep directory;
- `analysis.view.figures`: the panels' figures (population graph, p_violate, updates);
- `analysis.view.panels`: the panels as solara components;
- `analysis.view.app`: the page `tiplab view` serves, following PATH or driving a model
  (Mesa's SolaraViz) that its entry point names; it never imports `sim`.
"""
