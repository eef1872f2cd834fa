"""``pyscf-mlguess`` command line: a thin layer over the Python API.

    pyscf-mlguess data generate --xc pbe --split train --n 1000 --out data
    pyscf-mlguess data stats --json [--root data]
"""

import argparse
import json
import sys


def _data_generate(args):
    from pyscf_mlguess.data.generate import generate
    result = generate(args.out, args.xc, args.split, args.n, basis=args.basis,
                      workers=args.workers, scheduler=args.scheduler,
                      shard_size=args.shard_size, perturb_fraction=args.perturb_fraction,
                      conv_tol=args.conv_tol)
    print(json.dumps(result, indent=1))


def _data_stats(args):
    from pyscf_mlguess.data.store import stats
    result = stats(args.root)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for level, splits in result.items():
        for split, s in splits.items():
            print(f"{level:16s} {split:6s} {s['samples']:6d} samples ({s['molecules']} molecules,"
                  f" {s['perturbed_copies']} perturbed, {s['failed']} failed, "
                  f"{s['pending']} pending) {s['bytes'] / 2**20:.1f} MiB "
                  f"elements {' '.join(s['elements'])}")


def build_parser():
    from pyscf_mlguess.data import generate as gen, qm9
    p = argparse.ArgumentParser(prog='pyscf-mlguess', description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest='command', required=True)
    data = sub.add_parser('data', help='training data').add_subparsers(dest='action',
                                                                       required=True)
    g = data.add_parser('generate', help='reference KS calculations on QM9 (resumable)')
    g.add_argument('--xc', required=True, help='functional, e.g. pbe or b3lyp')
    g.add_argument('--split', required=True, choices=sorted(qm9.SPLIT_FRACTIONS))
    g.add_argument('--n', type=int, required=True, help='QM9 molecules (perturbed copies extra)')
    g.add_argument('--out', default='data', help='dataset root (default: data)')
    g.add_argument('--basis', default=gen.BASIS)
    g.add_argument('--conv-tol', type=float, default=gen.CONV_TOL)
    g.add_argument('--workers', type=int, default=None, help='local worker processes')
    g.add_argument('--scheduler', default=None, help='address of a running Dask scheduler')
    g.add_argument('--shard-size', type=int, default=100)
    g.add_argument('--perturb-fraction', type=float, default=qm9.PERTURB_FRACTION)
    g.set_defaults(func=_data_generate)
    s = data.add_parser('stats', help='what the dataset holds')
    s.add_argument('--root', default='data')
    s.add_argument('--json', action='store_true')
    s.set_defaults(func=_data_stats)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
