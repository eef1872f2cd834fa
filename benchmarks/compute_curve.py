"""The shipped network's validation guess error against training compute: is more of it enough?

    python benchmarks/compute_curve.py

Every point is one completed training schedule of the shipped recipe (16 channels, 4 residual
blocks, element channels, 0.3 Bohr output, 8 voxels of context, the Coulomb term), scored the
same way: the mean NMAE of the projected 'mlsr' guess on the first 20 QM9 validation samples
(PySCF's integration grid; what ``train --guess-valid 20`` and ``benchmarks/ablations.py``
both record).  The points are

* the learning-curve runs of ``benchmarks/ablations.py`` (every N at each CPU budget, trained
  from scratch on QM9's first N training samples), and
* the release chain ``pbe-0.2`` -> ``pbe-0.3`` -> ``pbe-0.4``: each release's last validation,
  at the optimiser steps summed over the runs it was fine-tuned through (:data:`RELEASES`; the
  checkpoints' epochs times their steps per epoch).  From ``pbe-0.3`` on, half the steps are on
  the derived molecules and each run restarts its learning-rate schedule, so these points are a
  lower bound on what the same steps would give in one schedule on QM9 alone.

It fits the saturating law NMAE(s) = floor + b s^-k (``scipy.optimize.curve_fit``) and a plain
power law, says where each puts the guess at 10^5 and 10^6 steps and how many steps the 0.5 %
target needs, and sets the fitted floor beside the floor of the representation: the exact
delta_rho of the same 20 molecules at 0.3 and 0.15 Bohr, projected the same way
(``benchmarks/results/resolution_floor/pbe-0.3.json``).  Leaving each point out in turn gives
the spread of the fitted floor.  Twenty molecules and one seed per point: differences of a few
hundredths of a percentage point are noise.

Writes ``benchmarks/results/compute_curve/compute_curve.{json,md,png}``.
"""

import json
import math
import pathlib

import numpy
import torch
from scipy.optimize import curve_fit

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / 'results' / 'compute_curve'
ABLATIONS = HERE / 'results' / 'ablations' / 'ablations.json'
FLOOR = HERE / 'results' / 'resolution_floor' / 'pbe-0.3.json'
VARIANT = 'elements-context-coulomb-0.3'          # the ablations' name for the shipped recipe
QM9_VALID = 'data/pbe_def2svp/valid'
N_GUESS = 20
TARGET = 0.005
#: release -> the runs it went through, in order (docs/training.md, "Where the model stands")
RELEASES = {
    'pbe-0.2': ['pbe-0.2'],
    'pbe-0.3': ['pbe-0.2', 'pbe-0.3'],
    'pbe-0.4': ['pbe-0.2', 'pbe-0.3', 'pbe-0.4-charge-lr1e-4', 'pbe-0.5', 'pbe-0.5-ema'],
}


def ablation_points(path=ABLATIONS):
    """[(steps, mean guess NMAE, label)] of the recipe's completed learning-curve runs."""
    from ablations import curve_points                  # the sibling script's own reading
    results = {k: v for k, v in json.loads(path.read_text()).items() if v.get('complete')}
    return sorted((steps, guess, f'{minutes:g} CPU min, N = {n}')
                  for (variant, minutes), pts in curve_points(results).items()
                  if variant == VARIANT for n, guess, _, steps in pts)


def _checkpoint(run):
    info = torch.load(ROOT / 'runs' / run / 'checkpoint.pt', map_location='cpu',
                      weights_only=True)
    recipe = info['recipe']
    recipe = json.loads(recipe) if isinstance(recipe, str) else recipe
    history = info['history']
    history = json.loads(history) if isinstance(history, str) else history
    return info['epoch'], recipe['steps_per_epoch'], history


def release_points():
    """[(steps, mean guess NMAE, label)]: each release's last QM9 validation guess, at the steps
    of the whole chain of runs behind it."""
    points = []
    for release, runs in RELEASES.items():
        chain = [_checkpoint(run) for run in runs]
        steps = sum(epoch * per_epoch for epoch, per_epoch, _ in chain)
        scored = [entry.get('valid_by_folder', {}).get(QM9_VALID, entry) for entry in chain[-1][2]]
        last = [entry['valid_guess_nmae'] for entry in scored if 'valid_guess_nmae' in entry][-1]
        points.append((steps, last, release))
    return points


def saturating(s, floor, b, k):
    return floor + b * s ** -k


