"""seispinn: seismic full-waveform inversion with physics-informed neural networks.

Subpackages: ``io`` (SEG-Y), ``models`` / ``acquisition`` / ``gathers`` (the
survey), ``modelling`` (finite differences with Deepwave, the conventional FWI
baseline, analytic solutions), ``pinn`` (networks, derivatives, residual,
collocation, weighting, the problem, training), ``experiments`` (configs and thin
drivers: race, forward PINN, inversion, comparison), ``diagnostics``, ``plots``,
``cli``.
Importing the package is cheap; import the subpackage you need.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
