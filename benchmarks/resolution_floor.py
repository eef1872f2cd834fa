"""How much of the guess's error is the network's, and how much the output resolution's.

    python benchmarks/resolution_floor.py weights/pbe-0.3.pt \\
        --valid data/pbe_def2svp/valid data/pbe_def2svp_derived/valid --n 20 --cycles 8

The shipped networks predict delta_rho at 0.3 Bohr. Even the *exact* delta_rho sampled at 0.3
Bohr loses something in the projection (the near-nucleus spike, docs/design.md), so a network
at that resolution has a floor it cannot pass however well it is trained. On the first ``--n``
validation samples of each folder, five corrections go through the same projection, on the
network's own box:

* ``model``: the network's output (its own resolution);
* ``exact``: the exact delta_rho at the network's output resolution (the floor of that
  resolution: a perfect network);
* ``exact_fine``: the exact delta_rho at half that spacing (the floor of a network with one
  more factor of sub-voxel upsampling);
* ``model_on_fine``: ``exact_fine`` plus the network's own error (model minus exact at its
  resolution, spline-interpolated onto the fine points): what a finer network that made the
  same smooth errors as this one would give;
* ``model_interpolated``: the network's output spline-interpolated onto the fine points (a
  control: the finer projection alone, no new information).

For each: NMAE of the density itself and of the projected 'mlsr' guess (PySCF's integration
grid, all-electron, as the release measures them); with ``--cycles M``, PySCF's default SCF
cycles from minao and from each guess on the first M samples per folder. Validation samples
only: this chooses what to train next.

Writes ``benchmarks/results/resolution_floor/<weights>.{json,md}``; resumable per sample.
"""

import argparse
import json
import pathlib

import numpy

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / 'results' / 'resolution_floor'
VARIANTS = ('model', 'exact', 'exact_fine', 'model_on_fine', 'model_interpolated')


class _Predictor:
    """One of the five corrections as a predictor (``predict_density`` calls it on the box)."""

    def __init__(self, variant, network, dm_ref):
        from pyscf_mlguess.oracle import OraclePredictor
        self.variant = variant
        self.network = network
        self.input_spacing = network.input_spacing
        self.margin = network.margin
        self.input_elements = network.input_elements
        self.meta = network.meta
        self.exact = OraclePredictor(dm_ref, refine=network.refine)
        self.exact_fine = OraclePredictor(dm_ref, refine=2 * network.refine)

    def __call__(self, mol, grid, rho_sad):
        from pyscf_mlguess.field import DensityField
        if self.variant == 'exact':
            return self.exact(mol, grid, rho_sad)
        if self.variant == 'exact_fine':
            return self.exact_fine(mol, grid, rho_sad)
        model = self.network(mol, grid, rho_sad)
        if self.variant == 'model':
            return model
        fine = grid.refine(2 * self.network.refine)
        if self.variant == 'model_interpolated':
            return DensityField(fine.sample(model.evaluate), fine)
        error = DensityField(model.values - self.exact(mol, grid, rho_sad).values, model.grid)
        return DensityField(self.exact_fine(mol, grid, rho_sad).values
                            + fine.sample(error.evaluate), fine)


def score(mol, xc, density, dm_ref, grids, minao=None):
    """Model and guess NMAE of a predicted ``density`` (a PredictedDensity) against ``dm_ref``
    on ``grids``; with ``minao`` (that run's cycles and energy) also the SCF from the guess:
    cycles, convergence, energy against minao's."""
    from pyscf import dft
    from pyscf_mlguess.guess import init_guess_by_mlsr
    from pyscf_mlguess.metrics import density_nmae
    mf = dft.RKS(mol, xc=xc)
    dm = init_guess_by_mlsr(mf, density=density)
    res = {'model': density_nmae(mol, density.dm_sad, dm_ref, grids, density.field),
           'guess': density_nmae(mol, dm, dm_ref, grids)}
    if minao:
        mf.kernel(dm)
        res.update(cycles=mf.cycles, converged=bool(mf.converged),
                   delta_e=mf.e_tot - minao['e_tot'])
    return res


def minao_run(mol, xc):
    """PySCF's default SCF (minao guess): its cycles and energy."""
    from pyscf import dft
    mf = dft.RKS(mol, xc=xc)
    mf.kernel()
    return {'cycles': mf.cycles, 'e_tot': mf.e_tot}


