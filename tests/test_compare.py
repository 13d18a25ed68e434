"""The comparison workflow: same inputs and initialisation for every weighting, the
FWI baseline beside them, the report folder; the metrics on hand-made cases; and
the reduced `seispinn demo`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from seispinn.cli import main
from seispinn.diagnostics.measures import heldout_misfit, velocity_scores
from seispinn.errors import ConfigError
from seispinn.experiments.compare import COLUMNS, compare, markdown_table
from seispinn.experiments.invert import load_invert_config
from seispinn.gathers import ShotGathers
from seispinn.models import homogeneous

ROOT = Path(__file__).resolve().parents[1]

# A reduced anomaly inversion: a few hundred points, a few dozen steps.
SMALL = {
    "training": {
        "steps": 24,
        "snapshot_every": 12,
        "frozen_until": {"velocity": 8},
        "log_every": 4,
    },
    "collocation": {"n_points": 600, "batch_size": 200, "data_batch": 200},
    "network": {"width": 16, "depth": 2},
    "physics": {"rounds": 1},
    "fwi": {"iterations": 2, "frequencies": [0.0]},
}


def test_velocity_scores_on_hand_made_models():
    true = homogeneous(4, 2, 10.0, 2000.0)
    start = homogeneous(4, 2, 10.0, 1900.0)
    values = true.values.copy()
    values[0, 0] += 200.0  # one cell 200 m/s off
    inverted = homogeneous(4, 2, 10.0, 2000.0).__class__(values, 10.0, 10.0)
    lit = np.zeros((2, 4), bool)
    lit[1] = True  # the bad cell is not illuminated
    s = velocity_scores(inverted.values, start.values, true.values, lit)
    assert s["velocity_rmse"] == pytest.approx(np.sqrt(200.0**2 / 8))
    assert s["velocity_error"] == pytest.approx(200.0 / np.sqrt(8 * 2000.0**2))
    assert s["velocity_rmse_illuminated"] == 0.0
    assert s["start_velocity_rmse"] == pytest.approx(100.0)
    assert s["start_velocity_rmse_illuminated"] == pytest.approx(100.0)


def test_heldout_misfit_uses_only_the_held_out_receivers():
    obs = ShotGathers(np.ones((1, 3, 4)), [0.0], [0.0], [[0.0, 1.0, 2.0]], [[0.0] * 3], 0.01)
    data = np.ones((1, 3, 4))
    data[0, 0] = 3.0  # a bad trace on a training receiver
    data[0, 1] = 1.5
    pred = ShotGathers(data, [0.0], [0.0], [[0.0, 1.0, 2.0]], [[0.0] * 3], 0.01)
    held = np.array([[False, True, False]])
    assert heldout_misfit(pred.data, obs.data, held) == pytest.approx(0.5)
    assert np.isnan(heldout_misfit(pred.data, obs.data, np.zeros((1, 3), bool)))


def test_markdown_table_drops_empty_columns():
    rows = [
        {k: float("nan") for k in COLUMNS} | {"method": "start", "seed": "", "velocity_error": 0.1}
    ]
    table = markdown_table(rows)
    assert table.splitlines()[0] == "| method | velocity_error |"
    assert "| start | 0.100 |" in table


def test_compare_runs_every_weighting_on_the_same_start_and_writes_the_report(tmp_path):
    config = load_invert_config(ROOT / "examples" / "anomaly_wells.toml", SMALL)
    report = compare(config, ["uniform", "sa"], tmp_path, baseline="fwi", progress=False)
    methods = [r["method"] for r in report.rows]
    assert methods == ["start", "uniform", "sa", "fwi"]
    for r in report.rows[1:]:
        assert np.isfinite(r["velocity_error"]) and np.isfinite(r["heldout_misfit"])
        assert r["wall_seconds"] > 0
    assert report.rows[1]["gamma_enrichment"] == pytest.approx(1.0)  # uniform has no preference
    # The mask's rank correlation with |r| is reported: none for a uniform mask.
    assert np.isnan(report.rows[1]["gamma_rank_correlation"])
    assert np.isfinite(report.rows[2]["gamma_rank_correlation"])
    # ... and the share of points it keeps: all for uniform, fewer for a mask that leans.
    assert report.rows[1]["gamma_effective_share"] == pytest.approx(1.0)
    assert 0.0 < report.rows[2]["gamma_effective_share"] < 1.0
    assert "gamma_effective_share" in (tmp_path / "report.md").read_text()
    # Same data, same initialisation: identical first losses before any update.
    h = {
        m: json.loads((tmp_path / "runs" / f"{m}_seed0" / "history.json").read_text())
        for m in ("uniform", "sa")
    }
    assert h["uniform"][0]["loss_data"] == h["sa"][0]["loss_data"]
    assert h["uniform"][0]["loss_pde"] == pytest.approx(h["sa"][0]["loss_pde"])
    with open(tmp_path / "metrics.csv") as f:
        assert [r["method"] for r in csv.DictReader(f)] == methods
    md = (tmp_path / "report.md").read_text()
    assert "| method |" in md and "figures/velocity.png" in md
    for name in ("velocity", "gathers", "losses", "curriculum", "gamma_sa_seed0"):
        assert (tmp_path / "figures" / f"{name}.png").exists()
    assert (tmp_path / "runs" / "fwi" / "inverted.sgy").exists()
    bands = json.loads((tmp_path / "runs" / "fwi" / "bands.json").read_text())
    assert [b["corner"] for b in bands] == [0.0] and bands[0]["misfit_end"] <= bands[0][
        "misfit_start"
    ]
    assert "error" in bands[0]  # the truth is known: each band's velocity error is reported
    assert (tmp_path / "runs" / "fwi" / "fwi.png").stat().st_size > 10_000
    with pytest.raises(ConfigError, match="unknown 'sgd'"):
        compare(config, ["sgd"], tmp_path / "x")


def test_compare_resume_keeps_finished_runs_and_continues_the_interrupted_one(tmp_path, capsys):
    """`--resume` after a comparison stopped inside its SA run (after the last
    checkpoint) and before the baseline: the uniform run is kept untouched, SA
    continues from its checkpoint (no step redone), FWI runs, and the table is the
    uninterrupted one; other settings are refused before any work."""
    config = load_invert_config(ROOT / "examples" / "anomaly_wells.toml", SMALL)
    whole = compare(config, ["uniform", "sa"], tmp_path, baseline="fwi", progress=False)
    runs = tmp_path / "runs"
    for name in ("sa_seed0/row.json", "sa_seed0/metrics.json", "fwi/row.json"):
        (runs / name).unlink()
    kept = (runs / "uniform_seed0" / "checkpoint.pt").stat().st_mtime_ns
    history = json.loads((runs / "sa_seed0" / "history.json").read_text())
    again = compare(config, ["uniform", "sa"], tmp_path, baseline="fwi", progress=True, resume=True)
    out = capsys.readouterr().out
    assert "[compare] uniform_seed0: done before, kept" in out, out
    assert "[compare] sa_seed0: 24 steps (resumed)" in out, out
    assert (runs / "uniform_seed0" / "checkpoint.pt").stat().st_mtime_ns == kept
    assert json.loads((runs / "sa_seed0" / "history.json").read_text()) == history
    assert [r["method"] for r in again.rows] == ["start", "uniform", "sa", "fwi"]
    for a, b in zip(whole.rows, again.rows, strict=True):
        for key in ("velocity_error", "heldout_misfit", "gamma_rank_correlation", "steps"):
            assert a[key] == pytest.approx(b[key], nan_ok=True), (a["method"], key)
    # The resumed run's wall time counts the training its checkpoint recorded.
    assert again.rows[2]["wall_seconds"] >= history[-1]["seconds"]
    other = load_invert_config(
        ROOT / "examples" / "anomaly_wells.toml", {**SMALL, "network": {"width": 12, "depth": 2}}
    )
    with pytest.raises(
        ConfigError,
        match=r"config.json: the comparison was made with other settings.*network.width 16 -> 12",
    ):
        compare(other, ["uniform"], tmp_path, resume=True, progress=False)
    assert (
        main(
            [
                "compare",
                "--config",
                str(ROOT / "examples" / "anomaly_wells.toml"),
                "--out",
                str(tmp_path / "none"),
                "--resume",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "config.json: no comparison to resume in" in err and err.count("\n") == 1, err
    # A new comparison in the same folder drops the earlier one's rows first, so that
    # a resume after it is interrupted cannot keep a row made with other settings.
    compare(config, ["uniform"], tmp_path, progress=False)
    assert not (runs / "sa_seed0" / "row.json").exists()
    assert not (runs / "fwi" / "row.json").exists()
    assert (runs / "uniform_seed0" / "row.json").exists()


def test_reduced_demo_prints_the_table_and_the_report(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path), "--steps", "16"]
    for sec, kv in SMALL.items():
        if sec != "training":
            args += [f"--set={sec}.{k}={json.dumps(v)}" for k, v in kv.items()]
    args += ["--set=training.snapshot_every=8", "--set=training.frozen_until={velocity=4}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| uniform | 0 |" in out and "| sa | 0 |" in out and "| fwi |" in out
    assert f"report: {tmp_path / 'report.md'}" in out


def test_compare_runs_each_formulation_on_the_same_data(tmp_path):
    """``--formulations total,scattered``: one row per formulation and weighting,
    labelled ``formulation/weighting``; the scattered run starts from the starting
    model's own prediction (zero PDE loss at step 0), the total one does not."""
    small = dict(SMALL, physics={"rounds": 2})
    config = load_invert_config(ROOT / "examples" / "anomaly_wells.toml", small)
    report = compare(
        config, ["uniform"], tmp_path, formulations=["total", "scattered"], progress=False
    )
    assert [r["method"] for r in report.rows] == ["start", "total/uniform", "scattered/uniform"]
    assert all(r["steps"] == 48 for r in report.rows[1:])  # two rounds of 24
    first = {
        f: json.loads((tmp_path / "runs" / f"{f}-uniform_seed0" / "history.json").read_text())[0]
        for f in ("total", "scattered")
    }
    assert first["scattered"]["loss_pde"] == 0.0 and first["total"]["loss_pde"] > 0
    assert "scattered, total" in (tmp_path / "report.md").read_text()
    with pytest.raises(ConfigError, match="unknown 'born'"):
        compare(config, ["uniform"], tmp_path / "x", formulations=["born"])


def test_study_median_leaves_out_nans_and_missing_keys():
    from seispinn.experiments.study import median

    runs = [{"share": 0.5}, {"share": float("nan")}, {"share": 0.1}, {}, {"share": 0.3}]
    assert median(runs, "share") == pytest.approx(0.3)  # not whatever NaN's place gives
    assert np.isnan(median([{"rank": float("nan")}, {}], "rank"))  # a uniform mask's
