"""Fixtures for the `gptoss serve` tests: a tiny random model and servers on loopback.

The binary is $GPTOSS_BIN or build/bin/gptoss. Each server listens on 127.0.0.1 with an
ephemeral port (--port 0; the port is read from its stderr) and is stopped with SIGTERM;
its exit status must be 0.
"""
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("GPTOSS_BIN", ROOT / "build" / "bin" / "gptoss")).absolute()


class Server:
    def __init__(self, model, args, tmp, name="server"):
        self.log_path = Path(tmp) / f"{name}.stderr"
        self.log = open(self.log_path, "w")
        env = dict(os.environ, GPTOSS_VOCAB=str(ROOT / "data" / "o200k_base.tiktoken"))
        self.proc = subprocess.Popen([str(BIN), "serve", "-m", str(model), "--port", "0", *args],
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.model = Path(model).name
        deadline = time.monotonic() + 60
        while True:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.log_path.read_text())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def client(self, **kw):
        kw.setdefault("api_key", "unused")
        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 120)
        return openai.OpenAI(base_url=self.url + "/v1", **kw)

    def stderr(self):
        return self.log_path.read_text()

    def anon_rss_kib(self):
        """Anonymous resident memory (RssAnon): the mapped model file is left out."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
        raise RuntimeError("no RssAnon")

    def metric(self, name):
        import urllib.request
        text = urllib.request.urlopen(self.url + "/metrics", timeout=30).read().decode()
        total = 0.0
        found = False
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        assert found, f"metric {name} missing"
        return total

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signals the server and returns its exit status (it must exit by itself)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"server did not exit within {timeout} s after {sig}:\n{self.stderr()}")
        self.log.close()
        return rc


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.bin"
    subprocess.run([str(BIN), "make-model", "--preset", "tiny", "--seed", "1", str(path)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


@pytest.fixture
def start_server(tiny_model, tmp_path):
    """start_server(*args) -> Server; every server started is stopped at the end and must
    exit with status 0."""
    servers = []

    def start(*args, name="server"):
        s = Server(tiny_model, ["-t", "1", *args], tmp_path, name=f"{name}{len(servers)}")
        servers.append(s)
        return s

    yield start
    for s in servers:
        rc = s.stop()
        assert rc == 0, f"server exit status {rc}:\n{s.stderr()}"
        assert "ERROR" not in s.stderr() and "runtime error" not in s.stderr(), s.stderr()


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """A shared server: two requests at once, 2048 tokens each."""
    s = Server(tiny_model, ["-t", "1", "-c", "2048", "--parallel", "2"], tmp_path_factory.mktemp("srv"))
    yield s
    rc = s.stop()
    assert rc == 0, f"server exit status {rc}:\n{s.stderr()}"
