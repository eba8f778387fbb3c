"""A test-only dataset that counts how often it is made: each load appends a
line to the file named by ``DLBENCH_TEST_LOAD_LOG``. Registered in the runner
and its workers through ``DLBENCH_PLUGINS=data_plugins``."""

import os

import dlbench
from dlbench.data.base import DatasetInfo, DatasetMeta
from dlbench.data.builtin import synthetic


def counted(seed: int, n_samples: int):
    with open(os.environ["DLBENCH_TEST_LOAD_LOG"], "a") as log:
        log.write(f"{os.getpid()}\n")
    return synthetic(seed, n_samples, 8, 3, 0.25)


def describe_counted(seed: int, n_samples: int) -> DatasetMeta:
    return DatasetMeta((8,), 3)


@dlbench.hookimpl
def dlbench_register_datasets(registry):
    registry.add(DatasetInfo("counted", counted, "synthetic data that logs every load", {"n_samples": 64},
                             describe_counted))
