"""`striate serve` as a user runs it: the URL printed, the server answering, and one line for a
port in use or a missing model."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from striate.cli.main import main
from tests.serve.conftest import digit_image, encode


def _one_error_line(capsys, *words: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def test_a_port_in_use_is_one_line(run_folder, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(run_folder), "--port", str(port)]) == 2
    _one_error_line(capsys, f"port {port} on 127.0.0.1 is in use", "--port")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], ("give a run folder",)),
        (["RUN", "--pretrained", "efficientnet_lite0"], ("not both",)),
        (["RUN", "--port", "70000"], ("--port must be between 1 and 65535",)),
        (["RUN", "--max-mb", "0"], ("--max-mb",)),
        (["RUN", "--host", "no-such-host.invalid"], ("--host no-such-host.invalid",)),
        (["--pretrained", "nosuchnet", "--port", "0"], ("nosuchnet",)),
    ],
)
def test_bad_options_are_one_line(run_folder, capsys, args, words):
    args = [str(run_folder) if a == "RUN" else a for a in args]
    assert main(["serve", *args]) == 2
    _one_error_line(capsys, *words)


def test_a_folder_without_a_model_is_one_line(tmp_path, capsys):
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    _one_error_line(capsys, str(tmp_path))


def test_help_names_the_endpoints(capsys):
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "/predict" in out and "--host" in out and "127.0.0.1" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_command_serves_on_localhost_until_interrupted(run_folder, classifier, digits_test):
    port = _free_port()
    code = "import sys; from striate.cli.main import main; sys.exit(main())"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", str(run_folder), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert (
            line.strip() == f"serving {run_folder.name} at http://127.0.0.1:{port}/ (Ctrl+C stops)"
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert health.json()["model"] == run_folder.name
        data = encode(digit_image(digits_test, 9))
        r = httpx.post(f"http://127.0.0.1:{port}/predict?k=1", files={"file": ("d.png", data)})
        want = classifier.classes[
            int(classifier.predict_proba([digit_image(digits_test, 9)]).argmax())
        ]
        assert r.json()["predictions"][0]["class"] == want
        with socket.socket() as s:  # listening on the loopback address only
            assert s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err, err
