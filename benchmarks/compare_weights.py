"""Two sets of weights on the same validation molecules, paired: which one to release.

    python benchmarks/compare_weights.py weights/pbe-0.2.pt runs/pbe-0.3/weights.pt \\
        --valid data/pbe_def2svp/valid data/pbe_def2svp_derived/valid

Training validates on a few samples per epoch (``--guess-valid``), where the projected-guess NMAE
of 20 molecules moves by a fifth of itself from one epoch to the next. Choosing between a new run
and the shipped weights deserves every validation molecule, both weights on each (the same
reference, grid and projection), and a paired test. For every sample of every folder this
measures, on PySCF's integration grid as the release does, the NMAE of the model density and of
the projected 'mlsr' guess under both weights, and reports per folder: mean and median of each,
the median per-molecule ratio B/A, how many molecules B improves and worsens, and the two-sided
Wilcoxon signed-rank p-value of the paired differences. Test splits are for the release, not
for this.

``--cycles N`` also runs the SCF (PySCF's defaults for the sample's functional, the package's
'mlsr' guess settings) from each weights' guess on the first N molecules per folder and reports
the cycles the same way: what a guess error that is a few per cent lower buys, against what a
costlier network costs.

Writes ``benchmarks/results/training/compare/<A>-vs-<B>.{json,md}``; per-sample rows are kept,
so an interrupted comparison resumes where it stopped.
"""

import argparse
import json
import pathlib

import numpy

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / 'results' / 'training' / 'compare'
MEASURES = {'mlsr_guess': 'projected guess', 'model': 'model density'}
CYCLES = 'cycles'
#: relative difference below which two figures count as equal: the same weights measured twice
#: differ in the last digits (threaded sums in the projection)
SAME = 1e-6


def label(path):
    """``runs/pbe-0.3/weights.pt`` -> ``pbe-0.3``; ``weights/pbe-0.2.pt`` -> ``pbe-0.2``."""
    path = pathlib.Path(path)
    return path.parent.name if path.stem == 'weights' else path.stem


def predictor_of(path):
    from pyscf_mlguess.model import CNNPredictor, load_weights
    model, meta = load_weights(path)
    return CNNPredictor(model, meta, device='cpu'), meta, model


def samples(folder, meta, model, limit):
    from pyscf_mlguess.data.dataset import DensityDataset
    data = DensityDataset([folder], meta['output_spacing'], meta['margin'], model.upsample,
                          elements=model.input_elements)
    if limit:
        data.keep_first(limit)
    return data.records


def scf_cycles(record, predictor):
    """SCF cycles from the 'mlsr' guess of ``predictor`` (None if not converged)."""
    from pyscf import dft
    from pyscf_mlguess.data.dataset import molecule_of
    mf = dft.RKS(molecule_of(record), xc=record['xc'])
    mf.init_guess, mf.mlsr_predictor = 'mlsr', predictor
    mf.kernel()
    return int(mf.cycles) if mf.converged else None


def paired(rows, key):
    """Summary of measure ``key`` over rows holding ``a`` and ``b`` figures (rows without it,
    or where either is None, are left out)."""
    from scipy.stats import wilcoxon
    rows = [r for r in rows if r['a'].get(key) is not None and r['b'].get(key) is not None]
    if not rows:
        return None
    a = numpy.array([r['a'][key] for r in rows])
    b = numpy.array([r['b'][key] for r in rows])
    return {'mean_a': float(a.mean()), 'mean_b': float(b.mean()),
            'median_a': float(numpy.median(a)), 'median_b': float(numpy.median(b)),
            'median_ratio': float(numpy.median(b / a)),
            'b_better': int((b < a * (1 - SAME)).sum()),
            'b_worse': int((b > a * (1 + SAME)).sum()),
            'samples': len(rows),
            'sum_a': float(a.sum()), 'sum_b': float(b.sum()),
            'wilcoxon_p': (float(wilcoxon(a, b).pvalue) if len(rows) >= 6 and (a != b).any()
                           else None)}


