"""The report: JSON, table, figures, the run report's Doctor section, the error analysis as a
check."""

from __future__ import annotations

import json

import pytest
from matplotlib.figure import Figure
from rich.console import Console

from striate.errors import ConfigError
from striate.evaluate.report import add_section, doctor_section, write_report
from striate.train.doctor import CHECKS, Check, DoctorReport
from striate.train.error_analysis import analyze_errors


def _report_with(path, doctor):
    """A run report with nothing in it but a Doctor section."""
    return write_report(
        path,
        title="t",
        config={},
        history=[],
        steps={},
        final={},
        classes=["a"],
        confusion=None,
        doctor=doctor,
    )


def test_report_serialises_renders_and_plots(healthy):
    _, _, report = healthy
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["passed"] is True and len(d["checks"]) == len(CHECKS)
    assert {"name", "status", "value", "advice"} <= d["checks"][0].keys()
    assert d["activations"] and {"mean", "std", "dead_frac", "hist"} <= d["activations"][0].keys()
    console = Console(record=True, width=200)
    console.print(report.table())
    text = console.export_text()
    assert "initial_loss" in text and "pass" in text
    figs = report.figures()
    assert {"doctor_activations.png", "doctor_layer_stats.png", "doctor_curves.png"} <= set(figs)
    assert all(isinstance(f, Figure) for f in figs.values())


def test_check_status_is_validated():
    with pytest.raises(ValueError, match="status"):
        Check("x", "ok", None, "")


def test_the_run_report_gets_a_doctor_section(healthy, tmp_path):
    _, _, report = healthy
    d = report.to_dict()
    d["checks"][0]["advice"] = "<script>x</script>"  # user-visible text is escaped
    page = _report_with(tmp_path / "report.html", d).read_text()
    assert page.count("<h2>Doctor</h2>") == 1 and "&lt;script&gt;" in page
    assert "initial_loss" in page and "activation histograms per layer" in page
    # refreshing the section replaces it in place
    add_section(tmp_path / "report.html", "Doctor", doctor_section({"checks": [], "passed": False}))
    page = (tmp_path / "report.html").read_text()
    assert page.count("<h2>Doctor</h2>") == 1 and "a check failed" in page
    assert "initial_loss" not in page and page.rstrip().endswith("</html>")
    with pytest.raises(ConfigError, match="doctor"):
        _report_with(tmp_path / "r2.html", {"nope": 1})


def test_the_error_analysis_is_a_check_and_goes_into_the_report(healthy, tmp_path):
    _, _, report = healthy
    report = DoctorReport(checks=list(report.checks))
    analysis = analyze_errors(
        human=0.01, train=0.08, train_dev=0.10, sizes={"train": 2000, "train_dev": 2000}
    )
    check = report.add_error_analysis(analysis)
    assert report["error_analysis"] is check and check.status == "warn"  # 7 % bias: act on it
    assert check.value == pytest.approx(0.07) and "avoidable bias +7.00%" in check.detail
    assert not report.failed  # advice, never a failure
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["error_analysis"]["largest"] == "avoidable bias"
    page = _report_with(tmp_path / "report.html", d).read_text()
    assert "error_analysis" in page and "avoidable bias" in page
    # a second analysis replaces the first
    report.add_error_analysis(analyze_errors(human=0.02, train=0.01))
    assert [c.name for c in report.checks].count("error_analysis") == 1
    assert report["error_analysis"].status == "pass"
