"""What seispinn guarantees under bad configs, kills, divergence and tight memory.

Every bad config is refused by the CLI up front (exit 2, one line naming the key
and the reason) before any data is simulated or any step is trained; a training
process killed with SIGKILL at random moments always leaves a loadable last
checkpoint and resumes to the uninterrupted result; a NaN stops (or retries)
with the step, the term and the checkpoint named; a run that cannot fit in
memory is refused with its estimate.
"""

from __future__ import annotations

import ast
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from seispinn import memory
from seispinn.cli import main
from seispinn.errors import ResourceError, TrainingError
from seispinn.experiments.forward import forward_problem, load_forward_config, reference_model
from seispinn.io import write_velocity
from seispinn.io.runfolder import load_checkpoint
from seispinn.memory import problem_memory
from seispinn.models import homogeneous
from seispinn.pinn.problem import WaveProblem
from seispinn.pinn.training import Diverged, train

ROOT = Path(__file__).resolve().parents[1]

TINY_FORWARD = {
    "training": {"steps": 60, "log_every": 1, "progress": False, "checkpoint_every": 1},
    "collocation": {"n_points": 1000, "batch_size": 250, "n_ic": 100},
    "network": {"width": 16, "depth": 2},
    "weighting": {"name": "sa"},
    "reference": {"dx": 10.0, "padding": 200.0},
}


def _tiny(**training) -> object:
    return load_forward_config(
        None, {**TINY_FORWARD, "training": {**TINY_FORWARD["training"], **training}}
    )


def _problem(config) -> WaveProblem:
    return forward_problem(config, reference_model(config), torch.device("cpu"))


# --- bad configs ----------------------------------------------------------------------

INVERT = ROOT / "examples" / "anomaly_wells.toml"


def _small_start(tmp_path: Path) -> Path:
    """A 300 m x 300 m starting model: the anomaly survey's receivers lie beyond it."""
    return write_velocity(tmp_path / "small.sgy", homogeneous(31, 31, 10.0, 2000.0))


# (arguments, the key or option the message must start by blaming, the reason)
BAD_INVERT = [
    (["--set", "training.stpes=10"], "--set training.stpes=10", "[training]: unknown key 'stpes'"),
    (["--set", "nonsense.key=1"], "--set nonsense.key=1", "unknown section [nonsense]"),
    (
        ["--set", "training.steps='many'"],
        "--set training.steps='many'",
        "[training] steps: expected an integer",
    ),
    (["--steps", "0"], "--steps 0", "steps + lbfgs_steps must be positive"),
    (["--steps", "-5"], "--steps -5", "steps and lbfgs_steps must be >= 0, got -5"),
    (["--set", "training.lr=-0.001"], "--set training.lr=-0.001", "learning rates must be"),
    (
        ["--set", "data.c_min=7000.0"],
        "--set data.c_min=7000.0",
        "[data]: need c_min < c_max, got 7000.0, 2800.0 m/s",
    ),
    (
        ["--set", "data.c_min=2100.0"],
        "[data] c_min/c_max",
        "the starting model (2000-2000 m/s) must lie inside the bounds (2100-2800 m/s)",
    ),
    (
        ["--set", "collocation.batch_size=0"],
        "--set collocation.batch_size=0",
        "batch_size and data_batch must be >= 1",
    ),
    (["--set", "data.dx=-10.0"], "--set data.dx=-10.0", "[data]: dx must be positive (m)"),
    (["--set", "data.time_stride=0"], "--set data.time_stride=0", "time_stride >= 1"),
    (
        ["--set", "data.crop_x=[900.0, 100.0]"],
        "--set data.crop_x=[900.0, 100.0]",
        "[data]: crop_x must be [min, max] with min < max",
    ),
    (["--set", "source.sigma=-5.0"], "--set source.sigma=-5.0", "[source]: sigma must be"),
    (["--weighting", "softmax"], "--weighting softmax", "[weighting] name"),
    (
        ["--set", "training.divergence_retries=-1"],
        "--set training.divergence_retries=-1",
        "divergence_retries must be >= 0",
    ),
    (["--set", "training.lr=nan"], "--set training.lr=nan", "[training] lr: must be finite"),
    (
        ["--set", "data.survey='nowhere.toml'"],
        f"{INVERT} [data] survey",
        "nowhere.toml: no such file",
    ),
    (["--device", "gpu0"], "--device 'gpu0'", "not a torch device"),
    (
        ["--set", f"data.start='{ROOT / 'data' / 'shots.sgy'}'"],
        "[data] start",
        "looks like a shot gathers file, not velocity model",
    ),
    (
        ["--set", f"data.shots='{ROOT / 'data' / 'model_vp.sgy'}'", "--set", "data.survey=''"],
        "[data] shots",
        "looks like a velocity model file, not shot gathers",
    ),
    (
        ["--set", "training.frozen_until={velocty=5}"],
        "--set training.frozen_until={velocty=5}",
        "'velocty' is not a trained network",
    ),
    (
        ["--config", str(ROOT / "data" / "model_vp.sgy")],
        str(ROOT / "data" / "model_vp.sgy"),
        "not a text TOML file",
    ),
]
# A collocation set far too large for any machine's memory (~700 GiB): sized
# and refused on the survey's shapes before a trace is simulated.
BAD_INVERT.append(
    (
        ["--set", "collocation.n_points=20000000000"],
        "the run: estimated peak memory",
        "collocation points",
    )
)
if not torch.cuda.is_available():
    BAD_INVERT.append((["--device", "cuda"], "--device cuda", "CUDA is not available"))


