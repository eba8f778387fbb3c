"""Plugins: the hooks, the manager that loads them, and the Backend contract."""
