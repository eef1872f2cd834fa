"""Tunable defaults, in one place.

Each value can be overridden the PySCF way, through ``pyscf.__config__`` (for example a
``PYSCF_CONFIG_FILE`` that sets ``mlguess_grid_spacing = 0.25``), or per SCF object through the
``mlsr_*`` attributes the hook registers.  Why each default is what it is, with the
measurements, is in docs/design.md; a predictor (trained weights) fixes its own box.
"""

from pyscf import __config__

#: Box spacing (Bohr) for predictors that take any box: the oracle's cycles fall with it, the
#: cost of the field (network output, Hartree FFT) grows as its cube.
GRID_SPACING = getattr(__config__, 'mlguess_grid_spacing', 0.15)
#: Distance from the outermost nucleus to the box face, Bohr: enough that the correction left
#: outside the box is negligible.
GRID_MARGIN = getattr(__config__, 'mlguess_grid_margin', 5.0)
#: Box edges are rounded up to a multiple of this many points (room for x2 down/up-sampling).
GRID_MULTIPLE = getattr(__config__, 'mlguess_grid_multiple', 4)

#: Radial table of each atomic SAD density: points and range (Bohr).
SAD_RADIAL_POINTS = 4000
SAD_RADIAL_RMIN = 1e-5
SAD_RADIAL_RMAX = 40.0
#: Atomic densities below this value (e/Bohr^3) are treated as zero on the box.
SAD_DENSITY_CUTOFF = 1e-11

#: Treatment of exact exchange for hybrids and HF in the projection (see project.py):
#: 'sad_k', 'lda_x' or 'k_refresh'.  'lda_x' builds no K: with the trained model it gives as
#: few SCF cycles as 'k_refresh' for a fraction of the guess's cost (docs/design.md).
EXCHANGE = getattr(__config__, 'mlguess_exchange', 'lda_x')
#: Level of the projection's own Becke integration grid (0-9, as ``Grids.level``); coarse,
#: because the projection is one Fock build for a guess (levels compared in docs/design.md).
PROJECTION_GRID_LEVEL = getattr(__config__, 'mlguess_projection_grid_level', 1)

#: What the guess does for a molecule outside the weights' domain (an element, charge or spin
#: their training data never had): 'minao' hands over to PySCF's minao guess (logged), 'model'
#: uses the network anyway.  Outside the domain the network has cost cycles, not saved them
#: (measured by class in docs/results.md).
OUTSIDE_DOMAIN = getattr(__config__, 'mlguess_outside_domain', 'minao')
OUTSIDE_DOMAIN_CHOICES = ('minao', 'model')

#: ``mf.diis_start_cycle`` the mlsr guess gives an SCF object still at PySCF's default (1):
#: 0 lets the Fock matrix of the guess into DIIS, which a crude guess's would spoil but the mlsr
#: guess's, nearly self-consistent, makes converge in fewer cycles (docs/design.md, "DIIS from the
#: guess").  None leaves PySCF's setting alone.
DIIS_START_CYCLE = getattr(__config__, 'mlguess_diis_start_cycle', 0)

#: Device for the network ('cpu', 'cuda', 'cuda:1'); None picks CUDA when available.
MODEL_DEVICE = getattr(__config__, 'mlguess_device', None)
#: Input voxels per tile edge for the network (halo added); bounds memory on big boxes.
MODEL_TILE = getattr(__config__, 'mlguess_tile', 96)

#: Environment variable that points to a weights file, or a folder of them, to use instead of
#: the ones shipped in the package.
WEIGHTS_ENV = 'PYSCF_MLGUESS_WEIGHTS'