def markdown(result):
    a, b = result['a'], result['b']
    lines = [f'# {a} (A) against {b} (B) on validation molecules', '',
             'Integration-grid NMAE, all-electron, per molecule under both weights '
             '(`benchmarks/compare_weights.py`). Ratio: median over molecules of B/A; '
             'p: two-sided Wilcoxon signed-rank test of the paired values.', '',
             '| folder | measure | molecules | A mean | B mean | A median | B median | '
             'median B/A | B better | B worse | p |', '|---' * 11 + '|']
    for folder, per in result['folders'].items():
        for key, name in MEASURES.items():
            s = per[key]
            p = f"{s['wilcoxon_p']:.2g}" if s['wilcoxon_p'] is not None else '–'
            lines.append(f"| {folder} | {name} | {s['samples']} | {100 * s['mean_a']:.2f} % | "
                         f"{100 * s['mean_b']:.2f} % | {100 * s['median_a']:.2f} % | "
                         f"{100 * s['median_b']:.2f} % | {s['median_ratio']:.3f} | "
                         f"{s['b_better']} | {s['b_worse']} | {p} |")
    cycles = {f: per[CYCLES] for f, per in result['folders'].items() if per.get(CYCLES)}
    if cycles:
        lines += ['', "SCF cycles from each guess (PySCF's defaults, the package's mlsr "
                  'settings; molecules where both converged):', '',
                  '| folder | molecules | cycles A (sum) | cycles B (sum) | median B/A | B fewer '
                  '| B more | p |', '|---' * 8 + '|']
        for folder, s in cycles.items():
            p = f"{s['wilcoxon_p']:.2g}" if s['wilcoxon_p'] is not None else '–'
            lines.append(f"| {folder} | {s['samples']} | {s['sum_a']:.0f} | {s['sum_b']:.0f} | "
                         f"{s['median_ratio']:.3f} | {s['b_better']} | {s['b_worse']} | {p} |")
    return '\n'.join(lines) + '\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('a', help='weights A (e.g. the shipped ones)')
    p.add_argument('b', help='weights B (e.g. a new run)')
    p.add_argument('--valid', nargs='+', required=True, help='validation folders')
    p.add_argument('--max-samples', type=int, default=None, help='first N per folder')
    p.add_argument('--cycles', type=int, default=0, metavar='N',
                   help='SCF cycles from both guesses on the first N molecules per folder')
    p.add_argument('--out', default=str(RESULTS))
    args = p.parse_args(argv)
    from tqdm import tqdm
    from pyscf_mlguess.train.release import measure_sample
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f'{label(args.a)}-vs-{label(args.b)}'     # versions have dots: no with_suffix
    path = out / f'{stem}.json'
    old = json.loads(path.read_text()) if path.exists() else {}
    done = {(r['folder'], r['key']): r for r in old.get('rows', [])}
    pred_a, meta_a, model_a = predictor_of(args.a)
    pred_b, meta_b, model_b = predictor_of(args.b)
    rows = []
    for folder in args.valid:
        recs = samples(folder, meta_a, model_a, args.max_samples)
        keys_b = {r['key'] for r in samples(folder, meta_b, model_b, args.max_samples)}
        if keys_b != {r['key'] for r in recs}:
            raise SystemExit(f'{folder}: the two weights read different samples (box settings '
                             f'differ); compare weights trained on the same box')
        for i, rec in enumerate(tqdm(recs, desc=folder)):
            row = done.get((folder, rec['key']))
            if row is None:
                keep = ('key', 'nao', 'model', 'mlsr_guess')
                row = {'folder': folder, 'key': rec['key'],
                       'a': {k: v for k, v in measure_sample(rec, pred_a).items() if k in keep},
                       'b': {k: v for k, v in measure_sample(rec, pred_b).items() if k in keep}}
                done[(folder, rec['key'])] = row
                path.write_text(json.dumps({'rows': list(done.values())}))
            if i < args.cycles and CYCLES not in row['a']:
                row['a'][CYCLES] = scf_cycles(rec, pred_a)
                row['b'][CYCLES] = scf_cycles(rec, pred_b)
                path.write_text(json.dumps({'rows': list(done.values())}))
            rows.append(row)
    result = {'a': label(args.a), 'b': label(args.b), 'weights': [args.a, args.b],
              'folders': {f: {k: paired([r for r in rows if r['folder'] == f], k)
                              for k in (*MEASURES, CYCLES)} for f in args.valid},
              'rows': rows}
    path.write_text(json.dumps(result, indent=1))
    (out / f'{stem}.md').write_text(markdown(result))
    print(markdown(result))


if __name__ == '__main__':
    main()
