"""The projection's quadrature blocks: how many MB of AO values per block is fastest.

    python benchmarks/projection_blocks.py --budgets none,400,200,100,50 --repeats 3

For QM9 test molecules and drug-like molecules, the wall time of
:func:`pyscf_mlguess.project.potential_matrices` (J + Vxc of the 'mlsr' density on the
projection's grid, PBE) with each block budget (``none``: PySCF's own, ``max_memory`` less what
is in use), the budgets alternating within each repeat and the fastest repeat kept; and the
largest difference of the matrices against PySCF's budget (blocking must not change them).
Written to ``benchmarks/results/projection/blocks.json``.
"""

import argparse
import json
import pathlib
import statistics
import time

import numpy
from pyscf import dft, gto

from pyscf_mlguess import project
from pyscf_mlguess.benchmark.molecules import load_molecules
from pyscf_mlguess.guess import predict_density

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / 'results' / 'projection' / 'blocks.json'


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--budgets', default='none,400,200,100,50')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--qm9', type=int, default=4, help='QM9 test molecules')
    p.add_argument('--drugs', default='acyclovir,ibuprofen,omeprazole,imatinib')
    p.add_argument('--out', default=str(OUT))
    args = p.parse_args()
    budgets = [None if b == 'none' else int(b) for b in args.budgets.split(',')]
    molecules = load_molecules('qm9-test', n=args.qm9)
    wanted = args.drugs.split(',')
    molecules += [m for m in load_molecules(str(HERE / 'molecules' / 'drugs')) if m[0] in wanted]
    rows = []
    for name, entry in molecules:
        mol = gto.M(atom=entry['atom'], charge=entry['charge'], spin=entry['spin'],
                    basis='def2-svp', verbose=0)
        mf = dft.RKS(mol, xc='pbe')
        density = predict_density(mf)
        grids = project.projection_grids(mol, orientation=density.field.grid.orientation)
        seconds = {b: [] for b in budgets}
        mats = {}
        for _ in range(args.repeats):
            for b in budgets:
                t = time.perf_counter()
                mats[b] = project.potential_matrices(mf, mol, density.dm_sad, density.field,
                                                     grids, block_memory=b)[0]
                seconds[b].append(time.perf_counter() - t)
        row = {'molecule': name, 'nao': mol.nao, 'points': int(grids.weights.size),
               'seconds': {str(b): min(v) for b, v in seconds.items()},
               'max_abs_diff': {str(b): float(numpy.abs(mats[b] - mats[budgets[0]]).max())
                                for b in budgets}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = str(budgets[0])
    ratios = {str(b): statistics.median(r['seconds'][str(b)] / r['seconds'][base] for r in rows)
              for b in budgets}
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'median_ratio_to_' + base: ratios, 'rows': rows}, indent=1))
    print('median time ratio to', base, ratios)


if __name__ == '__main__':
    main()
