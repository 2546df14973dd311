"""Starts the real `velro` binary on 127.0.0.1 with a data folder of its own, for the tests that
drive it through the official Supabase clients."""

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, extra_env: dict[str, str]):
        binary = os.environ.get("VELRO_TEST_BIN", str(ROOT / "target" / "debug" / "velro"))
        self.data_dir = tempfile.TemporaryDirectory(prefix="velro-clients-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # The outer environment's VELRO_* settings (a developer's, or VELRO_TEST_BIN) stay out.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("VELRO_")}
        env = {
            **inherited,
            "VELRO_BIND": f"127.0.0.1:{self.port}",
            "VELRO_DATA_DIR": self.data_dir.name,
            "VELRO_JWT_SECRET": JWT_SECRET,
            # Cheap hashing: these tests check the protocol, not the hash's strength.
            "VELRO_ARGON2_MEMORY_KIB": "64",
            "VELRO_ARGON2_ITERATIONS": "1",
            "VELRO_LOG_LEVEL": "warn",
            **extra_env,
        }
        self.log = open(Path(self.data_dir.name) / "server.log", "wb")
        self.process = subprocess.Popen(
            [binary, "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"velro exited: {self.server_log()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("velro did not start in 30 s")

    @property
    def auth_url(self) -> str:
        return f"{self.base}/auth/v1"

    def server_log(self) -> str:
        return (Path(self.data_dir.name) / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        self.data_dir.cleanup()


@pytest.fixture(scope="session")
def server():
    # Many sign-ups and sign-ins from one address: the limits have a test of their own.
    started = Server({"VELRO_RATE_LIMITS": "off"})
    yield started
    started.stop()


@pytest.fixture(scope="session")
def limited_server():
    started = Server({})
    yield started
    started.stop()


@pytest.fixture(scope="session")
def budget_server():
    # The other limits at their defaults; the mail budget through GoTrue's own variable.
    started = Server({"GOTRUE_RATE_LIMIT_EMAIL_SENT": "2/1h"})
    yield started
    started.stop()


@pytest.fixture(scope="session")
def unconfirmed_server():
    # GoTrue's MAILER_AUTOCONFIRM=false: sign-up mails a confirmation.
    started = Server({"VELRO_RATE_LIMITS": "off", "VELRO_MAILER_AUTOCONFIRM": "false"})
    yield started
    started.stop()


@pytest.fixture(scope="session")
def single_change_server():
    # GoTrue's variable, read as the fallback of VELRO_MAILER_SECURE_EMAIL_CHANGE_ENABLED.
    started = Server(
        {"VELRO_RATE_LIMITS": "off", "GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED": "false"}
    )
    yield started
    started.stop()
