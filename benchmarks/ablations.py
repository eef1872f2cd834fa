"""Network ablations at equal CPU budget: which architecture, inputs and loss to scale up.

    python benchmarks/ablations.py --cpu-minutes 30 --variants flat,multiscale,coulomb
    python benchmarks/ablations.py --cpu-minutes 30 --learning-curve 75,150,300 \
        --curve-variant flat
    python benchmarks/ablations.py --cpu-minutes 60 --learning-curve 150,500,1500,3000 \
        --curve-variant elements-context-coulomb-0.3
    python benchmarks/ablations.py --report-only
    python benchmarks/ablations.py --cpu-minutes 30 --variants flat,wide,deep --cpu-bf16

Every variant trains from scratch on the same PBE training samples (``--max-train``, in the
data's fixed order) for the same CPU time of its optimiser steps: a short calibration measures
the CPU seconds (all threads, ``time.process_time``) of one step of that variant on random
patches, and the step count fills ``--cpu-minutes`` under the usual warm-up + cosine schedule, so
a cheaper network gets more steps.  Box building and validation are outside the budget.  Runs go
to ``runs/ablations/<variant>`` and resume like any training run; processes running disjoint
``--variants`` at once (one per core) share the results file.

The report adds each variant's inference cost: CPU seconds of one forward pass on a typical
QM9 input box (:data:`COST_BOX`), one thread.

Each trained variant is then measured on the first validation samples:

* box NMAE and Coulomb error per electron of the predicted delta_rho (the target grid);
* projected-guess NMAE ('mlsr' density matrix, PySCF's default integration grid) on
  ``--n-guess`` molecules;
* SCF cycles from the 'mlsr' guess (PBE/def2-SVP, PySCF's defaults) on ``--n-cycles``
  molecules, against the minao cycles the reference run recorded at the default tolerance.

``--cpu-bf16`` trains (and calibrates) with bfloat16 autocast, as ``train --cpu-bf16`` does; its
runs are named ``<variant>-bf16``, beside the float32 ones (docs/training.md: in float32 the
patch shape decides whether a convolution takes oneDNN or PyTorch's slow native loop, so the
float32 per-step costs measure the kernel as much as the network). On a CPU without native
bfloat16 ``train`` declines it (a warning) and the budget is calibrated in float32; the plan
records ``bf16_native``.

``ablations.md`` puts the variants side by side and says which cheap proxy (box NMAE,
projected-guess NMAE, Coulomb error) ranks the per-molecule cycle ratios best (Spearman, over
every variant's molecules pooled).  ``--learning-curve`` trains one variant on the first N
training samples for each N at the same budget (runs ``<variant>-<M>min-n<N>``; those of the
first curve, at 15 minutes, are ``<variant>-n<N>``): the curve's first point is calibrated and
every later N runs its step count (``shared_from`` in the plan).  The report gives one curve
per budget, fits log(NMAE) against log(N) and says what each trend predicts for 10k and 30k
samples, and ``learning_curve.png`` plots them: a curve that falls with the budget but not
with N says compute, not data, sets the error.  Model selection uses validation molecules only.
"""

import argparse
import fcntl
import json
import math
import os
import pathlib
import statistics
import time

import torch

# The guess checks its memory against PySCF's max_memory counting the whole process, and this
# process also holds the training's boxes and loader: give it the machine's room, not 4 GB.
os.environ.setdefault('PYSCF_MAX_MEMORY', '16000')

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / 'results' / 'ablations'
RUNS = ROOT / 'runs' / 'ablations'
DATA = ROOT / 'data' / 'pbe_def2svp'

