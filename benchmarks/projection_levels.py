"""The projection's own integration grid: which Becke level the guess needs.

    python benchmarks/projection_levels.py --xc pbe --n 1 --levels 0,1,2,3

Two measurements, written to ``benchmarks/results/projection/``:

* ``j_sad_water.txt``: J[D_SAD] from the SAD atoms' radial Hartree potentials by quadrature on
  the level-L grid, against PySCF's analytic J (water, def2-SVP): max |dJ| and the error of
  the Coulomb energy.
* ``levels_<xc>.jsonl``: for the first ``--n`` QM9 test molecules, the 'mlsr' guess with each
  level (shipped weights): SCF cycles, guess NMAE against the converged density, guess and
  projection wall seconds; with the minao cycles and the v0.1 guess figures from the committed
  qm9-test benchmark for comparison.
"""

import argparse
import json
import pathlib
import time

import numpy
from pyscf import dft, gto, scf
from pyscf.dft import numint

import pyscf_mlguess  # noqa: F401  (registers 'mlsr')
from pyscf_mlguess import config
from pyscf_mlguess.data import qm9
from pyscf_mlguess.grid import RadialSAD, sad_density_matrix
from pyscf_mlguess.metrics import density_nmae
from pyscf_mlguess.project import projection_grids

HERE = pathlib.Path(__file__).resolve().parent
WATER = 'O 0 0 0.1173; H 0 0.7572 -0.4692; H 0 -0.7572 -0.4692'


def j_sad_errors(levels):
    mol = gto.M(atom=WATER, basis='def2-svp', verbose=0)
    dm = sad_density_matrix(mol)[0]
    j_exact = scf.RHF(mol).get_j(mol, dm)
    sad = RadialSAD(mol, dm)
    lines = []
    for level in levels:
        grids = projection_grids(mol, level)
        ni = numint.NumInt()
        j = 0
        for ao, mask, weight, coords in ni.block_loop(mol, grids, mol.nao, 0):
            vh = sad.evaluate(coords, with_potential=True)[1]
            j = j + numint.eval_mat(mol, ao, weight, None, (vh,), mask, 'LDA')
        lines.append(f'{level} {grids.weights.size} max|dJ| {abs(j - j_exact).max()} E_J err '
                     f'{numpy.einsum("ij,ji", j - j_exact, dm) / 2}')
    return lines


def level_rows(xc, n, levels):
    committed = HERE / 'results' / 'qm9-test' / 'results.json'
    old = {(r['molecule'], r['guess']): r for r in json.loads(committed.read_text())['records']
           if r['xc'] == xc} if committed.exists() else {}
    for sample in qm9.select('test', n, perturb_fraction=0.0):
        mol = gto.M(atom=sample.atom, basis='def2-svp', verbose=0)
        ref = dft.RKS(mol, xc=xc).run()
        dm_conv = ref.make_rdm1()
        v01 = old.get((sample.key, 'mlsr'), {})
        row = {'mol': sample.key, 'nao': mol.nao, 'minao': ref.cycles,
               'old_mlsr': v01.get('cycles'), 'old_nmae': v01.get('guess_nmae')}
        for level in levels:
            config.PROJECTION_GRID_LEVEL = level
            mf = dft.RKS(mol, xc=xc)
            t = time.perf_counter()
            dm0 = mf.get_init_guess(key='mlsr')
            guess_s = time.perf_counter() - t
            mf.kernel(dm0=dm0)
            row[f'L{level}'] = (mf.cycles, round(density_nmae(mol, dm0, dm_conv, ref.grids), 5),
                                round(guess_s, 2), round(mf.mlsr_timings['projection'], 2))
        yield row


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--xc', default='pbe')
    parser.add_argument('--n', type=int, default=1)
    parser.add_argument('--levels', default='0,1,2,3')
    parser.add_argument('--out', default=str(HERE / 'results' / 'projection'))
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(',')]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'j_sad_water.txt').write_text('\n'.join(j_sad_errors(levels)) + '\n')
    with open(out / f'levels_{args.xc}.jsonl', 'w') as f:
        for row in level_rows(args.xc, args.n, levels):
            print(json.dumps(row), file=f, flush=True)
            print(json.dumps(row), flush=True)


if __name__ == '__main__':
    main()
