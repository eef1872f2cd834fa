"""Fine-tuning demonstration: the shipped PBE weights on what QM9 lacks, before and after.

    python benchmarks/finetune_demo.py --out benchmarks/results/finetune

The molecules are ``benchmarks/molecules/finetune`` (S, Cl, P, Si, Br, anions and cations; RDKit
geometries from ``make_molecules.py``).  ``pyscf-mlguess finetune`` computes their references,
trains on the three quarters that its name hash does not hold out, and reports the held-out
whole-box NMAE before and after.  Then ``run_scf.py`` counts SCF cycles on the held-out molecules
from minao and from 'mlsr' with the shipped and with the fine-tuned weights.  Everything
resumes: references, training checkpoints and the SCF results files.
"""

import argparse
import json
import pathlib

import run_scf

HERE = pathlib.Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--molecules', default=str(HERE / 'molecules' / 'finetune'))
    parser.add_argument('--out', default=str(HERE / 'results' / 'finetune'))
    parser.add_argument('--run', default='runs/finetune', help='fine-tuning run folder')
    parser.add_argument('--weights', default=None, help='start from these (default: shipped)')
    parser.add_argument('--epochs', type=int, default=4)
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--lr', type=float, default=5e-4)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--cache', default=None)
    args = parser.parse_args(argv)
    from pyscf_mlguess.model import find_weights
    from pyscf_mlguess.train.finetune import finetune, is_held_out
    start = args.weights or find_weights('pbe')
    report = finetune(args.molecules, args.run, xc='pbe', weights=start, workers=args.workers,
                      epochs=args.epochs, steps_per_epoch=args.steps, lr=args.lr,
                      cache_dir=args.cache)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    held_out = [m for m in run_scf.load_molecules(args.molecules) if is_held_out(m[0])]
    tables = {}
    for label, weights in (('shipped', start), ('finetuned', report['weights'])):
        records = run_scf.run(held_out, ['pbe'], ['def2-svp'], ['minao', 'mlsr'],
                              out / label, workers=args.workers, weights=weights)
        tables[label] = run_scf.summarize(records, ['minao', 'mlsr'], args.workers > 1)
    lines = ['# Fine-tuning on S, Cl, P, Si, Br and charged molecules (PBE/def2-SVP)', '',
             f"Trained on {len(report['molecules']['train'])} molecules, measured on "
             f"{len(report['molecules']['holdout'])} held-out ones.", '',
             '| held-out whole-box NMAE | value |', '|---|---|',
             f"| SAD density | {report['holdout_nmae_sad']:.4f} |",
             f"| shipped weights | {report['holdout_nmae_before']:.4f} |",
             f"| fine-tuned weights | {report['holdout_nmae_after']:.4f} |", '']
    for label, text in tables.items():
        lines += [f'## SCF cycles with the {label} weights', '', text]
    (out / 'finetune.md').write_text('\n'.join(lines) + '\n')
    (out / 'finetune.json').write_text(json.dumps(report, indent=1))
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