BASE = dict(channels=16, blocks=4)
FIRST_CURVE_MINUTES = 15        # the budget of the first learning curve, run `<variant>-n<N>`
ELEMENTS = ['H', 'C', 'N', 'O', 'F']
#: name -> (what it tests, train() keyword arguments); ``arch`` extends the default network.
VARIANTS = {
    'flat': ('today\'s flat residual stack (16 channels, 4 blocks)', dict(arch=BASE)),
    'multiscale': ('a two-level multi-scale branch, patches with 8 voxels of context',
                   dict(arch=dict(BASE, levels=2, level_blocks=2), context=8)),
    'flat-context': ('the flat stack with the same patch context (control for multiscale)',
                     dict(arch=BASE, context=8)),
    'coulomb': ('NMAE + the Coulomb error of the patch (weight 1)',
                dict(arch=BASE, coulomb_weight=1.0)),
    'wide': ('32 channels, 4 blocks', dict(arch=dict(BASE, channels=32))),
    'deep': ('16 channels, 8 blocks', dict(arch=dict(BASE, blocks=8))),
    'elements': ('element channels: the SAD density of H, C, N, O, F atoms as fractions',
                 dict(arch=dict(BASE, elements=ELEMENTS))),
    'out-0.3': ('output at 0.3 Bohr (no sub-voxel upsampling)',
                dict(arch=dict(BASE, upsample=1), spacing=0.3)),
    # What the first round (docs/training.md) points to: its three winners together.
    'wide-context-coulomb': ('32 channels, 8 voxels of context, the Coulomb term',
                             dict(arch=dict(BASE, channels=32), context=8, coulomb_weight=1.0)),
    # The second round's best single change (output at 0.3 Bohr) with the first round's two.
    'context-coulomb-0.3': ('16 channels, output at 0.3 Bohr, 8 voxels of context, the Coulomb '
                            'term', dict(arch=dict(BASE, upsample=1), spacing=0.3, context=8,
                                         coulomb_weight=1.0)),
    'elements-context-coulomb-0.3': ('the above with element channels',
                                     dict(arch=dict(BASE, upsample=1, elements=ELEMENTS),
                                          spacing=0.3, context=8, coulomb_weight=1.0)),
    # Capacity at the shipped recipe (the recipe above): the network's own error, not the 0.3
    # Bohr output, sets the guess's error (benchmarks/resolution_floor.py); measure with
    # --cpu-bf16, whose kernel choice changed the cost ranking of width and depth.
    'recipe-wide': ('the recipe above with 32 channels',
                    dict(arch=dict(BASE, channels=32, upsample=1, elements=ELEMENTS),
                         spacing=0.3, context=8, coulomb_weight=1.0)),
    'recipe-deep': ('the recipe above with 8 residual blocks',
                    dict(arch=dict(BASE, blocks=8, upsample=1, elements=ELEMENTS),
                         spacing=0.3, context=8, coulomb_weight=1.0)),
    # The loss on what the projection passes: the network's error above about half a Bohr
    # carries the guess's error, below it hardly any (benchmarks/error_scales.py).
    'recipe-smooth': ('the recipe above with 3 x the NMAE of the error blurred at 0.5 Bohr',
                      dict(arch=dict(BASE, upsample=1, elements=ELEMENTS), spacing=0.3,
                           context=8, coulomb_weight=1.0, smooth_loss=(0.5, 3.0))),
    # Patches of 24 voxels with 8 of context compute 40^3 inputs for 24^3 targets; a whole
    # box (one molecule per step, about the cost of the 4 patches) wastes none of it.
    'whole-box': ('the recipe above trained on whole boxes, one molecule per step',
                  dict(arch=dict(BASE, upsample=1, elements=ELEMENTS), spacing=0.3,
                       coulomb_weight=1.0, patch=1000, batch=1)),
}
PATCH, BATCH, STEPS_PER_EPOCH = 24, 4, 100
#: median input box of the QM9 training molecules at 0.3 Bohr (what a whole-box step sees)
TRAIN_BOX = (76, 64, 56)


def cpu_seconds_per_step(kwargs, calibration_steps=6, bf16=False):
    """CPU seconds (all threads) of one optimiser step of a variant on random patches
    (``bf16``: under bfloat16 autocast)."""
    from pyscf_mlguess.model import DensitySR
    net = DensitySR(**kwargs['arch'])
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    patch = kwargs.get('patch', PATCH)
    n = patch + 2 * kwargs.get('context', 0)
    shape = TRAIN_BOX if patch >= max(TRAIN_BOX) else (n, n, n)
    x = torch.rand(1, 1 + len(kwargs['arch'].get('elements') or ()), *shape) * 0.1

    def step():
        opt.zero_grad()
        for _ in range(kwargs.get('batch', BATCH)):
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
                out = net(x)
            out.float().abs().mean().backward()
        opt.step()
    step()                                                  # warm-up (allocations, oneDNN)
    t = time.process_time()
    for _ in range(calibration_steps):
        step()
    return (time.process_time() - t) / calibration_steps


