"""striate env: the text report, its JSON (schema and agreement with torch), a short real
measurement with advice, one-line errors, and on a GPU the CUDA fields."""

from __future__ import annotations

import json

import pytest
import torch

from striate.cli.main import main


def run(capsys, *args):
    code = main(["env", *[str(a) for a in args], "--no-progress"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_schema_without_measuring(capsys, tmp_path):
    code, out, err = run(capsys, "--json", "--no-measure", "--runs", tmp_path)
    assert code == 0 and err == ""
    facts = json.loads(out)
    assert set(facts) == {
        "striate", "python", "python_executable", "platform", "torch", "cuda", "cpu", "threads",
        "memory", "disk", "measurement", "advice",
    }  # fmt: skip
    assert facts["torch"] == torch.__version__ and facts["measurement"] is None
    assert set(facts["cuda"]) == {"built_with", "available", "cudnn", "devices"}
    assert set(facts["cpu"]) == {
        "model", "cores", "usable_cores", "native_bf16", "bf16_forced_by", "precision_auto",
    }  # fmt: skip
    assert set(facts["memory"]) == {"total", "available"}
    assert facts["disk"]["path"] == str(tmp_path.absolute())


def test_json_with_a_short_measurement(capsys):
    code, out, _ = run(capsys, "--json", "--seconds", 1, "--device", "cpu")
    assert code == 0
    result = json.loads(out)
    m = result["measurement"]
    assert m["data"] == "digits" and m["loader"] == "BatchLoader" and m["device"] == "cpu"
    for side in ("loading", "training"):
        assert set(m[side]) == {"images", "seconds", "batches", "images_per_s"}
        assert m[side]["images_per_s"] > 0
        assert m[side]["images_per_s"] == pytest.approx(m[side]["images"] / m[side]["seconds"])
    first = result["advice"][0]
    assert "is the bottleneck" in first or "are balanced" in first


def test_text_report(capsys):
    code, out, _ = run(capsys, "--seconds", 1, "--device", "cpu", "--batch-size", 16)
    assert code == 0
    assert f"torch     {torch.__version__}" in out
    if torch.version.cuda is None:
        assert "no CUDA (this torch is a CPU-only build)" in out
    assert "native bf16: no, STRIATE_CPU_BF16=0" in out  # the suite's setting (conftest)
    loading = next(line for line in out.splitlines() if line.startswith("loading "))
    assert "images/s" in loading and "BatchLoader" in loading and "batch 16 on cpu" in loading
    training = next(line for line in out.splitlines() if line.startswith("training "))
    assert "convnet_small, fp32 on cpu, forward+backward+step" in training
    assert any(line.startswith("advice: ") for line in out.splitlines())


def test_progress_goes_to_stderr(capsys):
    code = main(["env", "--seconds", "0.5", "--device", "cpu", "--json"])
    out = capsys.readouterr()
    assert code == 0 and json.loads(out.out)["measurement"] is not None
    assert "measuring data loading" in out.err and "measuring training" in out.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seconds", "-1"], "seconds must be a number in (0, 3600]"),
        (["--data", "no-such-set"], "unknown dataset 'no-such-set'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--device", "cuda:9"], "cuda"),
        (["--model", "no_such_model"], "unknown model 'no_such_model'"),
    ],
)
def test_bad_options_are_one_line_errors(capsys, args, message):
    code, _, err = run(capsys, "--seconds", 1, *args)  # the last --seconds wins
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error: ") and message in lines[-1], err
    assert not any(line.startswith(("Traceback", "  File")) for line in lines)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fields_and_a_measurement_on_the_gpu(capsys):
    code, out, _ = run(capsys, "--seconds", 2, "--json", "--device", "cuda")
    assert code == 0
    result = json.loads(out)
    cuda = result["cuda"]
    assert cuda["available"] and cuda["built_with"] == torch.version.cuda
    assert cuda["cudnn"] is not None
    assert len(cuda["devices"]) == torch.cuda.device_count()
    gpu = cuda["devices"][0]
    assert gpu["name"] == torch.cuda.get_device_name(0)
    major, minor = torch.cuda.get_device_capability(0)
    assert gpu["capability"] == f"{major}.{minor}"
    assert gpu["memory_total"] == torch.cuda.get_device_properties(0).total_memory
    assert 0 < gpu["memory_free"] <= gpu["memory_total"]
    assert gpu["precision_auto"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    m = result["measurement"]
    assert m["device"].startswith("cuda") and m["precision"] == gpu["precision_auto"]
    assert m["loading"]["images_per_s"] > 0 and m["training"]["images_per_s"] > 0
