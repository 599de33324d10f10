"""Figures: functions that take workbench results and return ``plotly.graph_objects.Figure``.

This is the layer above the library: it imports plotly, the library never does. Nothing here
writes files (``workbench.experiments.export.save_figure`` does).
"""