def fit(points):
    """(floor, b, k) of the saturating law and (prefactor, exponent) of the plain power law."""
    s = numpy.array([p[0] for p in points], float)
    y = numpy.array([p[1] for p in points])
    s0 = math.exp(numpy.log(s).mean())             # steps in units of s0: b of order NMAE
    (floor, b, k), _ = curve_fit(saturating, s / s0, y, p0=(y.min() / 2, y.mean() / 2, 0.3),
                                 bounds=([0, 0, 0.01], [y.min(), numpy.inf, 3]),
                                 xtol=1e-12, ftol=1e-12, maxfev=20000)
    slope, icpt = numpy.polyfit(numpy.log(s), numpy.log(y), 1)
    return (float(floor), float(b * s0 ** k), float(k)), (float(math.exp(icpt)), float(slope))


def steps_for(target, sat, power):
    """Steps at which each law reaches ``target`` (None where the saturating floor is above)."""
    floor, b, k = sat
    pre, slope = power
    s_sat = (b / (target - floor)) ** (1 / k) if target > floor else None
    return s_sat, (target / pre) ** (1 / slope)


def representation_floor(path=FLOOR):
    """Mean guess NMAE of the exact delta_rho at 0.3 and at 0.15 Bohr, first 20 QM9 validation
    samples."""
    summary = json.loads(path.read_text())['summary'][QM9_VALID]
    return {'0.3 Bohr': summary['exact']['guess']['mean'],
            '0.15 Bohr': summary['exact_fine']['guess']['mean']}


def main():
    points = ablation_points() + release_points()
    sat, power = fit(points)
    loo = [fit(points[:i] + points[i + 1:])[0][0] for i in range(len(points))]
    floors = representation_floor()
    s_sat, s_power = steps_for(TARGET, sat, power)
    out = {'points': [{'steps': s, 'guess_nmae': g, 'source': label} for s, g, label in points],
           'saturating': dict(zip(('floor', 'b', 'k'), sat)),
           'floor_leave_one_out': [min(loo), max(loo)],
           'power_law': {'prefactor': power[0], 'exponent': power[1]},
           'steps_to_target': {'saturating': s_sat, 'power_law': s_power},
           'representation_floor': floors}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / 'compute_curve.json').write_text(json.dumps(out, indent=1))

    def pct(v):
        return f'{100 * v:.3f} %'
    lines = ['# Guess error against training compute (the shipped recipe)', '',
             f'Mean projected-guess NMAE, first {N_GUESS} QM9 validation samples '
             '(`benchmarks/compute_curve.py`).', '',
             '| optimiser steps | guess NMAE | run |', '|---|---|---|']
    lines += [f'| {s} | {pct(g)} | {label} |' for s, g, label in points]
    floor, b, k = sat
    pre, slope = power
    lines += ['', f'Saturating fit: NMAE = {pct(floor)} + {b:.3g} s^-{k:.2f} (floor '
              f'{pct(min(loo))}–{pct(max(loo))} leaving one point out); at 10^5 steps '
              f'{pct(saturating(1e5, *sat))}, at 10^6 {pct(saturating(1e6, *sat))}; the '
              f'{pct(TARGET)} target ' + (f'at {s_sat:.2g} steps.' if s_sat else
                                          'is below the floor: never reached.'),
              '', f'Power law: NMAE = {pre:.3g} s^{slope:.3f}; at 10^5 steps '
              f'{pct(pre * 1e5 ** slope)}, at 10^6 {pct(pre * 1e6 ** slope)}; the target at '
              f'{s_power:.2g} steps.', '',
              'Floor of the representation (the exact delta_rho, projected the same way, same '
              'molecules): ' + ', '.join(f'{pct(v)} at {key}' for key, v in floors.items())
              + '.']
    (RESULTS / 'compute_curve.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))

    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for marker, group in (('o', [p for p in points if not p[2].startswith('pbe')]),
                          ('s', [p for p in points if p[2].startswith('pbe')])):
        ax.semilogx([p[0] for p in group], [100 * p[1] for p in group], marker, color='C0',
                    label='ablation runs (from scratch)' if marker == 'o' else
                    'releases (cumulative steps)')
    xs = numpy.geomspace(min(p[0] for p in points) / 2, 1e6, 100)
    ax.semilogx(xs, 100 * saturating(xs, *sat), '-', color='C0', lw=1,
                label=f'fit, floor {100 * floor:.2f} %')
    ax.semilogx(xs, 100 * pre * xs ** slope, ':', color='C0', lw=1, label='power law')
    ax.axhline(100 * TARGET, color='C3', lw=1, label=f'the {100 * TARGET:g} % target')
    for (key, v), style in zip(floors.items(), ('--', '-.')):
        ax.axhline(100 * v, color='C2', ls=style, lw=1, label=f'exact delta_rho at {key}')
    ax.set_xlabel('optimiser steps (4 patches each)')
    ax.set_ylabel('validation guess NMAE (%)')
    ax.set_ylim(0, None)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / 'compute_curve.png', dpi=120)


if __name__ == '__main__':
    main()
