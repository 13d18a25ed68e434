"""Diagnostics of runs: the γ field over (x, z, t) and the curriculum measures
(:mod:`seispinn.diagnostics.gamma`), and a run folder's contents
(:mod:`seispinn.diagnostics.runfolder`). Figures live in :mod:`seispinn.plots`.
Nothing here imports training code."""
