"""``pyscf-mlguess`` command line: a thin layer over the Python API.

    pyscf-mlguess data generate --xc pbe --split train --n 1000 --out data
    pyscf-mlguess data stats --json [--root data]
    pyscf-mlguess train --train data/pbe_def2svp/train --valid data/pbe_def2svp/valid \
        --out runs/pbe
    pyscf-mlguess finetune --molecules my_xyz/ --xc pbe --out runs/mine
    pyscf-mlguess release runs/pbe/weights.pt --test data/pbe_def2svp/test --out weights/pbe-0.2.pt
"""

import argparse
import itertools
import json
import os
import sys


def _data_generate(args):
    from pyscf_mlguess.data.generate import generate
    result = generate(args.out, args.xc, args.split, args.n, basis=args.basis,
                      workers=args.workers, scheduler=args.scheduler,
                      shard_size=args.shard_size, perturb_fraction=args.perturb_fraction,
                      conv_tol=args.conv_tol, density_fit=args.density_fit,
                      grid_level=args.grid_level, source=args.source)
    print(json.dumps(result, indent=1))


def _data_stats(args):
    from pyscf_mlguess.data.store import stats
    if not os.path.isdir(args.root):
        raise SystemExit(f'pyscf-mlguess data stats: no dataset folder {args.root!r} (make one '
                         f'with `pyscf-mlguess data generate --out {args.root} ...`, or name '
                         f'another with --root).')
    result = stats(args.root)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    if not result:
        print(f'{args.root}: no datasets (expected folders like '
              f'{os.path.join(args.root, "pbe_def2svp", "train")})')
    for level, splits in result.items():
        for split, s in splits.items():
            print(f"{level:16s} {split:6s} {s['samples']:6d} samples ({s['molecules']} molecules,"
                  f" {s['perturbed_copies']} perturbed, {s['failed']} failed, "
                  f"{s['pending']} pending) {s['bytes'] / 2**20:.1f} MiB "
                  f"elements {' '.join(s['elements'])}")


#: the network's options of ``pyscf-mlguess train`` and their defaults (a new network); the
#: others in :data:`ARCH_OPTIONS` default to the network's own (:class:`model.DensitySR`)
ARCH_DEFAULTS = dict(channels=16, blocks=4, kernel=3, upsample=2, up_channels=4, levels=0)
ARCH_OPTIONS = (*ARCH_DEFAULTS, 'level_blocks')


