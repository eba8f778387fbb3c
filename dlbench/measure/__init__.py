"""Measurement: the timed windows, their statistics, the machine's peak, its environment, inference latency."""
