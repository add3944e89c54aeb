"""CIFAR-10 (JPEG copy) ConvNet: coarse-to-fine random search of lr, weight decay and dropout.

    python benchmarks/search_cifar10.py              # ~12 min on 2 cores
    python benchmarks/search_cifar10.py --quick      # subsets: a smoke test (~1.5 min)

The setting, in the constants below: the registry's "convnet" (0.59 M parameters), a stratified
TRAIN_SIZE-image subset (seed 0) of the 50,000 training images, of which 10% (stratified) is
the validation set every trial is scored on; batch 64, SGD (Nesterov momentum 0.9), 1cycle,
flip + crop augmentation; one torch thread per process. The space: lr log-uniform in
[1e-3, 3], weight decay log-uniform in [1e-6, 1e-2], dropout (before the last layer) uniform in
[0, 0.5]; random sampler, seed 0; a trial stops when its loss exceeds 3x its first loss.

coarse: COARSE trials of one epoch on COARSE_TRAIN of the training images, run by two processes
sharing one study (a journal file): the ratio of the summed trial times to the stage's wall time
is the speed-up of sharing. fine: FINE trials of FINE_EPOCHS epochs on all training images, in
the range narrowed around the best quarter of the coarse trials; the process running it is
killed (SIGKILL) after KILL_AFTER fine trials, and the same command run again resumes: the trial
the dead process left running is marked failed and run again, the finished ones count.

Writes results/search_cifar10_val_acc.png (val accuracy against each parameter) and prints the
results table as markdown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import print_machine, results_dir, row, run_sections, shared_data

CIFAR = "cifar10/cifar10-jpeg.zip"
SPACE = ["lr=log:1e-3:3", "wd=log:1e-6:1e-2", "dropout=uniform:0:0.5"]
FULL = dict(train=8_000, coarse_train=3_000, coarse=20, fine=5, fine_epochs=3, kill_after=2)
QUICK = dict(train=1_500, coarse_train=500, coarse=4, fine=2, fine_epochs=1, kill_after=1)
STUDY = "cifar10"


def settings(quick: bool) -> dict:
    return QUICK if quick else FULL


def worker(which: str, out: str, quick: bool) -> None:
    """One search process: the coarse stage, or both stages (coarse already done: the fine)."""
    import torch

    from striate.train import Stage, TrainConfig, search

    torch.set_num_threads(1)
    s = settings(quick)
    config = TrainConfig(
        data=str(shared_data() / CIFAR),
        model="convnet",
        epochs=s["fine_epochs"],
        batch_size=64,
        opt="sgd",
        schedule="onecycle",
        augment="flip,crop",
        train_size=s["train"],
        test_size=500,
        precision="fp32",
        device="cpu",
    )
    stages = [Stage("coarse", s["coarse"], epochs=1, train_size=s["coarse_train"])]
    if which == "all":
        stages.append(Stage("fine", s["fine"], epochs=s["fine_epochs"]))
    search(config, SPACE, stages=stages, out=out, study_name=STUDY, sampler="random", seed=0)


def _launch(which: str, out: Path, quick: bool, log: Path) -> subprocess.Popen:
    args = [sys.executable, __file__, "--worker", which, str(out)] + (["--quick"] if quick else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, stdout=log.open("a"), stderr=subprocess.STDOUT, env=env)


def _finished(out: Path, stage: str) -> int:
    import optuna

    from striate.train.hpsearch import open_storage

    try:
        study = optuna.load_study(study_name=f"{STUDY}-{stage}", storage=open_storage(None, out))
    except KeyError:
        return 0
    return sum(t.state.is_finished() and "discarded" not in t.user_attrs for t in study.trials)


def bench_search(quick: bool) -> list[dict]:
    s = settings(quick)
    out = Path(tempfile.mkdtemp(prefix="striate-search-"))
    log = out / "workers.log"
    rows: list[dict] = []

    # coarse: two processes share the study
    t0 = time.perf_counter()
    procs = [_launch("coarse", out, quick, log) for _ in range(2)]
    codes = [p.wait() for p in procs]
    coarse_wall = time.perf_counter() - t0
    if codes != [0, 0]:
        raise SystemExit(f"coarse workers failed ({codes}); see {log}")
    coarse = json.loads((out / "results.json").read_text())["trials"]
    busy = sum(t["seconds"] or 0 for t in coarse)
    print(f"coarse: {len(coarse)} trials in {coarse_wall:.0f} s by 2 processes", flush=True)

    # fine: one process, killed after KILL_AFTER trials, then resumed by the same command
    t1 = time.perf_counter()
    p = _launch("all", out, quick, log)
    while _finished(out, "fine") < s["kill_after"]:
        if p.poll() is not None:
            raise SystemExit(f"the fine worker ended early ({p.returncode}); see {log}")
        time.sleep(1.0)
    time.sleep(2.0)  # into the next trial
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_at = _finished(out, "fine")
    print(f"fine: killed after {killed_at} finished trials; resuming", flush=True)
    p = _launch("all", out, quick, log)
    if p.wait() != 0:
        raise SystemExit(f"the resumed fine worker failed; see {log}")
    fine_wall = time.perf_counter() - t1

    result = json.loads((out / "results.json").read_text())
    trials = result["trials"]
    src = out / "val_acc.png"
    dest = results_dir(quick) / "search_cifar10_val_acc.png"
    shutil.copyfile(src, dest)
    print(f"wrote {dest}")
    import optuna

    from striate.train.hpsearch import open_storage

    fine_study = optuna.load_study(study_name=f"{STUDY}-fine", storage=open_storage(None, out))
    retried = [t for t in fine_study.trials if "retry_of" in t.user_attrs]
    left = [t for t in fine_study.trials if "discarded" in t.user_attrs]

    print("\n| stage | trial | val acc | state | lr | wd | dropout | epochs | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in trials:
        acc = "" if t["val_acc"] is None else f"{100 * t['val_acc']:.1f}%"
        prm = t["params"]
        print(
            f"| {t['stage']} | {t['trial']} | {acc} | {t['state']} | {prm['lr']:.3g} | "
            f"{prm['wd']:.2g} | {prm['dropout']:.2f} | {t['epochs']} | {t['seconds']:.0f} |"
        )
    print("\nfine range:", result["spaces"]["fine"])
    for w in result["warnings"]:
        print("warning:", w)
    print(f"\n(run folder {out}; worker output in {log})\n")

    best = result["best"]
    aborted = sum(t["state"] == "aborted" for t in trials)
    rows += [
        row("coarse", "trials (2 processes, 1 study)", len(coarse), "trials", f"{aborted} aborted"),
        row("coarse", "wall time", coarse_wall, "s", f"summed trial time {busy:.0f} s"),
        row("coarse", "summed trial time / wall", busy / coarse_wall, "×", "sharing speed-up"),
        row(
            "fine",
            "trials after kill + resume",
            sum(t["stage"] == "fine" for t in trials),
            "trials",
            f"killed after {killed_at}; {len(left)} left running -> failed, {len(retried)} retried",
        ),
        row("fine", "wall time (incl. the killed trial)", fine_wall, "s"),
        row(
            "best",
            f"{best['stage']} trial {best['trial']}",
            100 * best["val_acc"],
            "%",
            ", ".join(f"{k}={v:.3g}" for k, v in best["params"].items()),
        ),
    ]
    return rows


if __name__ == "__main__":
    print_machine()
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], "--quick" in sys.argv[4:])
    else:
        run_sections(__doc__, {"search": bench_search})
