"""Parity: whether a backend computes what the reference computes (the certificate, the verdict, their statistics)."""
