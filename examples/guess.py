"""An example 'mlsr' guess with the shipped weights: salicylic acid (not in QM9: 10 heavy atoms)
at PBE/def2-SVP (the PBE model) and B3LYP/def2-SVP (the B3LYP model), against PySCF's minao.

    python examples/guess.py

Prints, per functional and guess: SCF cycles, total wall seconds (guess + SCF, what a user
waits), the converged energy, and for 'mlsr' the wall time of its stages (SAD density on the
box / network / projection onto the basis).
"""

import time

from pyscf import dft, gto

import pyscf_mlguess  # noqa: F401  (registers init_guess='mlsr')

SALICYLIC_ACID = '''     # RDKit ETKDG + MMFF geometry, Angstrom
O  -2.7336   0.1011  -0.3436
C  -1.8349  -0.8539  -0.0246
O  -2.1924  -1.9972   0.1890
C  -0.4419  -0.3472   0.0257
C   0.5634  -1.2712   0.3503
C   1.8997  -0.8694   0.4174
C   2.2414   0.4573   0.1610
C   1.2495   1.3832  -0.1624
C  -0.0852   0.9838  -0.2299
O  -0.9842   1.9635  -0.5545
H  -3.5857  -0.3911  -0.3336
H   0.3098  -2.3104   0.5528
H   2.6726  -1.5916   0.6696
H   3.2807   0.7726   0.2125
H   1.5151   2.4182  -0.3626
H  -1.8743   1.5522  -0.5671
'''

mol = gto.M(atom=SALICYLIC_ACID, basis='def2-svp', verbose=0)
print(f'salicylic acid, def2-SVP, {mol.nao} basis functions')
print(f"{'functional':<11}{'guess':<7}{'cycles':>7}{'total s':>9}{'E (Ha)':>19}   "
      "mlsr stages (s)")
for xc in ('pbe', 'b3lyp'):
    energies = {}
    for guess in ('minao', 'mlsr'):
        mf = dft.RKS(mol, xc=xc)
        mf.init_guess = guess
        start = time.perf_counter()
        mf.kernel()
        seconds = time.perf_counter() - start
        energies[guess] = mf.e_tot
        stages = ''
        if guess == 'mlsr':
            t = mf.mlsr_timings
            stages = f"grid {t['grid']:.2f} / model {t['model']:.2f} / " \
                     f"projection {t['projection']:.2f}"
        print(f'{xc:<11}{guess:<7}{mf.cycles:>7}{seconds:>9.1f}{mf.e_tot:>19.9f}   {stages}')
    assert abs(energies['mlsr'] - energies['minao']) < 1e-6, 'energies differ'
