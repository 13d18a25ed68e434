"""One training across 2 CPU processes (torch.distributed, gloo): the same loss
trajectory as one process, one checkpoint, resumable with another process count."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seispinn.experiments.forward import forward_problem, load_forward_config, reference_model
from seispinn.io.runfolder import load_checkpoint
from seispinn.pinn.training import TrainOptions, train

SMALL = {
    "network": {"width": 16, "depth": 2},
    "collocation": {"n_points": 600, "batch_size": 256, "n_ic": 64},
    "weighting": {"name": "sa", "causal_eps": 1.0},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(run_dir: Path, steps: int, resume: bool, overrides: dict) -> list[dict]:
    torch.set_num_threads(1)
    config = load_forward_config(None, overrides)
    problem = forward_problem(config, reference_model(config), torch.device("cpu"))
    # A constant learning rate: a 4-step run is then the first half of an 8-step one.
    options = TrainOptions(
        steps=steps, lr=1e-3, lr_final=1e-3, log_every=1, checkpoint_every=4, progress=False
    )
    return train(problem, options, run_dir, resume=resume)


def _worker(
    rank: int, world: int, port: int, run_dir: str, steps: int, resume: bool, overrides: dict
):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        history = _train(Path(run_dir), steps, resume, overrides)
        if rank == 0:
            (Path(run_dir) / "trajectory.json").write_text(json.dumps(history))
        else:  # training returns on every rank once rank 0's last checkpoint is written
            saw = load_checkpoint(Path(run_dir) / "checkpoint.pt")["step"]
            (Path(run_dir) / "rank1_saw.json").write_text(json.dumps(saw))
        dist.barrier()  # no rank tears the group down while a peer still writes
    finally:
        dist.destroy_process_group()


def _run(
    world: int, run_dir: Path, steps: int, resume: bool = False, overrides=SMALL
) -> list[dict]:
    run_dir.mkdir(parents=True, exist_ok=True)
    mp.spawn(
        _worker, args=(world, _free_port(), str(run_dir), steps, resume, overrides), nprocs=world
    )
    return json.loads((run_dir / "trajectory.json").read_text())


def _losses(history: list[dict]) -> list[float]:
    return [r["loss_pde"] for r in history]


def test_two_processes_follow_the_single_process_trajectory(tmp_path):
    one = _run(1, tmp_path / "one", 8)
    two = _run(2, tmp_path / "two", 8)
    assert len(one) == len(two) == 8
    assert json.loads((tmp_path / "two" / "rank1_saw.json").read_text()) == 8
    torch.testing.assert_close(
        torch.tensor(_losses(two)), torch.tensor(_losses(one)), rtol=2e-4, atol=0
    )
    assert _losses(one)[-1] != _losses(one)[0]  # it did train
    # Resume the 2-process run's step-4 checkpoint in 1 process: same as uninterrupted.
    part = _run(2, tmp_path / "resumed", 4)
    assert len(part) == 4 and (tmp_path / "resumed" / "checkpoint.pt").exists()
    resumed = _run(1, tmp_path / "resumed", 8, resume=True)
    torch.testing.assert_close(
        torch.tensor(_losses(resumed)), torch.tensor(_losses(one)), rtol=2e-4, atol=0
    )


def test_batch_normalising_weightings_are_refused_across_processes(tmp_path):
    overrides = {**SMALL, "weighting": {"name": "gradnorm"}}
    # The workers' ConfigError comes back through torch.multiprocessing's wrapper.
    with pytest.raises(
        Exception, match="ConfigError.*weighting 'gradnorm' and annealing are not available"
    ):
        _run(2, tmp_path, 2, overrides=overrides)


def test_invert_nproc_runs_torchrun_and_matches_one_process(tmp_path):
    # `seispinn invert --nproc 2` relaunches itself under torchrun (2 gloo processes);
    # its loss trajectory is the single process's, and rank 0 writes the run folder.
    import subprocess
    import sys

    config = Path(__file__).resolve().parents[1] / "examples" / "anomaly_wells.toml"
    common = ["--config", str(config), "--steps", "4", "--set", "training.log_every=1"]
    common += ["--set", "training.progress=false", "--set", "collocation.n_points=2000"]
    common += ["--set", "physics.rounds=1"]

    def run(name: str, *extra: str) -> list[dict]:
        cmd = [sys.executable, "-m", "seispinn", "invert", "--run-dir", str(tmp_path / name)]
        done = subprocess.run([*cmd, *common, *extra], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads((tmp_path / name / "history.json").read_text())

    one, two = run("one"), run("two", "--nproc", "2")
    assert len(one) == len(two) == 4
    torch.testing.assert_close(
        torch.tensor(_losses(two)), torch.tensor(_losses(one)), rtol=2e-4, atol=0
    )
    assert (tmp_path / "two" / "inverted.sgy").exists()
