"""How close a guess density is to the converged one: NMAE on PySCF's integration grid.

    NMAE = integral |rho - rho_ref| / N_electrons

evaluated with the molecule's DFT integration grid (Becke partitioning, PySCF's defaults), so
the all-electron cusps count as they do in the SCF.  Used by the benchmarks and when weights are
released; not part of the guess itself.
"""

import numpy
from pyscf import dft


def _spin_summed(dm):
    dm = numpy.asarray(dm)
    return dm[0] + dm[1] if dm.ndim == 3 else dm


def default_grids(mol, grids=None):
    """``grids`` built if needed, or PySCF's default DFT grid for ``mol``."""
    if grids is None:
        grids = dft.gen_grid.Grids(mol)
    if grids.coords is None:
        grids.build(with_non0tab=True)
    return grids


def density_nmae(mol, dm, dm_ref, grids=None, field=None):
    """NMAE of the density of ``dm`` (plus ``field``, e.g. a predicted delta_rho as a
    :class:`pyscf_mlguess.field.DensityField`) against that of ``dm_ref``."""
    grids = default_grids(mol, grids)
    diff = _spin_summed(dm) - _spin_summed(dm_ref)
    ni = dft.numint.NumInt()
    err = 0.0
    for ao, mask, weight, coords in ni.block_loop(mol, grids, mol.nao, 0):
        rho = ni.eval_rho(mol, ao, diff, mask, 'LDA')
        if field is not None:
            rho = rho + field.evaluate(coords)
        err += weight @ abs(rho)
    return float(err / mol.nelectron)