def steps_of_epoch(plan):
    """Optimiser steps per epoch of a plan (plans written before 2026-11-30 used 100)."""
    return plan.get('steps_per_epoch', STEPS_PER_EPOCH)


def total_steps(plan):
    return plan['epochs'] * steps_of_epoch(plan)


def curve_plan(name):
    """The plan a new learning-curve point ``<prefix>-n<N>`` shares: that of the curve's first
    planned point (smallest N), or None.  A curve holds the compute fixed, so every N runs the
    same steps; calibrating each point anew would let the machine (or, on one machine, the
    timer's noise) set the step count, not the budget."""
    prefix = name[:name.rindex('-n') + 2]
    planned = [(int(p.parent.name[len(prefix):]), p) for p in RUNS.glob(f'{prefix}*/plan.json')
               if p.parent.name[len(prefix):].isdigit()]
    if not planned:
        return None
    n, path = min(planned)
    return dict(json.loads(path.read_text()), shared_from=path.parent.name)


def train_variant(name, kwargs, cpu_minutes, max_train, cache, bf16=False, shared=None):
    """Train run ``name`` for ``cpu_minutes`` of calibrated optimiser steps (or, with
    ``shared``, the steps of that plan) and return (plan, history)."""
    from pyscf_mlguess.train.loop import cpu_has_native_bf16, train
    out = RUNS / name
    plan_path = out / 'plan.json'
    if plan_path.exists():                    # resume with the step count chosen at the start
        plan = json.loads(plan_path.read_text())
        if plan.get('bf16', False) != bf16:
            raise SystemExit(f'{plan_path} was planned with bf16={plan.get("bf16", False)}; '
                             f'resume it with the same --cpu-bf16 setting')
    else:
        if shared is not None:
            if shared.get('bf16', False) != bf16:
                raise SystemExit(f'{name} would share the plan of {shared["shared_from"]}, '
                                 f'planned with bf16={shared.get("bf16", False)}; run the curve '
                                 f'with the same --cpu-bf16 setting')
            plan = shared
        else:
            # calibrated in the precision the steps will run in: train declines bf16 on a CPU
            # without native bfloat16, where emulated steps would price the budget some 40x short
            native = cpu_has_native_bf16()
            per_step = cpu_seconds_per_step(kwargs, bf16=bf16 and native)
            steps = max(STEPS_PER_EPOCH, int(cpu_minutes * 60 / per_step))
            epochs = math.ceil(steps / STEPS_PER_EPOCH)
            # epochs of equal length that add up to the budget's steps (not rounded up to whole
            # epochs of STEPS_PER_EPOCH, which favours the costly variants)
            plan = {'cpu_s_per_step': per_step, 'cpu_minutes': cpu_minutes, 'epochs': epochs,
                    'steps_per_epoch': math.ceil(steps / epochs),
                    'threads': torch.get_num_threads(), 'bf16': bf16, 'bf16_native': native}
        out.mkdir(parents=True, exist_ok=True)
        plan_path.write_text(json.dumps(plan, indent=1))
    kwargs = dict({'batch': BATCH, 'patch': PATCH}, **kwargs)
    history = train([str(DATA / 'train')], [str(DATA / 'valid')], str(out),
                    epochs=plan['epochs'], steps_per_epoch=steps_of_epoch(plan),
                    warmup=min(100, total_steps(plan) // 10),
                    cache_dir=cache, max_train=max_train, max_valid=20, cpu_bf16=bf16,
                    **kwargs)
    return plan, history


def measure_variant(name, n_guess, n_cycles, cache, weights=None, rows=None, save=None):
    """Per-molecule rows of a trained variant (or of the weights file ``weights``) on the first
    validation samples, appended to ``rows`` (continuing after the ones it holds) with
    ``save()`` called after each."""
    from pyscf import dft
    from pyscf_mlguess.data.dataset import DensityDataset, molecule_of
    from pyscf_mlguess.model import CNNPredictor, load_weights, predict_delta
    from pyscf_mlguess.train.loop import coulomb_error_numpy, nmae
    from pyscf_mlguess.train.release import measure_sample
    net, meta = load_weights(weights or RUNS / name / 'weights.pt')
    predictor = CNNPredictor(net, meta, device='cpu')
    valid = DensityDataset([str(DATA / 'valid')], meta['output_spacing'], meta['margin'],
                           net.upsample, cache_dir=cache, elements=net.input_elements)
    rows = [] if rows is None else rows
    for i, record in enumerate(valid.records[:max(n_guess, n_cycles)]):
        if i < len(rows):
            continue
        item = valid[i]
        sad = item['sad']
        with torch.inference_mode():
            pred = predict_delta(net, sad, -item['charge'], item['voxel_volume'])
        ref = item['delta_rho'][0]
        n = item['n_electrons']
        err = (pred - ref).double().numpy()
        row = {'key': record['key'], 'nao': int(record['nao']),
               'box_nmae': float(nmae(pred, ref, item['voxel_volume'], n)),
               'coulomb': coulomb_error_numpy(err, valid.spacing) / math.sqrt(n)}
        if i < n_guess:
            m = measure_sample(record, predictor)
            row.update(model_nmae=m['model'], guess_nmae=m['mlsr_guess'])
        if i < n_cycles:
            mf = dft.RKS(molecule_of(record), xc='pbe')
            mf.init_guess = 'mlsr'
            mf.mlsr_predictor = predictor
            mf.kernel()
            row.update(cycles=int(mf.cycles), converged=bool(mf.converged),
                       minao_cycles=int(record['minao_cycles_default_tol']))
        rows.append(row)
        if save is not None:
            save()
    return rows


#: Input box for the inference cost: a typical QM9 box at 0.3 Bohr (5 Bohr margin).
COST_BOX = (64, 56, 48)


def forward_cpu_seconds(kwargs, repeats=3):
    """CPU seconds (median of ``repeats``) of the network's forward pass on :data:`COST_BOX`,
    as the guess runs it; the cost depends on the architecture, not on the weights."""
    from pyscf_mlguess.model import DensitySR, predict_tiled
    net = DensitySR(**kwargs['arch']).eval()
    net = net.to(memory_format=torch.channels_last_3d)
    n_in = 1 + len(kwargs['arch'].get('elements') or ())
    x = torch.rand((n_in,) + COST_BOX) * 0.1
    times = []
    with torch.inference_mode():
        predict_tiled(net, x)
        for _ in range(repeats):
            t = time.process_time()
            predict_tiled(net, x)
            times.append(time.process_time() - t)
    return statistics.median(times)


def spearman(a, b):
    from scipy.stats import spearmanr
    return float(spearmanr(a, b).statistic)


def is_curve_run(name, res):
    """A learning-curve point (run ``<variant>[-<M>min]-n<N>``), not a variant of the ablation
    table (``<variant>`` or ``<variant>-bf16``)."""
    return res.get('variant', name) not in (name, name.removesuffix('-bf16'))


def curve_points(results):
    """The learning curves: {(variant, CPU minutes): [(training samples, mean projected-guess
    NMAE, mean box NMAE, optimiser steps), ...]}, each from the curve runs of that variant and
    budget and the variant's own run where its budget is the same."""
    variants = {res['variant'] for name, res in results.items() if is_curve_run(name, res)}
    curves = {}
    for name, res in results.items():
        if res.get('variant', name) in variants:
            key = (res['variant'], res['plan']['cpu_minutes'])
            curves.setdefault(key, []).append((
                res['history'][-1]['train_samples'],
                statistics.mean(r['guess_nmae'] for r in res['rows'] if 'guess_nmae' in r),
                statistics.mean(r['box_nmae'] for r in res['rows']),
                total_steps(res['plan'])))
    return {key: sorted(pts) for key, pts in sorted(curves.items())}


def power_law(pts, i):
    """(exponent, prefactor) of the least-squares line of log NMAE ``i`` against log N."""
    import numpy
    slope, icpt = numpy.polyfit(numpy.log([p[0] for p in pts]),
                                numpy.log([p[i] for p in pts]), 1)
    return slope, float(numpy.exp(icpt))


def curve_report(results, plot_path=None):
    import numpy
    curves = curve_points(results)
    lines = []
    for (variant, minutes), pts in curves.items():
        lines += ['', f'Learning curve ({variant}, {minutes:g} CPU minutes each, the first N '
                  'training samples):', '',
                  '| training samples | projected-guess NMAE | box NMAE | steps |',
                  '|---|---|---|---|']
        lines += [f'| {n} | {g:.4f} | {b:.4f} | {steps} |' for n, g, b, steps in pts]
        if len(pts) >= 3:
            for i, label in ((1, 'projected-guess NMAE'), (2, 'box NMAE')):
                slope, pre = power_law(pts, i)
                lines.append(f'\n{label} ~ N^{slope:.2f}: predicts {pre * 1e4**slope:.4f} at '
                             f'10k samples and {pre * 3e4**slope:.4f} at 30k (an extrapolation '
                             f'of {len(pts)} points).')
    if plot_path is not None and curves:
        import matplotlib
        matplotlib.use('Agg')
        from matplotlib import pyplot as plt
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for color, ((variant, minutes), pts) in zip(('C0', 'C1', 'C2', 'C3'), curves.items()):
            for i, label, mark in ((1, 'guess', 'o'), (2, 'box', 's')):
                ax.loglog([p[0] for p in pts], [p[i] for p in pts], mark, color=color,
                          label=f'{label}, {minutes:g} CPU min')
                if len(pts) >= 3:
                    slope, pre = power_law(pts, i)
                    xs = numpy.geomspace(pts[0][0], 3e4, 50)
                    ax.loglog(xs, pre * xs**slope, '--', color=color, lw=1)
        ax.set_xlabel('training samples')
        ax.set_ylabel('validation NMAE')
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plot_path, dpi=120)
        plt.close(fig)
    return lines


