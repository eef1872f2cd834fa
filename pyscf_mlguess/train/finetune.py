"""Fine-tuning on the user's own molecules: references, training from existing weights, before
and after.

    pyscf-mlguess finetune --molecules DIR --xc pbe --out runs/mine

``DIR`` holds .xyz files; a comment line with ``charge=N`` (and ``spin=0``) sets the charge.  A
fixed, name-hashed quarter of the molecules is held out.  References are computed (resumably)
into ``OUT/data``, the network starts from the given or shipped weights of the functional's
family, and ``OUT/finetune.json`` reports the held-out NMAE before and after.
"""

import glob
import json
import os

import torch

from pyscf_mlguess.data import generate, qm9
from pyscf_mlguess.data.dataset import DensityDataset
from pyscf_mlguess.model import find_weights, load_weights, xc_family
from pyscf_mlguess.train.loop import evaluate, train
from pyscf_mlguess.xyz import read_xyz

HOLDOUT_FRACTION = 0.25


def sample_from_xyz(path):
    """A :class:`~pyscf_mlguess.data.qm9.Sample` of an .xyz file (charge and spin from its
    comment line, see :func:`pyscf_mlguess.xyz.read_xyz`)."""
    mol = read_xyz(path)
    return qm9.Sample(-1, '', mol.elements, mol.coords_angstrom, charge=mol.charge,
                      spin=mol.spin, name=mol.name)


def is_held_out(name, fraction=HOLDOUT_FRACTION):
    return qm9._unit_hash(f'finetune-holdout:{name}') < fraction


def finetune(molecules, out, xc='pbe', weights=None, basis=generate.BASIS, workers=None,
             scheduler=None, epochs=5, steps_per_epoch=100, lr=5e-4, progress=True, **kwargs):
    """Generate references for ``molecules`` (a folder of .xyz), fine-tune, report.

    Returns the report: molecules per part, held-out NMAE of the starting and the fine-tuned
    weights (whole box, against the exact delta_rho) and of the SAD density.
    """
    paths = sorted(glob.glob(os.path.join(molecules, '*.xyz')))
    if not paths:
        raise ValueError(f'no .xyz files in {molecules}')
    samples = [sample_from_xyz(p) for p in paths]
    parts = {'train': [s for s in samples if not is_held_out(s.key)],
             'holdout': [s for s in samples if is_held_out(s.key)]}
    if not parts['train'] or not parts['holdout']:
        raise ValueError(f'need molecules for both training and the held-out part; got '
                         f'{len(parts["train"])} and {len(parts["holdout"])}')
    level = generate.level_name(xc, basis)
    folders = {k: os.path.join(out, 'data', level, k) for k in parts}
    for part, items in parts.items():
        generate.generate_samples(folders[part], items, xc, basis, workers, scheduler,
                                  progress=progress, desc=f'references ({part})')
    start = weights or find_weights(xc_family(xc))
    base, meta = load_weights(start)
    holdout = DensityDataset(folders['holdout'], meta['output_spacing'], meta['margin'],
                             base.upsample, cache_dir=kwargs.get('cache_dir'))
    device = torch.device(kwargs.get('device') or 'cpu')
    before, sad = evaluate(base.to(device), holdout, device)
    history = train([folders['train']], [folders['holdout']], os.path.join(out, 'run'),
                    epochs=epochs, steps_per_epoch=steps_per_epoch, lr=lr, init_weights=start,
                    spacing=meta['output_spacing'], margin=meta['margin'], progress=progress,
                    **kwargs)
    report = {'molecules': {k: [s.key for s in v] for k, v in parts.items()},
              'start_weights': str(start), 'weights': os.path.join(out, 'run', 'weights.pt'),
              'holdout_nmae_sad': sad, 'holdout_nmae_before': before,
              'holdout_nmae_after': history[-1]['valid_nmae'] if history else None}
    with open(os.path.join(out, 'finetune.json'), 'w') as f:
        json.dump(report, f, indent=1)
    return report
