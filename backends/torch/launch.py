"""Start one process per replica of this host, as ``torchrun`` does, with the
rendezvous store listening where dlbench says rather than on every interface.

torchrun's agent hosts its TCPStores (the rendezvous's and the process
group's) on every interface (``*:PORT``), and has no option to bind them;
the stores are unauthenticated, so a single-host run would be open to its
network for as long as it trains. This launcher binds the socket itself
(loopback for one host, the address of ``hosts[0]`` for several), hands it
to a ``TCPStore`` (``master_listen_fd``) on host 0, and starts the replicas
with the variables torchrun gives them (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT`` and
``TORCHELASTIC_USE_AGENT_STORE``, so that they join that store as clients).
Gloo's own sockets follow ``GLOO_SOCKET_IFNAME``: the interface of this
host's address. A replica that fails stops the others (a collective would
wait for it forever), and this process exits with its code; SIGINT and
SIGTERM are passed on to the replicas.

Usage: ``python -m dlbench_backends.torch.launch REPLICAS NODES NODE_RANK
BIND_ADDRESS MASTER_ADDRESS PORT LOCAL_INTERFACE -- COMMAND...``
(``PORT`` 0: a free one, one host only).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

POLL_SECONDS = 0.1


def serve_store(bind: str, port: int, world_size: int):
    """The job's TCPStore, listening on ``bind:port`` only; (store, port)."""
    from torch.distributed import TCPStore

    listener = socket.create_server((bind, port), backlog=128)
    port = listener.getsockname()[1]
    store = TCPStore(bind, port, world_size, is_master=True, timeout=timedelta(minutes=30), wait_for_workers=False,
                     master_listen_fd=listener.detach())
    return store, port


def replica_environment(replicas: int, nodes: int, node_rank: int, master: str, port: int, interface: str,
                        local_rank: int) -> dict[str, str]:
    world = replicas * nodes
    env = {**os.environ, "RANK": str(node_rank * replicas + local_rank), "LOCAL_RANK": str(local_rank),
           "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(replicas), "GROUP_RANK": str(node_rank),
           "MASTER_ADDR": master, "MASTER_PORT": str(port), "TORCHELASTIC_USE_AGENT_STORE": "True"}
    if interface:
        env["GLOO_SOCKET_IFNAME"] = interface
    return env


def supervise(processes: list[subprocess.Popen]) -> int:
    """Wait for every replica; the first failure stops the rest. The exit code to give."""
    def forward(signum, _frame):
        for proc in processes:
            if proc.poll() is None:
                proc.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    while True:
        codes = [proc.poll() for proc in processes]
        failed = [code for code in codes if code not in (None, 0)]
        if failed:
            for proc in processes:
                if proc.poll() is None:
                    proc.kill()
            for proc in processes:
                proc.wait()
            return failed[0] if failed[0] > 0 else 128 - failed[0]
        if all(code == 0 for code in codes):
            return 0
        time.sleep(POLL_SECONDS)


def main(argv: list[str]) -> int:
    split = argv.index("--")
    replicas, nodes, node_rank, bind, master, port, interface = argv[:split]
    replicas, nodes, node_rank, port = int(replicas), int(nodes), int(node_rank), int(port)
    store = None
    if node_rank == 0:
        store, port = serve_store(bind, port, replicas * nodes)
    processes = [subprocess.Popen(argv[split + 1:], env=replica_environment(replicas, nodes, node_rank, master,
                                                                            port, interface, local))
                 for local in range(replicas)]
    code = supervise(processes)
    del store
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
