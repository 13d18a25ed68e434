"""Diagnostics of runs: the γ field over (x, z, t) and the curriculum measures
(:mod:`seispinn.diagnostics.gamma`), the measures every report uses
(:mod:`seispinn.diagnostics.measures`), scoring an inverted model
(:mod:`seispinn.diagnostics.scoring`), a finished run folder read back
(:mod:`seispinn.diagnostics.results`) and TensorBoard logs of training
(:mod:`seispinn.diagnostics.tensorboard`). Figures live in :mod:`seispinn.plots`.
Nothing here imports training code."""
