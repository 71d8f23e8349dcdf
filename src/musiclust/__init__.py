"""musiclust: discover structure in multilingual music collections with variational autoencoders.

The library knows nothing of DVC: stage scripts under ``stages/`` read paths from
the command line and params through :mod:`musiclust.params`, then call in here.
"""

__version__ = "0.1.0"
