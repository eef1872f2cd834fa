"""Tunable defaults, in one place.

Each value can be overridden the PySCF way, through ``pyscf.__config__`` (for example a
``PYSCF_CONFIG_FILE`` that sets ``mlguess_grid_spacing = 0.25``), or per SCF object through the
``mlsr_*`` attributes the hook registers.  The grid defaults are provisional: the oracle table
(``benchmarks/results/oracle/oracle.md``) shows finer spacings lose less, and the final choice
waits for the projection to meet its target and for the CNN's cost on these boxes.
"""

from pyscf import __config__

#: Spacing of the uniform box grid, Bohr.
GRID_SPACING = getattr(__config__, 'mlguess_grid_spacing', 0.2)
#: Distance from the outermost nucleus to the box face, Bohr.
GRID_MARGIN = getattr(__config__, 'mlguess_grid_margin', 5.0)
#: Box edges are rounded up to a multiple of this many points (room for x2 down/up-sampling).
GRID_MULTIPLE = getattr(__config__, 'mlguess_grid_multiple', 4)
#: Bytes of working memory per box point in the guess (density, its gradient, the Hartree
#: potential and the 2x zero-padded FFT buffers); used to refuse boxes above ``mf.max_memory``.
GRID_BYTES_PER_POINT = 8 * 8 + 8 * 16

#: Radial table of each atomic SAD density: points and range (Bohr).
SAD_RADIAL_POINTS = 4000
SAD_RADIAL_RMIN = 1e-5
SAD_RADIAL_RMAX = 40.0
#: Atomic densities below this value (e/Bohr^3) are treated as zero on the box.
SAD_DENSITY_CUTOFF = 1e-11

#: Treatment of exact exchange for hybrids and HF in the projection (see project.py):
#: 'sad_k', 'lda_x' or 'k_refresh'.
EXCHANGE = getattr(__config__, 'mlguess_exchange', 'k_refresh')
#: Integration-grid level used when the SCF object has no grids of its own (HF).
HF_GRID_LEVEL = getattr(__config__, 'mlguess_hf_grid_level', 3)

#: Environment variable that points to a weights file, or a folder of them, to use instead of
#: the ones shipped in the package.
WEIGHTS_ENV = 'PYSCF_MLGUESS_WEIGHTS'
