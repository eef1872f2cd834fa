"""An example 'mlsr' guess: caffeine-free and quick (water, PBE/def2-SVP).

    python examples/guess.py

1. Asks for the pretrained model. This release ships no weights yet, so PySCF's 'mlsr' key
   raises WeightsNotFoundError, and the example says so.
2. Runs the full pipeline (SAD on the box -> predictor -> projection -> SCF) with the *oracle*
   predictor (the exact density correction, from a converged calculation) and with the zero
   predictor (the SAD density itself), and prints SCF cycles against PySCF's minao guess.
"""

from pyscf import dft, gto

import pyscf_mlguess
from pyscf_mlguess.oracle import OraclePredictor

mol = gto.M(atom='O 0 0 0.1173; H 0 0.7572 -0.4692; H 0 -0.7572 -0.4692', basis='def2-svp',
            verbose=0)


def scf_cycles(init_guess, predictor=None):
    mf = dft.RKS(mol, xc='pbe')
    mf.init_guess = init_guess
    mf.mlsr_predictor = predictor
    mf.kernel()
    return mf


minao = scf_cycles('minao')
try:
    scf_cycles('mlsr')
    print("init_guess='mlsr' with the shipped weights: ok")
except pyscf_mlguess.WeightsNotFoundError as err:
    print(f'shipped weights: {err}\n')

zero = scf_cycles('mlsr', pyscf_mlguess.ZeroPredictor())
oracle = scf_cycles('mlsr', OraclePredictor(minao.make_rdm1()))
print(f"{'guess':<28}{'cycles':>7}{'E (Ha)':>20}")
for name, mf in [('minao', minao), ('mlsr, zero predictor (SAD)', zero),
                 ('mlsr, oracle predictor', oracle)]:
    print(f'{name:<28}{mf.cycles:>7}{mf.e_tot:>20.10f}')
