"""The oracle predictor: the *exact* correction from a converged density matrix.

Not part of the runtime guess.  It measures what the grid -> projection route loses when the
predicted correction is perfect (``benchmarks/oracle.py``, ``tests/test_project.py``), and
it is how training targets are put on the grid.
"""

from pyscf_mlguess.field import DensityField
from pyscf_mlguess.grid import density_on_grid, sad_density_matrix


class OraclePredictor:
    """delta_rho = rho[dm_ref] - rho[D_SAD], evaluated exactly from AOs on the box, or on the box
    refined ``refine`` times (to stand in for a model with sub-voxel upsampling)."""

    def __init__(self, dm_ref, input_spacing=None, margin=None, refine=1):
        self.dm_ref = dm_ref
        self.input_spacing = input_spacing
        self.margin = margin
        self.refine = int(refine)

    def __call__(self, mol, grid, rho_sad):
        out_grid = grid.refine(self.refine) if self.refine > 1 else grid
        dm = self.dm_ref
        if getattr(dm, 'ndim', 2) == 3:
            dm = dm[0] + dm[1]
        delta_dm = dm - sad_density_matrix(mol)[0]
        return DensityField(density_on_grid(mol, delta_dm, out_grid), out_grid)

    def __repr__(self):
        return f'OraclePredictor(refine={self.refine})'
