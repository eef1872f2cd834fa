"""Stage 2 of the guess: the predictor that turns the SAD image into a density correction.

A *predictor* is any object with

* ``grid_spacing`` and ``grid_margin``: the box (Bohr) it needs its input on, or ``None`` when it
  works on any box;
* ``__call__(mol, grid, rho_sad) -> (delta_rho, out_grid)``: the correction to the SAD density on
  ``out_grid``, which is ``grid`` itself or a finer grid covering the same voxels
  (:meth:`pyscf_mlguess.grid.UniformGrid.refine`).

The pretrained residual 3D CNN is such a predictor; :func:`load_predictor` finds the weights that
match an SCF object's functional.  Until weights ship, it raises :class:`WeightsNotFoundError`: the
``'mlsr'`` guess never quietly replaces the model with something else.  :class:`ZeroPredictor`
(delta_rho = 0, i.e. the plain SAD density projected) exists for tests and comparisons and is
only ever used when asked for by name.
"""

import os
from importlib import resources

import numpy

from pyscf_mlguess import config

#: Weight families: the functional each pretrained model was trained on.
PURE_FAMILY = 'pbe'
HYBRID_FAMILY = 'b3lyp'


class WeightsNotFoundError(RuntimeError):
    """No pretrained weights are available for the requested functional."""


class ZeroPredictor:
    """delta_rho = 0: the SAD density itself goes through the projection (for tests and the
    ``sad`` baseline; never picked automatically)."""
    grid_spacing = None
    grid_margin = None

    def __call__(self, mol, grid, rho_sad):
        return numpy.zeros(grid.shape), grid

    def __repr__(self):
        return 'ZeroPredictor()'


def weights_family(mf):
    """'pbe' for LDA/GGA/meta-GGA objects, 'b3lyp' for hybrids and Hartree-Fock."""
    from pyscf import dft
    if not isinstance(mf, dft.rks.KohnShamDFT):
        return HYBRID_FAMILY
    omega, alpha, hyb = mf._numint.rsh_and_hybrid_coeff(mf.xc, spin=mf.mol.spin)
    return HYBRID_FAMILY if (hyb or alpha) else PURE_FAMILY


def find_weights(family, path=None):
    """Path of the weights for ``family``: ``path`` if given, else the file or folder named by
    ``$PYSCF_MLGUESS_WEIGHTS``, else the weights shipped in the package.

    Raises :class:`WeightsNotFoundError` listing every place that was searched.
    """
    searched = []
    candidates = []
    if path is not None:
        candidates.append(str(path))
    elif os.environ.get(config.WEIGHTS_ENV):
        candidates.append(os.environ[config.WEIGHTS_ENV])
    else:
        candidates.append(str(resources.files('pyscf_mlguess.weights')))
    for cand in candidates:
        target = os.path.join(cand, f'{family}.pt') if os.path.isdir(cand) else cand
        searched.append(target)
        if os.path.isfile(target):
            return target
    raise WeightsNotFoundError(
        f"No pretrained mlsr weights for the {family.upper()} family (searched: "
        f"{', '.join(searched)}). This release ships no trained model yet, so "
        f"init_guess='mlsr' cannot run; set mf.mlsr_predictor to a predictor of your own, or "
        f"point ${config.WEIGHTS_ENV} to a weights file.")


def load_predictor(mf, path=None):
    """The pretrained predictor for ``mf``'s functional (see :func:`weights_family`)."""
    target = find_weights(weights_family(mf), path)
    raise WeightsNotFoundError(
        f'{target} exists, but this version of pyscf_mlguess has no CNN architecture to load it '
        f'into; update pyscf_mlguess.')
