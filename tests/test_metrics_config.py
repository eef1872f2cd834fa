"""metrics.density_nmae against densities of known error, and PySCF ``__config__`` overrides."""

import json
import os
import subprocess
import sys

import numpy
import pytest

from pyscf_mlguess.field import DensityField
from pyscf_mlguess.grid import make_grid
from pyscf_mlguess.metrics import density_nmae


def test_density_nmae_of_known_errors(water_pbe):
    mol, dm, _ = water_pbe
    assert density_nmae(mol, dm, dm) == 0.0
    # a density scaled by (1 + e) is off by e |rho| everywhere: NMAE = e
    assert density_nmae(mol, 1.01 * dm, dm) == pytest.approx(0.01, rel=1e-5)
    # spin pairs are summed; the order of the arguments does not matter
    pair = numpy.array((0.5 * dm, 0.5 * dm))
    assert density_nmae(mol, pair, 1.02 * dm) == pytest.approx(0.02, rel=1e-5)
    # a field is added to the first density: minus 1 % of rho on a fine box cancels the scaling
    grid = make_grid(mol, spacing=0.1, margin=6.0)
    from pyscf_mlguess.grid import density_on_grid
    field = DensityField(-0.01 * density_on_grid(mol, dm, grid), grid)
    assert density_nmae(mol, 1.01 * dm, dm, field=field) < 2e-4


def test_pyscf_config_overrides_the_defaults(tmp_path):
    cfg = tmp_path / 'pyscf_conf.py'
    cfg.write_text("mlguess_exchange = 'sad_k'\nmlguess_projection_grid_level = 2\n"
                   "mlguess_tile = 48\nmlguess_grid_margin = 4.5\n")
    script = ('import json\nfrom pyscf import dft, gto\nimport pyscf_mlguess\n'
              'from pyscf_mlguess import config\n'
              "mf = dft.RKS(gto.M(atom='He 0 0 0', verbose=0))\n"
              'print(json.dumps([config.EXCHANGE, config.PROJECTION_GRID_LEVEL, '
              'config.MODEL_TILE, config.GRID_MARGIN, mf.mlsr_exchange]))\n')
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYSCF_CONFIG_FILE=str(cfg)))
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ['sad_k', 2, 48, 4.5, 'sad_k']
