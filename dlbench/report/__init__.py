"""Reports from result documents: the table model, renderers, plots, compare and history."""
