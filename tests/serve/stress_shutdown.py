"""Stress (by hand, not in CI): SIGTERM while the HTTP threads are busy with clients that
connect, ask GET /health and leave. Every server must exit 0.

    .venv/bin/python tests/serve/stress_shutdown.py MODEL ROUNDS [SEED] [-- serve options]

It reproduced an abort of the shutdown (libmicrohttpd: "Failed to remove listen FD from
epoll set", from MHD_quiesce_daemon racing with its polling threads): 1 run in ~400 on 2
cores. $GPTOSS_BIN is the binary (default build/bin/gptoss)."""
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("GPTOSS_BIN", str(ROOT / "build" / "bin" / "gptoss"))


def hammer(port, stop):
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(100)
            s.close()
        except OSError:
            time.sleep(0.001)


def main():
    args = sys.argv[1:]
    extra = args[args.index("--") + 1:] if "--" in args else []
    args = args[:args.index("--")] if "--" in args else args
    model, rounds, seed = args[0], int(args[1]), int(args[2]) if len(args) > 2 else 0
    rng = random.Random(seed)
    env = dict(os.environ, GPTOSS_VOCAB=str(ROOT / "data" / "o200k_base.tiktoken"))
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.stderr"
        for r in range(rounds):
            with open(log, "w") as f:
                p = subprocess.Popen([BIN, "serve", "-m", model, "--port", "0", "-t", "1", *extra],
                                     stdout=subprocess.DEVNULL, stderr=f, env=env)
            while not (m := re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())):
                if p.poll() is not None:
                    sys.exit(f"the server did not start:\n{log.read_text()}")
                time.sleep(0.01)
            stop = threading.Event()
            threads = [threading.Thread(target=hammer, args=(int(m.group(1)), stop)) for _ in range(6)]
            for t in threads:
                t.start()
            time.sleep(0.02 + rng.random() * 0.1)
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = "no exit within 30 s"
            stop.set()
            for t in threads:
                t.join()
            if rc != 0:
                bad += 1
                print(f"round {r}: exit status {rc}\n{log.read_text()[-600:]}", flush=True)
    print(f"{rounds} rounds, {bad} not exiting with 0")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
