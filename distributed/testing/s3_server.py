"""A real S3-compatible server for tests and benchmarks: moto's server mode in its own process on
127.0.0.1 (no docker, no network). Clients talk to it through fsspec/s3fs, the code users run,
configured only by the standard AWS_* environment that `S3Server.environ` gives. moto is in the dev
extra only: this module never imports it, the server process does."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """`with S3Server() as s3: os.environ.update(s3.environ)`; stopped (process ended) on exit."""

    def __init__(self):
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    @property
    def environ(self) -> dict[str, str]:
        """What a user of a private S3 endpoint sets: endpoint and (dummy) credentials, nothing else."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> S3Server:
        if importlib.util.find_spec("moto") is None:
            raise RuntimeError("no moto: moto[server] is in the dev extra (./scripts/setup.sh)")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not start on port {self.port}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def make_bucket(self, name: str) -> str:
        """Create bucket `name` through s3fs (with this server's environment); returns 's3://name'."""
        import s3fs

        saved = {k: os.environ.get(k) for k in self.environ}
        os.environ.update(self.environ)
        try:
            s3fs.S3FileSystem(skip_instance_cache=True).mkdir(name)
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        return f"s3://{name}"

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
