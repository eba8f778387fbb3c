"""What a model learns from: datasets (built-in, files, plugins), their
metadata, the seeded split and the core's batch order."""
