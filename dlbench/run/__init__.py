"""Running: settings, the one trainer set-up, timing, statistics, isolated
workers, the suite, parity, the machine's peak and environment."""
