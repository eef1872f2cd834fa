"""Cost of the 'mlsr' guess on CPU against one SCF cycle, per stage (grid / model / projection).

    python benchmarks/model_cost.py --n 5 --out benchmarks/results/model_cost

QM9 test-split molecules (needs the ``train`` extra), PBE/def2-SVP.  The network is the default
architecture with its initial weights: its cost does not depend on the values of the weights.
For each molecule: the SAD density on the input box, the network on it, the projection of its
output, and the median wall time of one SCF cycle from minao, all in one process, side by side.
"""

import argparse
import json
import pathlib
import statistics
import time

import torch
from pyscf import dft, gto

from pyscf_mlguess import config
from pyscf_mlguess.data import qm9
from pyscf_mlguess.grid import make_grid, sad_density_matrix, sad_density_on_grid
from pyscf_mlguess.model import CNNPredictor, DensitySR
from pyscf_mlguess.project import project_density


def measure(sample, predictor):
    mol = gto.M(atom=sample.atom, basis='def2-svp', verbose=0)
    row = {'key': sample.key, 'smiles': sample.smiles, 'natm': mol.natm, 'nao': mol.nao}
    # one SCF cycle: the median time between cycles of a minao run
    mf = dft.RKS(mol, xc='pbe')
    stamps = []
    mf.callback = lambda envs: stamps.append(time.perf_counter())
    mf.kernel()
    row['scf_cycles'] = mf.cycles
    row['scf_cycle_s'] = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
    # the guess, stage by stage, on a fresh object: it builds nothing the SCF would reuse
    mf = dft.RKS(mol, xc='pbe')
    t = time.perf_counter()
    dm_sad = sad_density_matrix(mol)[0]
    row['sad_dm_s'] = time.perf_counter() - t
    t0 = time.perf_counter()
    grid = make_grid(mol, predictor.input_spacing, predictor.margin)
    rho_sad = sad_density_on_grid(mol, grid, dm_sad)
    t1 = time.perf_counter()
    field = predictor(mol, grid, rho_sad)
    t2 = time.perf_counter()
    project_density(mf, dm_sad, field)
    t3 = time.perf_counter()
    row.update(box=list(grid.shape), grid_s=t1 - t0, model_s=t2 - t1, projection_s=t3 - t2)
    row['guess_in_scf_cycles'] = (t3 - t0 + row['sad_dm_s']) / row['scf_cycle_s']
    row['model_in_scf_cycles'] = (t2 - t1) / row['scf_cycle_s']
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--n', type=int, default=5)
    parser.add_argument('--out', default='benchmarks/results/model_cost')
    args = parser.parse_args()
    torch.manual_seed(0)
    net = DensitySR()
    meta = {'xc': 'pbe', 'input_spacing': 2 * config.GRID_SPACING,
            'output_spacing': config.GRID_SPACING, 'margin': config.GRID_MARGIN}
    predictor = CNNPredictor(net, meta, device='cpu')
    rows = [measure(s, predictor) for s in qm9.select('test', args.n, perturb_fraction=0.0)]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {'threads': torch.get_num_threads(), 'arch': net.arch,
            'parameters': sum(p.numel() for p in net.parameters()), 'rows': rows}
    (out / 'results.json').write_text(json.dumps(info, indent=1))
    lines = [f"CPU, {info['threads']} threads; network {net.arch['channels']} channels, "
             f"{net.arch['blocks']} blocks, {info['parameters']} parameters; PBE/def2-SVP.", '',
             'Grid = SAD box (the SAD density matrix, which minao does not need, is counted in '
             'the guess). The projection builds nothing the SCF reuses (its own coarse '
             'integration grid, no two-electron integrals).', '',
             '| molecule | atoms | nao | input box | SAD dm s | grid s | model s | projection s '
             '| one SCF cycle s | model / cycle | guess / cycle |',
             '|' + '---|' * 11]
    for r in rows:
        box = 'x'.join(map(str, r['box']))
        lines.append(f"| {r['smiles']} | {r['natm']} | {r['nao']} | {box} "
                     f"| {r['sad_dm_s']:.2f} | {r['grid_s']:.2f} | {r['model_s']:.2f} | "
                     f"{r['projection_s']:.2f} | "
                     f"{r['scf_cycle_s']:.2f} | {r['model_in_scf_cycles']:.2f} | "
                     f"{r['guess_in_scf_cycles']:.2f} |")
    (out / 'model_cost.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
