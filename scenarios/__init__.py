"""The scenario files shipped with dlbench (``*.toml``), installed as package data."""