def measure(record, network, cycles):
    """Model and guess NMAE of every variant for one sample; SCF cycles if ``cycles``."""
    from pyscf import dft
    from pyscf_mlguess.data import store
    from pyscf_mlguess.data.dataset import molecule_of
    from pyscf_mlguess.guess import predict_density
    from pyscf_mlguess.metrics import default_grids
    mol = molecule_of(record)
    dm_ref = store.density_matrix_from_orbitals(record['mo_occ_coeff'], mol.intor('int1e_ovlp'))
    row = {'key': record['key'], 'nao': mol.nao}
    grids = default_grids(mol, dft.RKS(mol, xc=record['xc']).grids)
    if cycles:
        row['minao'] = minao_run(mol, record['xc'])
    for variant in VARIANTS:
        density = predict_density(dft.RKS(mol, xc=record['xc']),
                                  predictor=_Predictor(variant, network, dm_ref))
        row[variant] = score(mol, record['xc'], density, dm_ref, grids, row.get('minao'))
    return row


def summary(rows):
    out = {}
    for folder in dict.fromkeys(r['folder'] for r in rows):
        rs = [r for r in rows if r['folder'] == folder]
        per = {'samples': len(rs)}
        for v in VARIANTS:
            per[v] = {k: {'mean': float(numpy.mean([r[v][k] for r in rs])),
                          'median': float(numpy.median([r[v][k] for r in rs]))}
                      for k in ('model', 'guess')}
        timed = [r for r in rs if 'minao' in r]
        if timed:
            per['cycles_samples'] = len(timed)
            per['cycles'] = {v: sum(r[v]['cycles'] for r in timed) for v in VARIANTS}
            per['cycles']['minao'] = sum(r['minao']['cycles'] for r in timed)
            per['not_converged'] = sum(not r[v]['converged'] for r in timed for v in VARIANTS)
            per['max_abs_delta_e'] = max(abs(r[v]['delta_e']) for r in timed for v in VARIANTS)
        out[folder] = per
    return out


def markdown(name, result):
    lines = [f'# Resolution floor of {name}', '',
             'NMAE of the density (SAD + delta_rho) and of the projected guess, all-electron on '
             "PySCF's grid; validation samples (`benchmarks/resolution_floor.py`).", '',
             '| folder | correction | molecules | density NMAE (median; mean) | '
             'guess NMAE (median; mean) | SCF cycles, sum |', '|---' * 6 + '|']
    for folder, per in result.items():
        cyc = per.get('cycles', {})
        if cyc:
            lines.append(f"| {folder} | minao | {per['cycles_samples']} | | | {cyc['minao']} |")
        for v in VARIANTS:
            m, g = per[v]['model'], per[v]['guess']
            lines.append(f"| {folder} | {v} | {per['samples']} | {100 * m['median']:.2f}; "
                         f"{100 * m['mean']:.2f} % | {100 * g['median']:.2f}; "
                         f"{100 * g['mean']:.2f} % | {cyc.get(v, '')} |")
        if cyc:
            lines += ['', f"{folder}: cycles on the first {per['cycles_samples']}; runs not "
                      f"converged {per['not_converged']}, largest |E - E(minao)| "
                      f"{per['max_abs_delta_e']:.1e} Ha."]
    return '\n'.join(lines) + '\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('weights')
    p.add_argument('--valid', nargs='+', required=True, help='validation folders')
    p.add_argument('--n', type=int, default=20, help='first N samples per folder')
    p.add_argument('--cycles', type=int, default=0,
                   help='SCF cycles on the first M samples per folder')
    p.add_argument('--out', default=str(RESULTS))
    args = p.parse_args(argv)
    from tqdm import tqdm
    from pyscf_mlguess.data.dataset import DensityDataset
    from pyscf_mlguess.model import CNNPredictor, load_weights
    model, meta = load_weights(args.weights)
    network = CNNPredictor(model, meta, device='cpu')
    name = pathlib.Path(args.weights).stem
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f'{name}.json'
    old = json.loads(path.read_text()) if path.exists() else {}
    done = {(r['folder'], r['key']): r for r in old.get('rows', [])}
    rows = []
    for folder in args.valid:
        data = DensityDataset([folder], meta['output_spacing'], meta['margin'], model.upsample,
                              elements=model.input_elements)
        data.keep_first(args.n)
        for i, rec in enumerate(tqdm(data.records, desc=folder)):
            want_cycles = i < args.cycles
            row = done.get((folder, rec['key']))
            if row is None or (want_cycles and 'minao' not in row):
                row = dict(measure(rec, network, want_cycles), folder=folder)
                done[(folder, rec['key'])] = row
            rows.append(row)
            result = summary(rows)
            path.write_text(json.dumps({'weights': str(args.weights), 'summary': result,
                                        'rows': rows}, indent=1))
            (out / f'{name}.md').write_text(markdown(name, result))
    print((out / f'{name}.md').read_text())


if __name__ == '__main__':
    main()
