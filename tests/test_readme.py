"""Every example in README.md runs as written.

Its blocks run in order in one working folder that has `../shared/data` beside it, as a reader's
clone has: ```sh blocks line by line (`striate ...` in this process, `torchrun` as a process),
```python blocks with `exec`, and a ```toml block whose first line is `# FILE` is written to FILE
first. Datasets are cut to STRIATE_MAX_IMAGES images per split (a stratified sample; the setting
is striate's own, for quick trials), so the whole README takes minutes, not hours; the commands
are otherwise exactly those of the README. A command that needs what a test cannot have (another
machine, a database server) is listed in NOT_RUN with the reason; the longest few (SLOW_ONLY) run
under `-m slow` only.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from striate.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)

# (a pattern of the command line, why it is not run)
NOT_RUN = (
    (r"^make ", "sets up the project: what `make test` did before this test ran"),
    (r"--rdzv-endpoint HOST0", "needs several machines"),
    (r"--storage postgresql://", "needs a PostgreSQL server"),
    (r"^createdb ", "needs a PostgreSQL server"),
    (r"^pip install", "installs packages"),
    (r"^striate serve ", "runs a server until it is stopped (tests/serve start the real one)"),
    (r"^curl ", "needs that server running"),
)
# (a pattern, why it runs only under `-m slow`): the longest examples, which `make test` leaves to
# `make test-slow` (each costs 15-25 s even on a few hundred images)
SLOW_ONLY = (
    (r"^torchrun --standalone", "starts two processes"),
    (
        r"^striate train --recipe cifar10-(fast|muon|quick) --data \S+$",
        "the full network (GPU examples)",
    ),
    (r"^striate visualize (classes|dream|invert) --pretrained", "optimises 224×224 pixels"),
    (r"^striate (stylize|harmonize)", "optimises pixels or trains a network for minutes"),
    (r"^striate detect train .*two-stage", "the second detector (the grid one runs)"),
    (r"^striate segment ", "trains a segmenter (the detector's example covers the job's path)"),
    (r"^striate text train --(model|corpus kjv)", "the recorded language models, 3–5 minutes each"),
    (r"^striate text eval runs/text/kjv", "needs the KJV model of the line before"),
    (r"^striate generate train (pixelcnn|autoencoder)", "a pass per pixel to sample; tests cover"),
    (r"^striate generate eval runs/generate/pixelcnn", "needs the PixelCNN of the line before"),
    (r"^striate rl (train ppo|eval runs/rl/ppo)", "CartPole for 10k steps and a GIF; tests cover"),
    (r"^striate text \w+ (--steps 200|runs/text/quick)", "a minute's training; CLI tests cover"),
    (r"^striate caption \w+ (--train-size 1000|runs/caption/quick)", "as the text model's"),
    (r"^striate search -p \S+ -p \S+ -p dropout", "15 trials on CIFAR-10; the CLI test covers"),
    (r"^striate export --pretrained", "EfficientNet-Lite0 to ONNX, ~30 s; tests/export covers"),
    (r"^striate grasp ", "scenes, a GQ-CNN and plans, ~40 s; tests/cli/test_grasp_cli.py covers"),
    (r"^striate assembly ", "kits, three networks, evaluation, ~30 s; its CLI test covers"),
)
# commands whose documented outcome includes exit status 1
STATUS_1_MEANS = {"doctor": "a check failed (the table says which)"}


def readme_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, line number) of every fenced block."""
    return [
        (m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in BLOCK.finditer(text)
    ]


def shell_commands(body: str) -> list[list[str]]:
    """The command lines of a ```sh block: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", body)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def skipped(argv: list[str], slow: bool = True) -> str | None:
    """Why a command is not run (None: it is); `slow` False leaves out SLOW_ONLY too."""
    line = " ".join(argv)
    rules = NOT_RUN if slow else NOT_RUN + SLOW_ONLY
    return next((why for pattern, why in rules if re.search(pattern, line)), None)


def test_the_block_parser_on_a_small_readme():
    text = (
        "intro\n```sh\nstriate train --lr 0.1 \\\n   --epochs 2   # a comment\n\nmake test\n```\n"
        "```python\nprint(1)\n```\n"
    )
    blocks = readme_blocks(text)
    assert [(lang, line) for lang, _, line in blocks] == [("sh", 2), ("python", 8)]
    assert shell_commands(blocks[0][1]) == [
        ["striate", "train", "--lr", "0.1", "--epochs", "2"],
        ["make", "test"],
    ]
    assert skipped(["make", "test"]) and not skipped(["striate", "train"])
    assert skipped(["striate", "stylize", "a.jpg", "b.jpg"], slow=False)
    gpu = ["striate", "train", "--recipe", "cifar10-fast", "--data"]
    gpu.append("../shared/data/cifar10/cifar10-jpeg.zip")
    assert skipped(gpu, slow=False) and not skipped(gpu, slow=True)
    assert not skipped([*gpu, "--epochs", "14"], slow=False)  # the CPU example runs


@pytest.fixture
def reader_folder(tmp_path, shared_data, monkeypatch):
    """A working folder with ../shared/data and docs/, as in a clone beside shared/."""
    (tmp_path / "shared").symlink_to(shared_data.parent)
    work = tmp_path / "work"
    work.mkdir()
    (work / "docs").symlink_to(ROOT / "docs")  # the clone's figures (an image to caption)
    monkeypatch.chdir(work)
    monkeypatch.setenv("STRIATE_MAX_IMAGES", os.environ.get("STRIATE_MAX_IMAGES", "300"))
    return work


@pytest.mark.parametrize("slow", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_every_readme_example_runs_as_written(reader_folder, capfd, slow):
    text = README.read_text()
    ran, times = 0, []
    for lang, body, line in readme_blocks(text):
        where = f"README.md line {line}"
        if lang == "toml":
            first, _, rest = body.partition("\n")
            if first.startswith("# "):
                (reader_folder / first[2:].strip()).write_text(rest)
            continue
        if lang == "python":
            namespace = {"__name__": "__readme__"}
            start = time.perf_counter()
            exec(compile(body, where, "exec"), namespace)  # noqa: S102 - our own README
            times.append((time.perf_counter() - start, where))
            ran += 1
            continue
        if lang != "sh":
            continue
        for argv in shell_commands(body):
            if skipped(argv, slow):
                continue
            command = " ".join(argv)
            start = time.perf_counter()
            if argv[0] == "striate":
                code = main(argv[1:])
                allowed = {0, 1} if argv[1] in STATUS_1_MEANS else {0}
                _, err = capfd.readouterr()
                assert code in allowed, f"{where}: `{command}` exited {code}\n{err[-2000:]}"
            elif argv[:2] == ["python", "-m"]:
                done = subprocess.run(
                    [sys.executable, *argv[1:]], capture_output=True, text=True, timeout=600
                )
                assert done.returncode == 0, f"{where}: `{command}`\n{done.stderr[-2000:]}"
            elif argv[0] == "torchrun":
                venv_bin = str(Path(sys.executable).parent)
                env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ["PATH"]}
                done = subprocess.run(
                    [str(Path(venv_bin) / argv[0]), *argv[1:]],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=600,
                )
                assert done.returncode == 0, f"{where}: `{command}`\n{done.stderr[-2000:]}"
            else:
                pytest.fail(f"{where}: `{command}` is neither striate nor listed in NOT_RUN")
            times.append((time.perf_counter() - start, command))
            ran += 1
    if os.environ.get("STRIATE_README_TIMES"):
        Path(os.environ["STRIATE_README_TIMES"]).write_text(
            "\n".join(f"{t:6.1f} s  {what}" for t, what in sorted(times, reverse=True))
        )
    assert ran > 40  # the README's examples, not an empty parse
