"""A local standalone Spark cluster (one master, one worker) from the pyspark package, on 127.0.0.1.

The pyspark wheel ships `bin/spark-class` and the jars but not `sbin/start-master.sh`; we start the master and the
worker with spark-class directly, on free ports, with logs and pid files under one state folder, and wait until
the worker has registered with the master. `stop` kills both process groups (and their executors).

    python -m infra.spark.cluster start [--state DIR] [--cores 2] [--memory 2g]   # prints the master URL
    python -m infra.spark.cluster stop [--state DIR]
    ONEMAP_SPARK_MASTER=spark://127.0.0.1:PORT onemap build --engine spark
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).resolve().parent
DEFAULT_STATE = Path(os.environ.get("ONEMAP_SPARK_STATE", Path.home() / ".onemap" / "spark-cluster"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Cluster:
    master_url: str
    web_url: str
    state: Path

    def workers(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.web_url}/json/", timeout=5) as response:  # noqa: S310 - loopback only
            return [w for w in json.load(response).get("workers", []) if w.get("state") == "ALIVE"]


def _spawn(state: Path, name: str, args: list[str]) -> int:
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOG_DIR": str(state),
           "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable), "SPARK_LOCAL_IP": "127.0.0.1"}
    log = open(state / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], env=env, stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    (state / f"{name}.pid").write_text(str(process.pid))
    return process.pid


def start(state: Path = DEFAULT_STATE, cores: int = 2, memory: str = "2g", timeout: float = 120.0) -> Cluster:
    """Start master + worker and return once the worker is registered (raise with the logs' tail otherwise)."""
    state.mkdir(parents=True, exist_ok=True)
    stop(state)
    port, web, worker_web = free_port(), free_port(), free_port()
    _spawn(state, "master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                             "--webui-port", str(web)])
    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web}", state)
    (state / "work").mkdir(exist_ok=True)
    _spawn(state, "worker", ["org.apache.spark.deploy.worker.Worker", cluster.master_url, "--host", "127.0.0.1",
                             "--cores", str(cores), "--memory", memory, "--webui-port", str(worker_web),
                             "--work-dir", str(state / "work")])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cluster.workers():
                (state / "master_url").write_text(cluster.master_url)
                return cluster
        except OSError:
            pass
        time.sleep(0.5)
    logs = "\n".join((state / f"{n}.log").read_text(errors="replace")[-1500:] for n in ("master", "worker"))
    stop(state)
    raise RuntimeError(f"the Spark worker did not register with {cluster.master_url} in {timeout:.0f} s:\n{logs}")


def stop(state: Path = DEFAULT_STATE) -> None:
    """Kill the worker and master process groups recorded in `state` (their executors are in the worker's group)."""
    for name in ("worker", "master"):
        pid_file = state / f"{name}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        pid_file.unlink(missing_ok=True)
    (state / "master_url").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--memory", default="2g")
    args = parser.parse_args()
    if args.action == "start":
        print(start(args.state, args.cores, args.memory).master_url)
    else:
        stop(args.state)


if __name__ == "__main__":
    main()
