"""Validation error against optimiser steps for a training run, with its fitted trend.

    python benchmarks/training_curve.py runs/pbe-0.2

Reads the run's checkpoint (its per-epoch history and recipe), plots the whole-box validation
NMAE and, where the run recorded it (``pyscf-mlguess train --guess-valid N``), the NMAE of the
projected guess, against optimiser steps (log-log), and fits log(NMAE) = a + b log(steps) to the
epochs after the first quarter of the run. The fit says how many steps the trend needs for the
targets (:data:`TARGETS`); within one cosine schedule the late epochs also gain from the falling
learning rate, so the trend is optimistic about what more steps of the same schedule would give.

``--gap N`` also measures the run's final weights on the first N training samples and the first
N validation samples alike (box NMAE, Coulomb error, projected-guess NMAE): a small gap means
the error is set by the network and its training, not by the amount of data.

Writes ``benchmarks/results/training/<run>.{json,md,png}``.
"""

import argparse
import json
import pathlib

import numpy
import torch

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / 'results' / 'training'
MEASURES = {'valid_guess_nmae': 'projected guess', 'valid_nmae': 'model (box)'}
#: issue 15's targets (all-electron NMAE on the PBE test split), per measure
TARGETS = {'valid_guess_nmae': 0.005, 'valid_nmae': 0.015}


def read_run(run, steps_per_epoch=None):
    """(history, recipe) of the run folder ``run``: its checkpoint, else its weights' metadata.
    A run from before recipes were stored needs ``steps_per_epoch``."""
    folder = pathlib.Path(run)
    if (folder / 'checkpoint.pt').exists():
        info = torch.load(folder / 'checkpoint.pt', map_location='cpu', weights_only=True)
    elif (folder / 'weights.pt').exists():
        from pyscf_mlguess.model import load_weights
        info = load_weights(folder / 'weights.pt')[1]
    else:
        raise SystemExit(f'{folder} holds neither checkpoint.pt nor weights.pt')
    recipe = json.loads(info.get('recipe', 'null')) or {}
    if steps_per_epoch:
        recipe['steps_per_epoch'] = steps_per_epoch
    if 'steps_per_epoch' not in recipe:
        raise SystemExit(f'{folder} was trained before runs stored their recipe: give '
                         f'--steps-per-epoch')
    return json.loads(info['history']), recipe


def fit_trend(steps, values, target):
    """Slope and intercept of log(value) against log(steps), and the steps it needs for
    ``target`` (``None`` when the trend does not fall)."""
    b, a = numpy.polyfit(numpy.log(steps), numpy.log(values), 1)
    need = float(numpy.exp((numpy.log(target) - a) / b)) if b < 0 else None
    return {'slope': float(b), 'intercept': float(a), 'steps_for_target': need}


def curve(history, recipe):
    steps = numpy.array([h['epoch'] * recipe['steps_per_epoch'] for h in history], float)
    out = {'steps': steps.tolist(), 'measures': {}}
    first = len(history) // 4
    for key in MEASURES:
        values = [h.get(key) for h in history]
        if all(v is None for v in values):
            continue
        pts = [(s, v) for s, v in zip(steps, values) if v is not None]
        fit_pts = pts[first:] if len(pts[first:]) >= 2 else pts
        out['measures'][key] = {'values': values, 'target': TARGETS[key],
                                'trend': fit_trend(*zip(*fit_pts), TARGETS[key])
                                if len(fit_pts) >= 2 else None}
    return out