def report(results):
    lines = ['| variant | what | CPU s / step | steps | training CPU min | forward CPU s | '
             'valid box NMAE | Coulomb error | projected-guess NMAE (mean) | '
             'cycles mlsr / minao (sum) | median ratio |', '|' + '---|' * 11]
    pooled = []
    for name, res in results.items():
        if is_curve_run(name, res):
            continue                                     # learning-curve points: below
        rows = res['rows']
        g = [r['guess_nmae'] for r in rows if 'guess_nmae' in r]
        c = [r for r in rows if 'cycles' in r]
        pooled += [r for r in c if 'guess_nmae' in r]
        ratio = statistics.median(r['cycles'] / r['minao_cycles'] for r in c) if c else None
        if name == 'shipped':
            lines.append(f"| shipped | {res['what']} | – | – | – | – | "
                         f"{statistics.mean(r['box_nmae'] for r in rows):.4f} | "
                         f"{statistics.mean(r['coulomb'] for r in rows):.2e} | "
                         f"{statistics.mean(g):.4f} | {sum(r['cycles'] for r in c)} / "
                         f"{sum(r['minao_cycles'] for r in c)} | {ratio:.2f} |")
            continue
        lines.append(
            f"| {name} | {res['what']} | {res['plan']['cpu_s_per_step']:.2f} | "
            f"{total_steps(res['plan'])} | "
            f"{total_steps(res['plan']) * res['plan']['cpu_s_per_step'] / 60:.1f} | "
            f"{res['forward_cpu_s']:.2f} | "
            f"{statistics.mean(r['box_nmae'] for r in rows):.4f} | "
            f"{statistics.mean(r['coulomb'] for r in rows):.2e} | "
            f"{statistics.mean(g):.4f} | "
            f"{sum(r['cycles'] for r in c)} / {sum(r['minao_cycles'] for r in c)} | "
            f"{ratio:.2f} |" if g and c else f"| {name} | {res['what']} | (incomplete) |")
    if len(pooled) >= 5:
        target = [r['cycles'] / r['minao_cycles'] for r in pooled]
        lines += ['', f'Proxies against the per-molecule cycle ratio mlsr / minao, Spearman over '
                  f'{len(pooled)} (variant, molecule) pairs:', '',
                  '| proxy | Spearman |', '|---|---|']
        for key, label in (('box_nmae', 'box NMAE'), ('guess_nmae', 'projected-guess NMAE'),
                           ('coulomb', 'Coulomb error per electron')):
            lines.append(f'| {label} | {spearman([r[key] for r in pooled], target):.2f} |')
    lines += curve_report(results, RESULTS / 'learning_curve.png')
    return '\n'.join(lines) + '\n'


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variants', default=','.join(VARIANTS))
    parser.add_argument('--cpu-minutes', type=float, default=30)
    parser.add_argument('--max-train', type=int, default=None)
    parser.add_argument('--n-guess', type=int, default=20)
    parser.add_argument('--n-cycles', type=int, default=10)
    parser.add_argument('--cache', default=str(ROOT / '.cache' / 'boxes'))
    parser.add_argument('--learning-curve', default=None,
                        help='comma-separated training-set sizes for --curve-variant')
    parser.add_argument('--curve-variant', default='flat')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (1: CPU seconds per step do not include thread waits)')
    parser.add_argument('--shipped', type=int, default=None, metavar='N',
                        help='measure the shipped PBE weights on N validation molecules (all '
                        'measures, cycles included): the proxies on more molecules')
    parser.add_argument('--cpu-bf16', action='store_true',
                        help='train and calibrate with bfloat16 autocast (runs <variant>-bf16)')
    parser.add_argument('--report-only', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / 'ablations.json'
    results = json.loads(path.read_text()) if path.exists() else {}
    jobs = []                                      # (run name, variant, max_train)
    if args.learning_curve:
        # the first curve's points (15 minutes) are named without the budget, so that a later N
        # at that budget finds their plan (curve_plan) and runs their step count
        budget = '' if args.cpu_minutes == FIRST_CURVE_MINUTES else f'-{args.cpu_minutes:g}min'
        jobs = [(f'{args.curve_variant}{budget}-n{int(n)}', args.curve_variant, int(n))
                for n in args.learning_curve.split(',')]
    elif not args.report_only and not args.shipped:
        suffix = '-bf16' if args.cpu_bf16 else ''
        jobs = [(name + suffix, name, args.max_train) for name in args.variants.split(',')]

    mine = set()                   # the entries this process writes; others' are read back

    from pyscf_mlguess.benchmark.runner import write_json

    def save():
        """Merge this process's entries into the results file under a lock, so that processes
        running disjoint variants (one per core) can share it."""
        with open(f'{path}.lock', 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            on_disk = json.loads(path.read_text()) if path.exists() else {}
            on_disk.update({k: results[k] for k in mine if k in results})
            results.update({k: v for k, v in on_disk.items() if k not in mine})
            write_json(path, on_disk)

    if args.shipped and not args.report_only and not results.get('shipped', {}).get('complete'):
        from pyscf_mlguess.model import shipped_version
        mine.add('shipped')
        entry = results.setdefault('shipped', {
            'what': f'weights/pbe-0.1.pt, {args.shipped} validation molecules',
            'rows': [], 'complete': False})
        measure_variant('shipped', args.shipped, args.shipped, args.cache,
                        weights=shipped_version('pbe-0.1'), rows=entry['rows'], save=save)
        entry['complete'] = True
        save()
    for name, variant, max_train in jobs:
        if variant not in VARIANTS:
            raise SystemExit(f'unknown variant {variant!r}; choose from {", ".join(VARIANTS)}')
        if results.get(name, {}).get('complete', name in results):
            continue
        what, kwargs = VARIANTS[variant]
        mine.add(name)
        plan, history = train_variant(name, kwargs, args.cpu_minutes, max_train, args.cache,
                                      bf16=args.cpu_bf16,
                                      shared=curve_plan(name) if args.learning_curve else None)
        if len(history) < plan['epochs']:
            break                                           # stopped early: resume later
        entry = results.setdefault(name, {'rows': []})
        entry.update(what=what, variant=variant, kwargs=kwargs, plan=plan, max_train=max_train,
                     history=history, complete=False)
        measure_variant(name, args.n_guess, args.n_cycles, args.cache, rows=entry['rows'],
                        save=save)
        entry['complete'] = True
        save()
    save()                                                  # read the other processes' entries
    done = {k: v for k, v in results.items() if v.get('complete', True)}
    for name, res in done.items():
        if name != 'shipped' and 'forward_cpu_s' not in res:
            res['forward_cpu_s'] = forward_cpu_seconds(res['kwargs'])
            mine.add(name)                      # complete entries are not written again elsewhere
    save()
    text = report(done)
    (RESULTS / 'ablations.md').write_text(text)
    print(text)


if __name__ == '__main__':
    main()