def _floats(text, option):
    """'1,2.5' as [1.0, 2.5]; None stays None; anything else is refused naming ``option``."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(',')]
    except ValueError:
        raise SystemExit(f'{option} {text}: expected comma-separated numbers') from None


def _train(args):
    from pyscf_mlguess.train.loop import train
    given = {k: getattr(args, k) for k in ARCH_OPTIONS if getattr(args, k) is not None}
    if 'level_blocks' in given and not given.get('levels'):
        raise SystemExit('--level-blocks sets the blocks of a multi-scale branch: it needs '
                         '--levels N (N > 0)')
    if args.elements:
        given['elements'] = args.elements.split(',')
    if args.charge_input:
        given['charge_input'] = True
    if args.init_weights:               # the weights fix the network; a differing ask is refused
        arch = given or None
    else:
        arch = dict(ARCH_DEFAULTS, **given)
        if not arch['levels']:
            del arch['levels']
    history = train(args.train, args.valid, args.out, arch=arch, epochs=args.epochs,
                    steps_per_epoch=args.steps, batch=args.batch, patch=args.patch, lr=args.lr,
                    warmup=args.warmup, spacing=args.spacing, margin=args.margin,
                    cache_dir=args.cache, device=args.device, seed=args.seed,
                    init_weights=args.init_weights, sitting_epochs=args.sitting_epochs,
                    max_minutes=args.max_minutes, context=args.context,
                    coulomb_weight=args.coulomb_weight, max_train=args.max_train,
                    loader_workers=args.loader_workers, guess_valid=args.guess_valid,
                    folder_weights=_floats(args.folder_weights, '--folder-weights'),
                    cpu_bf16=args.cpu_bf16, valid_every=args.valid_every,
                    ema_decay=args.ema_decay, near_nucleus=_near_nucleus_table(args),
                    smooth_loss=_floats(args.smooth_loss, '--smooth-loss'))
    print(json.dumps(history[-1] if history else {}, indent=1))


def _near_nucleus_table(args):
    """The near-nucleus table of ``--near-nucleus RC``: the run folder's own when it has one
    (a resumed run keeps its table), else each element's mean over the first
    ``--near-nucleus-samples`` samples of every training folder, written there."""
    if args.near_nucleus is None:
        return None
    from pyscf_mlguess.data import store
    from pyscf_mlguess.train.near_nucleus import mean_profiles
    path = os.path.join(args.out, 'near_nucleus.json')
    if os.path.exists(path):
        with open(path) as f:
            table = json.load(f)
        if table['rc'] != args.near_nucleus:
            raise SystemExit(f'{path} holds terms for rc {table["rc"]} Bohr, not '
                             f'--near-nucleus {args.near_nucleus}; start a new run folder')
        return table
    records = []
    for folder in args.train:
        records += list(itertools.islice(store.iter_records(folder), args.near_nucleus_samples))
    table = mean_profiles(records, args.near_nucleus / 2, args.near_nucleus)
    os.makedirs(args.out, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(table, f)
    return table


def _finetune(args):
    from pyscf_mlguess.train.finetune import finetune
    report = finetune(args.molecules, args.out, xc=args.xc, weights=args.weights,
                      workers=args.workers, scheduler=args.scheduler, epochs=args.epochs,
                      steps_per_epoch=args.steps, lr=args.lr, cache_dir=args.cache,
                      device=args.device)
    print(json.dumps(report, indent=1))


def _release(args):
    from pyscf_mlguess.train.release import release
    summary = release(args.weights, args.test, args.out, max_samples=args.max_samples,
                      xc=args.xc)
    print(json.dumps(summary, indent=1))


def build_parser():
    from pyscf_mlguess.data import generate as gen, qm9
    from pyscf_mlguess import __version__
    p = argparse.ArgumentParser(prog='pyscf-mlguess', description=__doc__.splitlines()[0])
    p.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    sub = p.add_subparsers(dest='command', required=True)
    data = sub.add_parser('data', help='training data').add_subparsers(dest='action',
                                                                       required=True)
    g = data.add_parser('generate', help='reference KS calculations on QM9 or molecules '
                        'derived from it (resumable)')
    g.add_argument('--source', default='qm9', choices=gen.SOURCES,
                   help='qm9 (default), or derived: QM9 molecules with S, Cl, Br, P or Si, and '
                   'ions (pyscf_mlguess.data.derived), into <xc>_<basis>_derived')
    g.add_argument('--xc', required=True, help='functional, e.g. pbe or b3lyp')
    g.add_argument('--split', required=True, choices=sorted(qm9.SPLIT_FRACTIONS))
    g.add_argument('--n', type=int, required=True, help='molecules (QM9: perturbed copies extra)')
    g.add_argument('--out', default='data', help='dataset root (default: data)')
    g.add_argument('--basis', default=gen.BASIS)
    g.add_argument('--conv-tol', type=float, default=gen.CONV_TOL)
    g.add_argument('--density-fit', action='store_true',
                   help="density-fitted references (PySCF's default auxiliary basis; recorded "
                   "with each sample)")
    g.add_argument('--grid-level', type=int, default=None, choices=range(10),
                   help="integration grid level of the references (default: PySCF's, 3; "
                        'recorded with every sample; see docs/training.md)')
    g.add_argument('--workers', type=int, default=None, help='local worker processes')
    g.add_argument('--scheduler', default=None, help='address of a running Dask scheduler')
    g.add_argument('--shard-size', type=int, default=100)
    g.add_argument('--perturb-fraction', type=float, default=None,
                   help=f'QM9 only: fraction with a perturbed copy (default '
                   f'{qm9.PERTURB_FRACTION})')
    g.set_defaults(func=_data_generate)
    s = data.add_parser('stats', help='what the dataset holds')
    s.add_argument('--root', default='data')
    s.add_argument('--json', action='store_true')
    s.set_defaults(func=_data_stats)

    t = sub.add_parser('train', help='train the density network (resumes from OUT/checkpoint.pt)')
    t.add_argument('--train', nargs='+', required=True, help='dataset folders, e.g. '
                   'data/pbe_def2svp/train')
    t.add_argument('--valid', nargs='+', default=[], help='validation folders, each measured on '
                   'its own (the first gives the headline figures)')
    t.add_argument('--out', required=True, help='run folder: checkpoint.pt and weights.pt')
    t.add_argument('--init-weights', default=None,
                   help='start from these weights; they fix the network and its box (leave the '
                   'network options, --spacing and --margin unset), except that --upsample 2 '
                   'on weights without upsampling starts a twice finer output from them, and '
                   '--charge-input adds the charge input to weights without it')
    t.add_argument('--epochs', type=int, default=10)
    t.add_argument('--steps', type=int, default=200, help='optimiser steps per epoch')
    t.add_argument('--batch', type=int, default=4, help='patches per step')
    t.add_argument('--patch', type=int, default=24, help='input voxels per patch edge')
    t.add_argument('--lr', type=float, default=1e-3,
                   help='peak learning rate (default 1e-3, the shipped weights\' recipe; 2e-3 '
                   'made them worse than SAD, docs/training.md)')
    t.add_argument('--warmup', type=int, default=100)
    t.add_argument('--channels', type=int, default=None,
                   help='default 16 (network options: defaults in ARCH_DEFAULTS)')
    t.add_argument('--blocks', type=int, default=None,
                   help='residual blocks (with --init-weights: more than they have adds '
                        'blocks that start at zero)')
    t.add_argument('--kernel', type=int, default=None)
    t.add_argument('--upsample', type=int, default=None)
    t.add_argument('--up-channels', type=int, default=None)
    t.add_argument('--levels', type=int, default=None,
                   help='multi-scale branch depth (0: the flat residual stack)')
    t.add_argument('--level-blocks', type=int, default=None,
                   help='residual blocks per coarse level of the multi-scale branch')
    t.add_argument('--elements', default=None,
                   help='element channels: comma-separated symbols whose SAD densities are '
                   'extra inputs (e.g. H,C,N,O,F)')
    t.add_argument('--charge-input', action='store_true',
                   help="the molecule's charge as an extra input channel (for ions: the SAD "
                   'density is of neutral atoms)')
    t.add_argument('--context', type=int, default=0,
                   help='input voxels of context around each patch, outside the loss')
    t.add_argument('--coulomb-weight', type=float, default=0.0,
                   help='weight of the Coulomb error term in the loss (0: NMAE alone)')
    t.add_argument('--smooth-loss', default=None, metavar='SIGMA,WEIGHT',
                   help='add WEIGHT times the NMAE of the error blurred by a Gaussian of SIGMA '
                   'Bohr to the loss (the scales the projection passes; e.g. 0.5,3)')
    t.add_argument('--max-train', type=int, default=None,
                   help='first N training samples only (learning curves)')
    t.add_argument('--folder-weights', default=None,
                   help='comma-separated, one per --train folder: each folder\'s share of the '
                   'draws (default: every sample alike)')
    t.add_argument('--guess-valid', type=int, default=0, metavar='N',
                   help='after each epoch, the projected-guess NMAE of the first N validation '
                   'samples (the proxy that ranks SCF cycles best)')
    t.add_argument('--valid-every', type=int, default=1, metavar='N',
                   help='validate every N epochs (and always at the end of a sitting)')
    t.add_argument('--ema-decay', type=float, default=None, metavar='D',
                   help='validate and write an exponential moving average of the weights, '
                   'decay D per step (e.g. 0.998; default: the raw weights)')
    t.add_argument('--near-nucleus', type=float, default=None, metavar='RC',
                   help='learn delta_rho less per-element near-nucleus terms within RC Bohr of '
                   'each nucleus (train/near_nucleus.py; e.g. 0.8)')
    t.add_argument('--near-nucleus-samples', type=int, default=100, metavar='N',
                   help='training samples per folder whose atoms give the terms')
    t.add_argument('--loader-workers', type=int, default=1,
                   help='DataLoader processes that build the boxes (0: in this process)')
    t.add_argument('--cpu-bf16', action='store_true',
                   help='bfloat16 autocast for the training steps on CPU (CUDA always uses it): '
                   'several times faster where the CPU has native bfloat16; a setting of the '
                   'sitting, not of the run (docs/training.md)')
    t.add_argument('--spacing', type=float, default=None, help='target spacing, Bohr')
    t.add_argument('--margin', type=float, default=None)
    t.add_argument('--cache', default=None, help='folder to cache the boxes (npz)')
    t.add_argument('--device', default=None)
    t.add_argument('--seed', type=int, default=0)
    t.add_argument('--sitting-epochs', type=int, default=None,
                   help='stop after this many epochs (run again to resume)')
    t.add_argument('--max-minutes', type=float, default=None,
                   help='stop after the epoch that ends past this time (run again to resume)')
    t.set_defaults(func=_train)

    f = sub.add_parser('finetune', help='fine-tune on your own molecules (folder of .xyz)')
    f.add_argument('--molecules', required=True, help='folder of .xyz files (comment line: '
                   'charge=N spin=0)')
    f.add_argument('--out', required=True)
    f.add_argument('--xc', default='pbe')
    f.add_argument('--weights', default=None, help='start from these (default: shipped)')
    f.add_argument('--epochs', type=int, default=5)
    f.add_argument('--steps', type=int, default=100)
    f.add_argument('--lr', type=float, default=5e-4)
    f.add_argument('--workers', type=int, default=None)
    f.add_argument('--scheduler', default=None)
    f.add_argument('--cache', default=None)
    f.add_argument('--device', default=None)
    f.set_defaults(func=_finetune)

    r = sub.add_parser('release', help='measure trained weights on the test split and write '
                       'the shipped file with its SHA-256 line')
    r.add_argument('weights', help='trained weights, e.g. runs/pbe/weights.pt')
    r.add_argument('--test', nargs='+', required=True, help='test folders, e.g. '
                   'data/pbe_def2svp/test')
    r.add_argument('--out', required=True, help='e.g. weights/pbe-0.2.pt')
    r.add_argument('--max-samples', type=int, default=None)
    r.add_argument('--xc', default=None, help='release the same tensors for this functional '
                   "(e.g. b3lyp for a PBE-trained network measured better on hybrids); the "
                   "training functional is kept as 'trained_xc' and --test must hold this "
                   "functional's references")
    r.set_defaults(func=_release)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
