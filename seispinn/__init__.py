"""seispinn: seismic full-waveform inversion with physics-informed neural networks.

Subpackages: ``io`` (SEG-Y), ``models`` / ``acquisition`` / ``gathers`` (the
survey), ``forward`` (Deepwave modelling, analytic solutions), ``pinn``
(networks, derivatives, residual, collocation, weighting, training),
``experiments`` (the race, the forward PINN), ``plots``, ``cli``.
Importing the package is cheap; import the subpackage you need.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
