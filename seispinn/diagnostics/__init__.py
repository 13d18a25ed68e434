"""Diagnostics of runs: the γ field over (x, z, t) and the curriculum measures
(:mod:`seispinn.diagnostics.gamma`), a run folder's contents
(:mod:`seispinn.diagnostics.runfolder`) and TensorBoard logs of training
(:mod:`seispinn.diagnostics.tensorboard`). Figures live in :mod:`seispinn.plots`.
Nothing here imports training code."""
