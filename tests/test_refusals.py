"""Hardening, round two: binary configs, run folders that are files, empty run
folders, foreign checkpoints, fsynced history, and Ctrl-C / SIGTERM during training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seispinn.cli import main
from seispinn.experiments.forward import forward_problem, load_forward_config, reference_model
from seispinn.io import runfolder
from seispinn.io.runfolder import load_checkpoint
from seispinn.pinn.training import Interrupted, train

ROOT = Path(__file__).resolve().parents[1]
INVERT = ROOT / "examples" / "anomaly_wells.toml"
TINY = (
    "[collocation]\nn_points = 500\nbatch_size = 100\n[reference]\ndx = 10.0\n"
    "padding = 200.0\n[network]\ndepth = 2\nwidth = 8\n"
)


def _one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"seispinn {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_a_binary_file_as_survey_is_one_line(tmp_path, capsys) -> None:
    sgy = ROOT / "data" / "model_vp.sgy"
    assert main(["simulate", "--survey", str(sgy), "--out", str(tmp_path / "g.sgy")]) == 2
    assert f"{sgy}: not a text TOML file" in _one_line(capsys, "simulate")
    assert not (tmp_path / "g.sgy").exists()


def test_a_bad_device_is_refused_before_simulating(tmp_path, capsys) -> None:
    out = tmp_path / "g.sgy"
    survey = str(ROOT / "data" / "survey.toml")
    assert main(["simulate", "--survey", survey, "--out", str(out), "--device", "gpu0"]) == 2
    assert "--device 'gpu0': not a torch device" in _one_line(capsys, "simulate")
    assert not out.exists()


@pytest.mark.parametrize("command", ["invert", "forward"])
def test_a_run_dir_that_is_a_file_is_one_line(tmp_path, capsys, command) -> None:
    blocker = tmp_path / "run"
    blocker.write_text("a file")
    config = INVERT if command == "invert" else tmp_path / "tiny.toml"
    config.parent.mkdir(exist_ok=True)
    if command == "forward":
        config.write_text(TINY)
    assert main([command, "--config", str(config), "--run-dir", str(blocker)]) == 2
    assert f"--run-dir {blocker}: exists and is not a folder" in _one_line(capsys, command)
    assert blocker.read_text() == "a file"


def test_plot_run_on_an_empty_folder_says_what_is_missing(tmp_path, capsys) -> None:
    assert main(["plot", "run", str(tmp_path)]) == 2
    err = _one_line(capsys, "plot")
    assert f"{tmp_path}: nothing to plot" in err and "history.json" in err, err
    assert not (tmp_path / "figures").exists()


class Foreign:
    """Something torch.save pickles and weights_only=True refuses."""


@pytest.mark.parametrize("kind", ["text", "pickled object", "tensor only", "folder"])
def test_a_foreign_checkpoint_is_one_line_without_advice(tmp_path, capsys, kind) -> None:
    config, run = tmp_path / "tiny.toml", tmp_path / "run"
    config.write_text(TINY + "[training]\nsteps = 2\nprogress = false\n")
    ckpt = run / "checkpoint.pt"
    run.mkdir()
    if kind == "text":
        ckpt.write_text("step = 3\nnot a checkpoint\n")
    elif kind == "pickled object":
        torch.save({"step": 1, "x": Foreign()}, ckpt)
    elif kind == "tensor only":
        torch.save(torch.zeros(3), ckpt)
    else:
        ckpt.mkdir()
    t0 = time.perf_counter()
    code = main(["forward", "--config", str(config), "--run-dir", str(run), "--resume"])
    assert code == 2
    err = _one_line(capsys, "forward")
    assert f"{ckpt}: " in err, err
    for advice in ("weights_only", "unpickl", "Unpickl", "trust", "safe_globals"):
        assert advice not in err, err
    assert time.perf_counter() - t0 < 10  # refused before the reference is modelled
    assert not (run / "gamma").exists()


def test_history_is_fsynced_before_the_rename(tmp_path, monkeypatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    def replace(a, b) -> None:
        events.append("rename")
        real_replace(a, b)

    monkeypatch.setattr(runfolder.os, "fsync", fsync)
    monkeypatch.setattr(runfolder.os, "replace", replace)
    runfolder.write_text_atomic(tmp_path / "history.json", "[1, 2]")
    assert (tmp_path / "history.json").read_text() == "[1, 2]"
    assert not (tmp_path / "history.json.tmp").exists()
    if sys.platform.startswith("linux"):
        assert events == ["fsync file", "rename", "fsync dir"]
    else:
        assert events[:2] == ["fsync file", "rename"]


# --- Ctrl-C and SIGTERM ---------------------------------------------------------------

TINY_FORWARD = {
    "training": {"steps": 40, "log_every": 1, "progress": False, "checkpoint_every": 1000},
    "collocation": {"n_points": 500, "batch_size": 100, "n_ic": 50},
    "network": {"width": 8, "depth": 2},
    "reference": {"dx": 10.0, "padding": 200.0},
}


def _signal_at(problem, step: int, signum: int, times: int = 1) -> None:
    original = problem.losses

    def losses(s: int):
        if s == step:
            for _ in range(times):
                os.kill(os.getpid(), signum)  # arrives mid-step: the step still completes
        return original(s)

    problem.losses = losses


@pytest.mark.parametrize("with_run_dir", [True, False])
def test_sigterm_checkpoints_the_step_and_stops(tmp_path, with_run_dir) -> None:
    config = load_forward_config(None, TINY_FORWARD)
    problem = forward_problem(config, reference_model(config), torch.device("cpu"))
    _signal_at(problem, 5, signal.SIGTERM)

    def uncaught(signum, frame):
        raise RuntimeError("SIGTERM reached the outer handler: training did not catch it")

    before = signal.signal(signal.SIGTERM, uncaught)  # not the default: that kills pytest
    run = tmp_path if with_run_dir else None
    try:
        with pytest.raises(Interrupted) as exc:
            train(problem, config.training, run)
        assert signal.getsignal(signal.SIGTERM) is uncaught  # handlers restored
    finally:
        signal.signal(signal.SIGTERM, before)
    assert exc.value.exit_status == 143 and exc.value.step == 6
    if with_run_dir:
        assert str(exc.value) == (
            f"interrupted by SIGTERM after step 6 of 40; checkpoint: {tmp_path / 'checkpoint.pt'}"
        )
        assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 6
        assert [r["step"] for r in json.loads((tmp_path / "history.json").read_text())] == list(
            range(6)
        )
    else:
        assert "no run folder, nothing saved" in str(exc.value)


def test_ctrl_c_through_the_cli_checkpoints_and_resume_finishes(tmp_path, capsys) -> None:
    config, run = tmp_path / "tiny.toml", tmp_path / "run"
    steps = 200
    config.write_text(
        TINY + f"[training]\nsteps = {steps}\nprogress = false\nlog_every = 1\n"
        "checkpoint_every = 1000\nsnapshot_every = 1\n"
    )
    cmd = [sys.executable, "-m", "seispinn", "forward", "--config", str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*cmd, "--run-dir", str(run)], stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 120
    # Training has started once γ snapshots (one per step) appear.
    while proc.poll() is None and time.monotonic() < deadline:
        if len(list((run / "gamma").glob("*.npz"))) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("seispinn forward: interrupted by SIGINT after step "), err
    assert f"checkpoint: {run / 'checkpoint.pt'} (--resume continues)" in last, err
    assert "Traceback" not in err
    step = int(last.split("after step ")[1].split()[0])
    assert 3 <= step < steps
    assert load_checkpoint(run / "checkpoint.pt")["step"] == step
    history = json.loads((run / "history.json").read_text())
    assert [r["step"] for r in history] == list(range(step))
    assert not (run / "metrics.json").exists()

    assert main(["forward", "--config", str(config), "--run-dir", str(run), "--resume"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["step"] == steps
    history = json.loads((run / "history.json").read_text())
    assert [r["step"] for r in history] == list(range(steps))  # none lost, none repeated
    assert (run / "metrics.json").exists()


def test_a_second_signal_stops_at_once(tmp_path) -> None:
    config = load_forward_config(None, TINY_FORWARD)
    problem = forward_problem(config, reference_model(config), torch.device("cpu"))
    _signal_at(problem, 5, signal.SIGTERM, times=2)

    def uncaught(signum, frame):
        raise RuntimeError("SIGTERM reached the outer handler: training did not catch it")

    before = signal.signal(signal.SIGTERM, uncaught)
    try:
        with pytest.raises(KeyboardInterrupt) as exc:
            train(problem, config.training, tmp_path)
        assert type(exc.value) is KeyboardInterrupt  # at once: not Interrupted
        assert signal.getsignal(signal.SIGTERM) is uncaught
    finally:
        signal.signal(signal.SIGTERM, before)
    assert not (tmp_path / "checkpoint.pt").exists()  # stopped mid-step 5, nothing saved


def test_the_python_api_blames_data_survey(tmp_path) -> None:
    from seispinn.errors import ConfigError
    from seispinn.experiments.invert import load_invert_config
    from seispinn.inputs import prepare_inputs

    missing = load_invert_config(
        None, {"data": {"survey": str(tmp_path / "nowhere.toml"), "start_velocity": 2000.0}}
    )
    with pytest.raises(ConfigError, match=r"^\[data\] survey .*nowhere.toml: no such file$"):
        prepare_inputs(missing.data, missing.source)
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nnx = 'many'\n")
    config = load_invert_config(None, {"data": {"survey": str(bad), "start_velocity": 2000.0}})
    with pytest.raises(ConfigError, match=r"^\[data\] survey: .*bad.toml \[model\] nx: expected"):
        prepare_inputs(config.data, config.source)