def gap(run, n, valid=None, cache_dir=None):
    """{'train': ..., 'valid': ...}: mean box NMAE, Coulomb error per electron and
    projected-guess NMAE of ``run``'s final weights on the first ``n`` samples of its training
    folders and of ``valid`` (default: the ``valid`` folder beside its first training folder)."""
    from pyscf_mlguess.data.dataset import DensityDataset
    from pyscf_mlguess.model import load_weights
    from pyscf_mlguess.train.loop import evaluate, guess_nmae
    model, meta = load_weights(pathlib.Path(run) / 'weights.pt')
    train = [pathlib.Path(f) for f in meta['train_folders']]
    folders = {'train': train, 'valid': [pathlib.Path(valid or train[0].parent / 'valid')]}
    out = {}
    for split, where in folders.items():
        data = DensityDataset(where, meta['output_spacing'], meta['margin'], model.upsample,
                              cache_dir=cache_dir, elements=model.arch.get('elements'))
        data.keep_first(n)
        box, _, coulomb, _ = evaluate(model, data, torch.device('cpu'), coulomb=True)
        out[split] = {'samples': len(data), 'folders': [str(f) for f in where], 'box_nmae': box,
                      'coulomb': coulomb, 'guess_nmae': guess_nmae(model, data, n)}
    return out


def plot(result, path, title):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = numpy.array(result['steps'])
    for key, res in result['measures'].items():
        pts = [(s, v) for s, v in zip(steps, res['values']) if v is not None]
        line, = ax.plot(*zip(*pts), 'o-', label=MEASURES[key])
        if res['trend']:
            xs = numpy.geomspace(steps.min(), steps.max() * 4, 50)
            t = res['trend']
            ax.plot(xs, numpy.exp(t['intercept']) * xs**t['slope'], '--', color=line.get_color(),
                    label=f"trend, slope {t['slope']:.2f}")
        ax.axhline(res['target'], color=line.get_color(), lw=0.8, ls=':',
                   label=f"target {100 * res['target']:.1f} %")
    ax.set(xscale='log', yscale='log', xlabel='optimiser steps',
           ylabel='validation NMAE (all-electron)', title=title)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(result, name):
    lines = [f'# Training curve: {name}', '',
             '| steps | ' + ' | '.join(MEASURES[k] for k in result['measures']) + ' |',
             '|---|' + '---|' * len(result['measures'])]
    for i, s in enumerate(result['steps']):
        cells = [res['values'][i] for res in result['measures'].values()]
        lines.append(f'| {int(s)} | ' + ' | '.join('' if v is None else f'{100 * v:.2f} %'
                                                     for v in cells) + ' |')
    lines.append('')
    for key, res in result['measures'].items():
        t = res['trend']
        if t is None:
            continue
        need = ('does not fall' if t['steps_for_target'] is None
                else f"reaches {100 * res['target']:.1f} % at about "
                     f"{t['steps_for_target']:.3g} steps")
        lines.append(f"- {MEASURES[key]}: NMAE ~ steps^{t['slope']:.2f}; the trend {need}.")
    if result.get('gap'):
        g = result['gap']
        lines += ['', f"Final weights on the first {g['train']['samples']} training and "
                  f"{g['valid']['samples']} validation samples (the generalisation gap):", '',
                  '| samples | box NMAE | Coulomb error / electron | projected guess |',
                  '|---|---|---|---|']
        lines += [f"| {split} | {100 * v['box_nmae']:.2f} % | {v['coulomb']:.2e} | "
                  f"{100 * v['guess_nmae']:.2f} % |" for split, v in g.items()]
    return '\n'.join(lines) + '\n'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run', help='a training run folder (holds checkpoint.pt)')
    parser.add_argument('--steps-per-epoch', type=int, default=None,
                        help='for runs from before the recipe was stored')
    parser.add_argument('--gap', type=int, default=0, metavar='N',
                        help='measure the final weights on N training and N validation samples')
    parser.add_argument('--valid', default=None,
                        help='validation folder for --gap (default: beside the training data)')
    parser.add_argument('--cache', default=None, help='box cache folder (as in training)')
    parser.add_argument('--out', default=str(RESULTS))
    args = parser.parse_args()
    history, recipe = read_run(args.run, args.steps_per_epoch)
    name = pathlib.Path(args.run).resolve().name
    result = dict(curve(history, recipe), run=str(args.run), recipe=recipe)
    if args.gap:
        result['gap'] = gap(args.run, args.gap, args.valid, args.cache)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f'{name}.json').write_text(json.dumps(result, indent=1))
    plot(result, out / f'{name}.png', name)
    text = report(result, name)
    (out / f'{name}.md').write_text(text)
    print(text)


if __name__ == '__main__':
    main()
