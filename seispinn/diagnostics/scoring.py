"""Scoring an inverted model the same way whichever method made it: velocity error
against the truth (over the whole model and its illuminated part), and the misfit of
its finite-difference traces at the receivers held out of every method's training."""

from __future__ import annotations

import numpy as np

from seispinn.diagnostics.measures import heldout_misfit, velocity_scores
from seispinn.gathers import ShotGathers
from seispinn.inputs import InversionInputs
from seispinn.modelling.illumination import illuminated_mask, illumination
from seispinn.modelling.simulate import (
    ModellingOptions,
    acquisition_from_gathers,
    predicted_gathers,
)
from seispinn.models import VelocityModel

__all__ = ["illuminated_part", "model_scores"]


def illuminated_part(inputs: InversionInputs, fraction: float = 0.25) -> np.ndarray:
    """``[nz, nx]`` bool: the illuminated part of the starting model's grid (see
    :mod:`seispinn.modelling.illumination`) for the observed acquisition."""
    g, s = inputs.gathers, inputs.source
    acq = acquisition_from_gathers(g, s)
    values = illumination(inputs.start, acq, ModellingOptions(source_sigma=s.sigma))
    return illuminated_mask(values, fraction)


def model_scores(
    model: VelocityModel,
    inputs: InversionInputs,
    held_out: np.ndarray,
    illuminated: np.ndarray | None = None,
) -> tuple[dict[str, float], ShotGathers]:
    """Velocity scores of ``model`` ``[nz, nx]`` and of the start (when the truth is
    known; over ``illuminated`` ``[nz, nx]`` too) and the held-out data misfits of
    both at the receivers ``held_out`` ``[shot, receiver]``; also returns ``model``'s
    predicted gathers ``[shot, receiver, time]``."""
    out: dict[str, float] = {}
    if inputs.true is not None:
        out.update(
            velocity_scores(model.values, inputs.start.values, inputs.true.values, illuminated)
        )
    predicted = predicted_gathers(model, inputs.gathers, inputs.source)
    if held_out.any():
        observed = inputs.gathers.data
        out["heldout_misfit"] = heldout_misfit(predicted.data, observed, held_out)
        start_pred = predicted_gathers(inputs.start, inputs.gathers, inputs.source)
        out["start_heldout_misfit"] = heldout_misfit(start_pred.data, observed, held_out)
    return out, predicted
