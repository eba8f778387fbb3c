"""``python -m dlbench.plugin.testing NAME[,NAME...] [pytest options]``: the kit
run against the backends named (every registered one without a name)."""

import sys

import pytest


def main(argv: list[str]) -> int:
    names = [] if not argv or argv[0].startswith("-") else ["--dlbench-backend", argv.pop(0)]
    return int(pytest.main(["--pyargs", "dlbench.plugin.testing", "-p", "no:cacheprovider", *names, *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
