"""Running: the settings (one frozen value) and their checks, the inputs of the
Python API, the driver, the suite, isolated worker processes, the worker, the
result row, signals, notebook progress, and the executors."""