@pytest.mark.parametrize(
    ("args", "blame", "message"), BAD_INVERT, ids=[m for _, _, m in BAD_INVERT]
)
def test_bad_invert_config_is_refused_up_front(
    tmp_path, capsys, monkeypatch, args, blame, message
) -> None:
    import seispinn.experiments.invert as invert
    import seispinn.inputs as inputs

    def accepted(*a, **k):
        raise AssertionError("the bad config was accepted: data simulated or a step trained")

    # The real run_inversion runs (its own checks count as up front only if they come
    # before the data are simulated); simulating or training fails the test.
    monkeypatch.setattr(inputs, "simulate", accepted)
    monkeypatch.setattr(invert, "invert", accepted)
    t0 = time.perf_counter()
    run = tmp_path / "run"
    code = main(["invert", "--config", str(INVERT), "--run-dir", str(run), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"seispinn invert: error: {blame}") and err.count("\n") == 1, err
    assert message in err, err
    assert not run.exists(), sorted(p.name for p in run.iterdir())  # nothing made or simulated
    assert time.perf_counter() - t0 < 10


def test_receivers_outside_the_starting_model_are_refused(tmp_path, capsys, monkeypatch) -> None:
    import seispinn.inputs as inputs

    def simulated(*a, **k):
        raise AssertionError("the survey was simulated before its geometry was checked")

    monkeypatch.setattr(inputs, "simulate", simulated)
    start = _small_start(tmp_path)
    code = main(
        [
            "invert",
            "--config",
            str(INVERT),
            "--run-dir",
            str(tmp_path / "run"),
            "--set",
            f"data.start='{start}'",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "[data]" in err and "lies outside the model" in err and "starting model" in err, err
    assert not (tmp_path / "run").exists()


def test_survey_receivers_below_the_model_name_the_key(tmp_path, capsys) -> None:
    survey = tmp_path / "survey.toml"
    anomaly = ROOT / "examples" / "surveys" / "anomaly_wells.toml"
    survey.write_text(_with_key(anomaly, "acquisition", "receiver_depth = 5000.0"))
    code = main(["simulate", "--survey", str(survey), "--out", str(tmp_path / "s.sgy")])
    err = capsys.readouterr().err
    assert code == 2 and "receiver_depth" in err and "outside the model" in err, err


def _with_key(path: Path, section: str, line: str) -> str:
    """The TOML at ``path`` with ``line`` (``key = value``) set in ``[section]``."""
    key = line.split("=")[0].strip()
    out, current = [], ""
    for text in path.read_text().splitlines():
        if text.strip().startswith("["):
            current = text.strip()
        if current == f"[{section}]" and text.split("=")[0].strip() == key:
            continue  # the file's own value of the key
        out.append(text)
        if text.strip() == f"[{section}]":
            out.append(line)
    return "\n".join(out) + "\n"


# --- kill -9 and resume ---------------------------------------------------------------

CHILD = """
import json, sys, torch
from pathlib import Path
torch.set_num_threads(1)
from seispinn.experiments.forward import forward_problem, load_forward_config, reference_model
from seispinn.pinn.training import train
config = load_forward_config(None, json.loads(sys.argv[2]))
problem = forward_problem(config, reference_model(config), torch.device("cpu"))
train(problem, config.training, Path(sys.argv[1]), resume=sys.argv[3] == "resume")
"""


def _step(ckpt: Path) -> int:
    return int(load_checkpoint(ckpt)["step"]) if ckpt.exists() else -1


def test_kill_9_at_random_moments_then_resume_reaches_the_uninterrupted_result(tmp_path) -> None:
    torch.set_num_threads(1)
    config = _tiny()
    straight = _problem(config)
    train(straight, config.training, tmp_path / "straight")

    run, ckpt = tmp_path / "killed", tmp_path / "killed" / "checkpoint.pt"
    rng, kills, last = random.Random(0), 0, -1
    while kills < 3:
        mode = "resume" if ckpt.exists() else "fresh"
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(run), json.dumps(TINY_FORWARD), mode]
        )
        # A few steps past the last kill, then a random fraction of a step or two:
        # mid-step or mid-checkpoint (one is written every step), on any machine speed.
        target, deadline = last + rng.randint(1, 4), time.monotonic() + 120
        while proc.poll() is None and _step(ckpt) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.03))
        if proc.poll() is not None:
            break  # finished before the kill: the resume below is a no-op
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        step = _step(ckpt)  # always loadable, never behind the last one seen
        assert last <= step < 60
        json.loads((run / "history.json").read_text())
        last = step
    assert kills == 3
    assert (
        subprocess.run(
            [sys.executable, "-c", CHILD, str(run), json.dumps(TINY_FORWARD), "resume"], timeout=300
        ).returncode
        == 0
    )
    state = load_checkpoint(ckpt)
    assert state["step"] == 60
    for k, a in straight.wavefield.state_dict().items():
        torch.testing.assert_close(state["modules"]["wavefield"][k], a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state["weighting"]["lam"], straight.weighting.state_dict()["lam"])


