"""The result document: its schema (and upgrades), building, writing and reading, and where it is stored."""
