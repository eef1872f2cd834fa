"""pyscf-mlguess: a machine-learned initial guess for PySCF's SCF.

``import pyscf_mlguess`` registers ``init_guess='mlsr'`` with every molecular SCF class::

    import pyscf_mlguess
    from pyscf import gto, dft
    mf = dft.RKS(gto.M(atom='caffeine.xyz', basis='def2-svp'), xc='pbe')
    mf.init_guess = 'mlsr'
    mf.kernel()

or, without touching ``init_guess``: ``mf.kernel(dm0=pyscf_mlguess.get_init_guess(mf))``.
``pyscf_mlguess.predict_density(mf)`` gives the predicted density itself (SAD density matrix plus
the model's correction on a uniform grid).

The pipeline reads in one direction: :mod:`~pyscf_mlguess.grid` (SAD density on a box) ->
:mod:`~pyscf_mlguess.model` (predictor of the correction) -> :mod:`~pyscf_mlguess.project`
(density -> idempotent density matrix) -> :mod:`~pyscf_mlguess.guess` (the PySCF hook).
"""

__version__ = '0.1.0'

from pyscf_mlguess.guess import get_init_guess, init_guess_by_mlsr, install, predict_density
from pyscf_mlguess.model import WeightsFileError, WeightsNotFoundError, ZeroPredictor

install()

__all__ = ['get_init_guess', 'init_guess_by_mlsr', 'predict_density', 'WeightsFileError',
           'WeightsNotFoundError', 'ZeroPredictor', '__version__']