def test_resume_with_another_network_names_the_checkpoint(tmp_path, capsys) -> None:
    config = tmp_path / "tiny.toml"
    body = (
        "[collocation]\nn_points = 500\nbatch_size = 100\n[training]\nsteps = 2\n"
        "progress = false\n[reference]\ndx = 10.0\npadding = 200.0\n[network]\ndepth = 2\n"
    )
    config.write_text(body + "width = 8\n")
    run = ["forward", "--config", str(config), "--run-dir", str(tmp_path / "run")]
    assert main(run) == 0
    config.write_text(body + "width = 12\n")
    capsys.readouterr()
    assert main([*run, "--steps", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "config.json: the run was made with other settings, cannot resume" in err, err
    assert "network.width 8 -> 12" in err and err.count("\n") == 1
    # Without the run's settings to compare with, the checkpoint itself refuses.
    (tmp_path / "run" / "config.json").unlink()
    assert main([*run, "--steps", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt: does not match this run's configuration, cannot resume" in err, err
    assert err.count("\n") == 1


def test_resume_refuses_changed_settings_but_extends_and_names_new_ones(tmp_path, capsys) -> None:
    """A resumed run keeps the settings it was made with: another rate is refused with
    one line naming the key, before the checkpoint is touched; more steps are allowed;
    a setting the run folder predates is named on stderr."""
    config = tmp_path / "tiny.toml"
    config.write_text(
        "[collocation]\nn_points = 500\nbatch_size = 100\n[training]\nsteps = 2\n"
        "progress = false\n[reference]\ndx = 10.0\npadding = 200.0\n[network]\ndepth = 2\n"
        "width = 8\n[weighting]\nname = 'sa'\n"
    )
    run_dir = tmp_path / "run"
    run = ["forward", "--config", str(config), "--run-dir", str(run_dir)]
    assert main(run) == 0
    before = (run_dir / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    refused = [*run, "--steps", "4", "--resume", "--set", "weighting.sa.max_relative=none"]
    assert main(refused) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "config.json: the run was made with other settings, cannot resume" in err, err
    assert "weighting.sa.max_relative 20.0 -> null" in err, err
    assert (run_dir / "checkpoint.pt").read_bytes() == before
    # A run folder written before `max_relative` existed: the resume names the default.
    stored = json.loads((run_dir / "config.json").read_text())
    del stored["weighting"]["sa"]["max_relative"]
    (run_dir / "config.json").write_text(json.dumps(stored))
    assert main([*run, "--steps", "4", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "made before these settings existed" in err, err
    assert "weighting.sa.max_relative = 20.0" in err, err
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 4
    assert json.loads((run_dir / "config.json").read_text())["training"]["steps"] == 4


# --- divergence -----------------------------------------------------------------------


def _poison_once(problem: WaveProblem, at: int, times: int) -> list[int]:
    """Make the PDE term NaN at step ``at`` the first ``times`` times it is reached."""
    original, hits = problem.losses, []

    def poisoned(step: int):
        out = original(step)
        if step == at and len(hits) < times:
            hits.append(step)
            out.terms["pde"] = out.terms["pde"] * float("nan")
        return out

    problem.losses = poisoned  # type: ignore[method-assign]
    return hits


def test_divergence_retries_from_the_last_checkpoint_with_smaller_lr(tmp_path, capsys) -> None:
    config = _tiny(steps=30, checkpoint_every=10, divergence_retries=2)
    problem = _problem(config)
    hits = _poison_once(problem, at=25, times=2)
    train(problem, config.training, tmp_path)
    err = capsys.readouterr().err
    assert hits == [25, 25]
    assert "'pde' became nan at step 25" in err and "retry 2 of 2 from step 20" in err
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 30 and state["lr_factor"] == pytest.approx(0.25)
    assert all(np.isfinite(r["loss_pde"]) for r in json.loads(state["history"]))
    # The rates themselves: θ's Adam and SA's ascent, after the retries and on resume.
    straight = _problem(config)
    train(straight, config.training, tmp_path / "straight")
    lr_straight = _last_lr(tmp_path / "straight")
    assert _last_lr(tmp_path) == pytest.approx(0.25 * lr_straight)
    assert problem.weighting.lr_factor == pytest.approx(0.25)
    assert straight.weighting.lr_factor == 1.0
    longer = _tiny(steps=40, checkpoint_every=10, divergence_retries=2)
    resumed = _problem(longer)
    train(resumed, longer.training, tmp_path, resume=True)
    assert resumed.weighting.lr_factor == pytest.approx(0.25)
    reference = _problem(longer)
    train(reference, longer.training, tmp_path / "reference")
    assert _last_lr(tmp_path) == pytest.approx(0.25 * _last_lr(tmp_path / "reference"))


def _last_lr(run_dir: Path) -> float:
    """θ's learning rate at the checkpoint's last step."""
    return float(load_checkpoint(run_dir / "checkpoint.pt")["optimizer"]["param_groups"][0]["lr"])


def test_divergence_beyond_the_retries_names_step_term_and_checkpoint(tmp_path) -> None:
    config = _tiny(steps=30, checkpoint_every=10, divergence_retries=1)
    problem = _problem(config)
    _poison_once(problem, at=25, times=5)
    with pytest.raises(Diverged, match=r"'pde' became nan at step 25; last good checkpoint: .*"):
        train(problem, config.training, tmp_path)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 20


def test_divergence_without_a_checkpoint_stops_at_once() -> None:
    config = _tiny(steps=10, divergence_retries=3)
    problem = _problem(config)
    _poison_once(problem, at=3, times=1)
    with pytest.raises(TrainingError, match="at step 3$"):
        train(problem, config.training)


# --- memory ---------------------------------------------------------------------------


def test_saved_bytes_counts_what_autograd_keeps() -> None:
    w = torch.randn(8, 8, requires_grad=True)
    x = torch.randn(1000, 8)
    # x @ w saves x (32 kB); tanh saves its output (32 kB); the output itself (4 B).
    got = memory.saved_bytes(lambda: torch.tanh(x @ w).sum(), exclude=[w])
    assert got == 1000 * 8 * 4 * 2 + 4
    per = memory.bytes_per_item(lambda n: torch.tanh(torch.randn(n, 8) @ w).sum(), [w])
    assert per == pytest.approx(2 * 8 * 4)


def test_estimate_grows_linearly_with_the_batch() -> None:
    small = problem_memory(_problem(_tiny()))
    config = load_forward_config(
        None, {**TINY_FORWARD, "collocation": {**TINY_FORWARD["collocation"], "batch_size": 1000}}
    )
    large = problem_memory(_problem(config))
    ratio = large.parts["pde batch"] / small.parts["pde batch"]
    assert ratio == pytest.approx(4.0, rel=0.02)
    assert large.parts["parameters + Adam"] == small.parts["parameters + Adam"]


def test_a_run_that_cannot_fit_is_refused_with_its_estimate(tmp_path, monkeypatch, capsys):
    # 150 MiB free: the points and torch's runtime (128 MiB) fit, a 1,000-point batch
    # of a 64x4 network's jets (~25 MiB more) does not.
    monkeypatch.setattr(memory, "available_bytes", lambda device: 150 * 2**20)
    config = tmp_path / "tiny.toml"
    config.write_text(
        "[network]\nwidth = 64\ndepth = 4\n[collocation]\nn_points = 1000\nbatch_size = 1000\n"
        "[training]\nsteps = 4\nprogress = false\n[reference]\ndx = 10.0\npadding = 200.0\n"
    )
    code = main(["forward", "--config", str(config), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "estimated peak memory" in err and "150.0 MiB free on cpu: does not fit" in err, err
    assert "pde batch" in err and "lower [collocation] batch_size" in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_the_refusal_threshold_is_ninety_percent_of_free_memory() -> None:
    from seispinn.errors import ResourceError
    from seispinn.memory import MemoryEstimate, check_fits

    cpu = torch.device("cpu")
    check_fits(MemoryEstimate({"x": 900.0}), cpu, "run", available=1000)  # exactly 90 %: fits
    with pytest.raises(ResourceError, match="does not fit"):
        check_fits(MemoryEstimate({"x": 900.5}), cpu, "run", available=1000)


PICKLERS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "shelve", "joblib"}


def unpickling_sites(source: str) -> list[str]:
    """Where ``source`` may deserialise arbitrary objects: a pickle-family import (any
    form, ``__import__`` and ``importlib.import_module`` included), a keyword
    ``allow_pickle`` that is not literally False, ``weights_only`` that is not
    literally True, and a ``torch.load`` (however torch or load was imported) without
    ``weights_only=True``."""
    tree = ast.parse(source)
    torch_names, load_names, found = {"torch"}, set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PICKLERS:
                    found.append(f"line {node.lineno}: import {alias.name}")
                if alias.name == "torch":
                    torch_names.add(alias.asname or "torch")
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if module in PICKLERS:
                found.append(f"line {node.lineno}: from {node.module} import")
            if node.module in ("torch", "torch.serialization"):
                load_names |= {a.asname or a.name for a in node.names if a.name == "load"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0] if node.args else None
        if (
            name in ("__import__", "import_module")
            and isinstance(first, ast.Constant)
            and str(first.value).split(".")[0] in PICKLERS
        ):
            found.append(f"line {node.lineno}: {name}({first.value!r})")
        keywords = {k.arg: k.value for k in node.keywords}
        pickle = keywords.get("allow_pickle")
        if "allow_pickle" in keywords and not (
            isinstance(pickle, ast.Constant) and pickle.value is False
        ):
            found.append(f"line {node.lineno}: allow_pickle not False")
        weights = keywords.get("weights_only")
        safe = isinstance(weights, ast.Constant) and weights.value is True
        if "weights_only" in keywords and not safe:
            found.append(f"line {node.lineno}: weights_only not True")
        is_torch_load = (
            isinstance(func, ast.Attribute)
            and func.attr == "load"
            and (
                (isinstance(func.value, ast.Name) and func.value.id in torch_names)
                or ast.unparse(func.value) == "torch.serialization"
            )
        ) or (isinstance(func, ast.Name) and func.id in load_names)
        if is_torch_load and not safe:
            found.append(f"line {node.lineno}: torch.load without weights_only=True")
    return found


UNSAFE = [
    "import pickle",
    "import pickle as p",
    "import _pickle",
    "from pickle import loads",
    "import dill.settings",
    "m = __import__('pickle')",
    "import importlib\nm = importlib.import_module('cPickle')",
    "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
    "import numpy as np\nflag = True\nnp.load('a.npy', allow_pickle=flag)",
    "import torch\ntorch.load('a.pt')",
    "import torch\ntorch.load(\n    'a.pt',\n    weights_only=False,\n)",
    "import torch as T\nT.load('a.pt', map_location='cpu')",
    "from torch import load\nload('a.pt')",
    "from torch import load as L\nL('a.pt', weights_only=None)",
    "import torch\nkw = {}\ntorch.load('a.pt', **kw)",
    "import torch\ntorch.serialization.load('a.pt')",
]
SAFE = [
    "import torch\ntorch.load(\n    'a.pt',\n    map_location='cpu',\n    weights_only=True,\n)",
    "import numpy as np\nnp.load('a.npy')\nnp.load('b.npy', allow_pickle=False)",
    "import json\njson.load(open('a.json'))",
    "# import pickle\ntext = 'weights_only=False, import pickle'",
]


@pytest.mark.parametrize("source", UNSAFE)
def test_the_unpickling_guard_catches(source) -> None:
    assert unpickling_sites(source), source


@pytest.mark.parametrize("source", SAFE)
def test_the_unpickling_guard_lets_pass(source) -> None:
    assert unpickling_sites(source) == [], source


def test_nothing_unpickles_from_a_file() -> None:
    # Checkpoints load with weights_only=True, arrays with allow_pickle=False (numpy's
    # default); nothing else in seispinn may deserialise arbitrary objects.
    files = sorted((ROOT / "seispinn").rglob("*.py"))
    assert len(files) > 30
    bad = {str(p.relative_to(ROOT)): unpickling_sites(p.read_text()) for p in files}
    assert not {k: v for k, v in bad.items() if v}


def test_check_fits_states_the_estimate() -> None:
    est = memory.MemoryEstimate({"pde batch": 3 * 2**30, "parameters + Adam": 2**20})
    line = memory.check_fits(est, torch.device("cpu"), "run", available=8 * 2**30)
    assert line.startswith("run: estimated peak memory 3.00 GiB (pde batch 3.00 GiB")
    with pytest.raises(ResourceError, match="does not fit"):
        memory.check_fits(est, torch.device("cpu"), "run", available=2 * 2**30)
    assert memory.available_bytes(torch.device("cpu")) > 2**28


def test_relative_paths_in_a_config_are_the_configs(tmp_path, monkeypatch) -> None:
    from seispinn.experiments.invert import load_invert_config

    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "s.toml").write_text(
        (ROOT / "examples" / "surveys" / "anomaly_wells.toml").read_text()
    )
    (folder / "inv.toml").write_text('[data]\nsurvey = "s.toml"\nstart_velocity = 2000.0\n')
    (tmp_path / "s.toml").write_text("a decoy of the same name where the command runs\n")
    monkeypatch.chdir(tmp_path)
    assert load_invert_config(folder / "inv.toml").data.survey == str(folder / "s.toml")
    # An override is the user's, typed where the command runs.
    over = load_invert_config(folder / "inv.toml", {"data": {"survey": "s.toml"}})
    assert over.data.survey == "s.toml"
    # With no config the default survey is the checkout's, wherever the command runs.
    default = Path(load_invert_config().data.survey)
    assert default.is_absolute() and default.is_file()
