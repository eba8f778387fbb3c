"""Test-only plugin module that raises when imported."""

raise ImportError("simulated broken plugin module")
