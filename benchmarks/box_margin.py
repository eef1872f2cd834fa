"""How much box the network needs at run time: the guess under smaller inference margins.

    python benchmarks/box_margin.py --weights pbe-0.3 --n 20 --margins 5,4,3.5,3

The shipped weights were trained on boxes reaching ``margin`` (5 Bohr) beyond the outermost
nuclei, and the guess builds its box the same way.  Most of the box is then nearly empty: a QM9
molecule's box at 3 Bohr has about half the voxels of the one at 5, and the network, the Hartree
FFT and the splines pay per voxel.  delta_rho left outside the box is small (design.md: -3e-3 e
at 4 Bohr), but the network has never seen its input cut that close.  This measures, on the
first ``--n`` molecules of each validation folder, the projected guess's NMAE against the stored
reference (PySCF's default integration grid) and the wall time of the guess's stages at each
margin, all margins on each molecule in rotating order, in one process.  Selection is on
validation molecules, never on the benchmark sets.  Rows go to
``benchmarks/results/box_margin/<weights>.json`` (resumable) and a summary to ``.md``.
"""

import argparse
import json
import pathlib
import statistics

from pyscf import dft

from pyscf_mlguess import model
from pyscf_mlguess.data import store
from pyscf_mlguess.data.dataset import molecule_of
from pyscf_mlguess.guess import init_guess_by_mlsr
from pyscf_mlguess.metrics import default_grids, density_nmae

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / 'benchmarks' / 'results' / 'box_margin'
FOLDERS = ('data/pbe_def2svp/valid', 'data/pbe_def2svp_derived/valid')
STAGES = ('grid', 'model', 'projection', 'total')


def measure(record, predictor, margins, turn):
    """Guess NMAE and stage timings of one record at each margin (order rotated by ``turn``)."""
    mol = molecule_of(record)
    dm_ref = store.density_matrix_from_orbitals(record['mo_occ_coeff'], mol.intor('int1e_ovlp'))
    trained = predictor.margin
    row = {}
    order = margins[turn % len(margins):] + margins[:turn % len(margins)]
    try:
        for m in order:
            predictor.margin = m         # the box the guess builds (guess._box_setting)
            mf = dft.RKS(mol, xc=record['xc'])
            mf.verbose = 0
            mf.mlsr_outside_domain = 'model'
            mf.mlsr_predictor = predictor
            dm = init_guess_by_mlsr(mf)
            nmae = density_nmae(mol, dm, dm_ref, default_grids(mol, mf.grids))
            row[str(m)] = {'guess_nmae': nmae,
                           **{f'{k}_s': mf.mlsr_timings[k] for k in STAGES}}
    finally:
        predictor.margin = trained
    return {'charge': record['charge'], 'nao': mol.nao, 'margins': row}


def summary(rows, margins):
    """Per margin: median guess NMAE, median ratios to the first margin (NMAE, stage times), and
    on how many molecules the NMAE is worse by more than 2 %."""
    ref = str(margins[0])
    out = {}
    for m in map(str, margins):
        per = [r['margins'] for r in rows.values()]
        ratio = {k: statistics.median(p[m][k] / p[ref][k] for p in per)
                 for k in ('guess_nmae', *(f'{s}_s' for s in STAGES))}
        out[m] = {'guess_nmae': statistics.median(p[m]['guess_nmae'] for p in per),
                  'ratio': ratio,
                  'worse_2pct': sum(p[m]['guess_nmae'] > 1.02 * p[ref]['guess_nmae'] for p in per)}
    return out


def markdown(result):
    lines = [f"# The guess's box margin at run time ({result['weights']})", '',
             f"Margin {result['margins'][0]} Bohr is the one the weights were trained on. "
             'Median over '
             'the first molecules of each validation folder; ratios are per molecule to the '
             'trained margin, one process, margins alternating (`benchmarks/box_margin.py`).', '',
             '| folder | molecules | margin (Bohr) | guess NMAE (median) | NMAE ratio '
             '| worse by > 2 % '
             '| network time | whole guess time |', '|---' * 8 + '|']
    for folder, per in result['summary'].items():
        n = len(result['rows'][folder])
        for m, s in per.items():
            ratio = s['ratio']
            lines.append(f"| {folder} | {n} | {m} | {s['guess_nmae']:.2%} "
                         f"| {ratio['guess_nmae']:.3f} | {s['worse_2pct']} "
                         f"| {ratio['model_s']:.2f} | {ratio['total_s']:.2f} |")
    return '\n'.join(lines) + '\n'


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--weights', help='shipped version or weights file (default: the newest PBE)')
    p.add_argument('--n', type=int, default=20, help='first N molecules of each folder')
    p.add_argument('--margins', default='5,4,3.5,3',
                   help='comma-separated Bohr; the first is the reference (the trained margin)')
    p.add_argument('--out', default=str(OUT))
    args = p.parse_args()
    path, _ = model.resolve_weights('pbe', args.weights)
    predictor = model.CNNPredictor.from_file(path)
    margins = [float(m) for m in args.margins.split(',')]
    if margins[0] != predictor.margin:
        p.error(f'the first margin must be the trained one, {predictor.margin} Bohr')
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f'{pathlib.Path(path).stem}.json'
    result = json.loads(target.read_text()) if target.exists() else {}
    if result and result['margins'] != margins:
        p.error(f'{target} holds margins {result["margins"]}; use another --out')
    result.update(weights=model.weights_id(path), margins=margins)
    rows = result.setdefault('rows', {})
    for folder in FOLDERS:
        done = rows.setdefault(folder, {})
        records = list(store.iter_records(str(ROOT / folder)))[:args.n]
        for i, r in enumerate(records):
            if r['key'] in done:
                continue
            done[r['key']] = measure(r, predictor, margins, i)
            print(folder, r['key'], ' '.join(
                f"{m}: {v['guess_nmae']:.2%} {v['total_s']:.2f}s"
                for m, v in done[r['key']]['margins'].items()), flush=True)
            target.write_text(json.dumps(result, indent=1))
    result['summary'] = {f: summary(rows[f], margins) for f in FOLDERS if rows.get(f)}
    target.write_text(json.dumps(result, indent=1))
    (out / f'{target.stem}.md').write_text(markdown(result))
    print(markdown(result))


if __name__ == '__main__':
    main()
