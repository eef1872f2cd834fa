"""What a CPU training step costs in float32 and in bfloat16 autocast, and how far apart they are.

    python benchmarks/train_step.py --weights weights/pbe-0.2.pt --steps 12

Draws the first ``--steps`` steps of a training run exactly as ``pyscf-mlguess train`` would
(:class:`~pyscf_mlguess.train.loop.StepPatches`: same data, seed, batch, patch and context), and
runs each twice on the given weights, float32 and bfloat16 autocast, alternating, one process:
forward, the training loss (NMAE plus the Coulomb term), backward.  Writes one JSON line per
step to ``benchmarks/results/training/train_step.jsonl``: wall seconds of each patch by
precision, its input shape, and per step the relative loss difference, the cosine between the
two gradients and, for scale, the cosine between this step's float32 gradient and the previous
step's (two batches of the same run).  Run it with the machine otherwise idle (or the training
paused): the figures are wall seconds.
"""

import argparse
import json
import pathlib
import time

import torch

from pyscf_mlguess.data.dataset import DensityDataset
from pyscf_mlguess.model import load_weights
from pyscf_mlguess.train.loop import StepPatches, patch_loss

HERE = pathlib.Path(__file__).resolve().parent


def _step(model, patches, spacing, bf16):
    model.zero_grad(set_to_none=True)
    total, seconds = 0.0, []
    for item in patches:
        t = time.perf_counter()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            pred = model(item['x'], item['electrons'])
        loss = patch_loss(pred, item, spacing, 1.0, {})
        (loss / len(patches)).backward()
        total += float(loss) / len(patches)
        seconds.append(time.perf_counter() - t)
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return total, grad, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--weights', default=str(HERE.parent / 'weights' / 'pbe-0.2.pt'))
    parser.add_argument('--train', nargs='+', default=[
        str(HERE.parent / 'data' / 'pbe_def2svp' / 'train'),
        str(HERE.parent / 'data' / 'pbe_def2svp_derived' / 'train')])
    parser.add_argument('--cache', default=str(HERE.parent / '.cache' / 'boxes'))
    parser.add_argument('--steps', type=int, default=12)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--patch', type=int, default=24)
    parser.add_argument('--context', type=int, default=8)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--out', default=str(HERE / 'results' / 'training' / 'train_step.jsonl'))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, meta = load_weights(args.weights)
    model.train()
    spacing = meta['output_spacing']
    data = DensityDataset(args.train, spacing, meta['margin'], model.upsample,
                          cache_dir=args.cache, elements=model.input_elements)
    steps = StepPatches(data, args.batch, args.patch, model.upsample, args.context)
    _step(model, steps[0], spacing, False)                          # warm-up, not recorded
    _step(model, steps[0], spacing, True)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = None
    with open(out, 'w') as f:
        for i in range(args.steps):
            patches = steps[i]
            loss32, grad32, sec32 = _step(model, patches, spacing, False)
            loss16, grad16, sec16 = _step(model, patches, spacing, True)
            row = {'step': i, 'weights': pathlib.Path(args.weights).name,
                   'threads': args.threads, 'context': args.context,
                   'cpu_capability': torch.backends.cpu.get_cpu_capability(),
                   'shapes': [list(p['x'].shape[-3:]) for p in patches],
                   'fp32_s': [round(s, 4) for s in sec32], 'bf16_s': [round(s, 4) for s in sec16],
                   'loss_rel_diff': abs(loss16 - loss32) / loss32,
                   'grad_cosine': float(torch.nn.functional.cosine_similarity(grad32, grad16,
                                                                               dim=0))}
            if previous is not None:
                row['grad_cosine_previous_step'] = float(
                    torch.nn.functional.cosine_similarity(grad32, previous, dim=0))
            previous = grad32
            print(json.dumps(row), file=f, flush=True)
            print(f"step {i}: fp32 {sum(sec32):.2f} s, bf16 {sum(sec16):.2f} s, "
                  f"gradient cosine {row['grad_cosine']:.4f}", flush=True)


if __name__ == '__main__':
    main()
