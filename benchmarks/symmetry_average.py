"""How much of the network's error is its own orientation: the guess from the network averaged
over the cube's symmetries.

    python benchmarks/symmetry_average.py weights/pbe-0.4.pt \\
        --valid data/pbe_def2svp/valid data/pbe_def2svp_derived/valid --n 12

The network is trained on boxes turned by a random one of the cube's 48 symmetries (axis
permutations and reflections), so it has learnt to be nearly, not exactly, equivariant under
them. Running it on each turned box, turning each answer back and averaging (test-time
augmentation) removes the part of its error that changes with the box's orientation; what
remains is the part every orientation shares. For the first ``--n`` validation molecules of each
folder this measures the NMAE of the model density and of the projected 'mlsr' guess (PySCF's
integration grid, as the release measures them) from the average over the first k symmetries,
k = 1 (the network as shipped), 2 (with its inversion), 8 (the reflections) and 48 (all), and the
network's CPU time per symmetry. Each averaged guess costs k network runs, so this is a measure
of where the error lives first, and a product option only if a small k pays for itself.

Writes ``benchmarks/results/symmetry_average/<weights>.{json,md}``; per-molecule rows are kept,
so an interrupted run resumes.
"""

import argparse
import itertools
import json
import pathlib
import statistics
import time

import numpy
import torch

from pyscf_mlguess.data.dataset import DensityDataset, apply_cube_symmetry
from pyscf_mlguess.field import DensityField
from pyscf_mlguess.model import CNNPredictor, load_weights, predict_delta
from pyscf_mlguess.train.release import measure_sample

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / 'results' / 'symmetry_average'
#: the cube's symmetries, identity first, then its inversion, the other reflections, and the
#: permutations: the first k of them are averaged
SYMMETRIES = sorted(((list(perm), [a for a in range(3) if mask >> a & 1])
                     for perm in itertools.permutations(range(3)) for mask in range(8)),
                    key=lambda s: (s[0] != [0, 1, 2], s[1] != [], s[1] != [0, 1, 2]))
COUNTS = (1, 2, 8, 48)


def undo(array, perm, flips):
    """The inverse of :func:`~pyscf_mlguess.data.dataset.apply_cube_symmetry` on a 3D tensor."""
    out = array.flip(flips) if flips else array
    return out.permute(*numpy.argsort(perm).tolist())


class SymmetryAveraged(CNNPredictor):
    """The network's delta_rho averaged over the first ``count`` of :data:`SYMMETRIES`. All 48
    are computed once per molecule and kept, so that every ``count`` reads the same runs."""

    count = 1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._key = self._deltas = None
        self.seconds = []

    def __call__(self, mol, grid, rho_sad):
        x = torch.as_tensor(numpy.asarray(rho_sad), dtype=torch.float32)
        out_grid = grid.refine(self.model.upsample) if self.model.upsample > 1 else grid
        key = (mol.atom_coords().tobytes(), x.shape)
        if key != self._key:
            self._deltas = []
            with torch.inference_mode():
                for perm, flips in SYMMETRIES:
                    t0 = time.process_time()
                    turned = apply_cube_symmetry(x, perm, flips).contiguous()
                    delta = predict_delta(self.model, turned, -mol.charge,
                                          out_grid.voxel_volume, self.tile)
                    self._deltas.append(undo(delta, perm, flips))
                    self.seconds.append(time.process_time() - t0)
            self._key = key
        mean = torch.stack(self._deltas[:self.count]).mean(0)
        return DensityField(mean.double().numpy(), out_grid)


def measure(weights, folders, n, out):
    model, meta = load_weights(weights)
    if meta.get('near_nucleus'):
        raise SystemExit(f'{weights} carries near-nucleus terms, which this average leaves out')
    predictor = SymmetryAveraged(model, meta, device='cpu', source=str(weights))
    rows = json.loads(out.read_text())['rows'] if out.exists() else []
    done = {(r['folder'], r['key']) for r in rows}
    for folder in folders:
        data = DensityDataset([folder], meta['output_spacing'], meta['margin'], model.upsample,
                              elements=model.input_elements)
        data.keep_first(n)
        for record in data.records:
            if (str(folder), record['key']) in done:
                continue
            row = {'folder': str(folder), 'key': record['key']}
            for count in COUNTS:
                predictor.count = count
                m = measure_sample(record, predictor)
                row[f'model_{count}'], row[f'guess_{count}'] = m['model'], m['mlsr_guess']
            row['network_cpu_s'] = statistics.median(predictor.seconds[-len(SYMMETRIES):])
            rows.append(row)
            print(row, flush=True)
            out.write_text(json.dumps({'weights': str(weights), 'rows': rows}, indent=1))
    return rows


def report(rows, weights):
    lines = [f'# The network averaged over the cube\'s symmetries: {weights}', '',
             'NMAE of the model density and of the projected guess from the network averaged '
             'over its first k symmetries (k = 1: as shipped); median over the molecules, and '
             'the median per-molecule ratio to k = 1.', '',
             '| folder | molecules | k | model density | ratio | projected guess | ratio |',
             '|---|---|---|---|---|---|---|']
    for folder in sorted({r['folder'] for r in rows}):
        sub = [r for r in rows if r['folder'] == folder]
        for k in COUNTS:
            cells = []
            for what in ('model', 'guess'):
                median = statistics.median(r[f'{what}_{k}'] for r in sub)
                ratio = statistics.median(r[f'{what}_{k}'] / r[f'{what}_1'] for r in sub)
                cells += [f'{100 * median:.3f} %', f'{ratio:.3f}']
            lines.append(f'| {folder} | {len(sub)} | {k} | ' + ' | '.join(cells) + ' |')
    cpu = statistics.median(r['network_cpu_s'] for r in rows)
    lines += ['', f'Network CPU time per symmetry (one thread, median over the molecules): '
              f'{cpu:.2f} s; an average over k costs k times that.']
    return '\n'.join(lines) + '\n'


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('weights')
    parser.add_argument('--valid', nargs='+', required=True, help='validation folders')
    parser.add_argument('--n', type=int, default=12, help='molecules per folder')
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = pathlib.Path(args.weights).stem
    out = RESULTS / f'{name}.json'
    rows = measure(args.weights, args.valid, args.n, out)
    text = report(rows, args.weights)
    (RESULTS / f'{name}.md').write_text(text)
    print(text)


if __name__ == '__main__':
    main()
