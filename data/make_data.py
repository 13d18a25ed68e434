"""Regenerate the shipped data from data/survey.toml, bit for bit.

    python data/make_data.py            # writes data/model_vp.sgy and data/shots.sgy
    python data/make_data.py --check    # regenerates into a temp dir and compares bytes

Deepwave on the CPU is deterministic, so the same versions of seispinn, Deepwave
and torch rebuild identical files.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from seispinn.io import write_shots, write_velocity
from seispinn.modelling.simulate import simulate
from seispinn.survey import load_survey

HERE = Path(__file__).resolve().parent
FILES = ("model_vp.sgy", "shots.sgy")


def make(out_dir: Path) -> None:
    survey = load_survey(HERE / "survey.toml")
    model = survey.model.build()
    acquisition = survey.acquisition.build(model)
    gathers = simulate(model, acquisition, survey.modelling)
    write_velocity(out_dir / FILES[0], model)
    write_shots(out_dir / FILES[1], gathers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of overwrite")
    args = parser.parse_args()
    if not args.check:
        make(HERE)
        print(f"wrote {', '.join(str(HERE / f) for f in FILES)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        make(Path(tmp))
        same = [filecmp.cmp(HERE / f, Path(tmp) / f, shallow=False) for f in FILES]
    for f, ok in zip(FILES, same, strict=True):
        print(f"{f}: {'identical' if ok else 'DIFFERS'}")
    return 0 if all(same) else 1


if __name__ == "__main__":
    sys.exit(main())
