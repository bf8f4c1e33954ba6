"""README.md's `gptoss serve` examples run as written: the bash block (make the model, start
the server, wait, curl) and then the Python block. Two substitutions keep the run to itself:
the port 8080 becomes a free one and /tmp/tiny.bin a file in a temporary directory; a line
after the server's start records its pid, to stop it at the end."""
import json
import os
import re
import signal
import socket
import subprocess
import sys

from conftest import BIN, ROOT


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_serve_examples(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## `gptoss serve`"):]
    section = section[:section.index("\n## ", 4)]
    bash, python = (re.search(r"```%s\n(.*?)```" % lang, section, re.S).group(1) for lang in ("bash", "python"))
    port = str(free_port())
    model = str(tmp_path / "tiny.bin")
    subst = lambda text: text.replace("8080", port).replace("/tmp/tiny.bin", model)
    os.symlink(BIN.parent.parent, tmp_path / "build")
    # the server's pid, right after the line that starts it in the background
    script = re.sub(r"(?m)^(build/bin/gptoss serve .*&.*)$", r"\1\necho $! > server.pid", subst(bash))
    assert "server.pid" in script
    try:
        # files, not pipes: the server started in the background keeps them open
        with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
            r = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, stdout=out, stderr=err, timeout=120)
        assert r.returncode == 0, (tmp_path / "err").read_text()
        reply = json.loads((tmp_path / "out").read_text())
        assert reply["object"] == "chat.completion" and reply["usage"]["completion_tokens"] == 16
        p = subprocess.run([sys.executable, "-c", subst(python)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines()[-1] in ("response.completed", "response.incomplete")
    finally:
        pid_file = tmp_path / "server.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else 0
        if pid:
            os.kill(pid, signal.SIGTERM)
            for _ in range(200):
                if not os.path.exists(f"/proc/{pid}"):
                    break
                subprocess.run(["sleep", "0.05"])
            assert not os.path.exists(f"/proc/{pid}"), "the README's server did not exit on SIGTERM"
