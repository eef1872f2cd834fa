"""Training loop: random patches, NMAE loss, AdamW with warm-up + cosine decay, exact resume.

Each step draws molecules from :class:`~pyscf_mlguess.data.dataset.DensityDataset` (augmented by
the cube's symmetries) and crops a random patch of ``patch`` input voxels per edge (the matching
``upsample * patch`` target voxels), centred half the time where the density is and half the
time anywhere in the box; ``context`` more input voxels on each side (where the box has them)
let a network with a wide receptive field see what it sees at run time, and only the central
patch enters the loss.  The loss is the normalised mean absolute error of the total density,

    NMAE = sum |delta_rho_pred - delta_rho_ref| dV / N_electrons

(the SAD part cancels in the difference), plus, with ``coulomb_weight`` > 0, that weight times
the Coulomb error sqrt(2 E_H[error] / N_electrons) (the Hartree energy of the error, by FFT on the
patch: J, which the projection builds from the density, sees large-scale charge displacement
that NMAE weighs like any other error), plus, with ``smooth_loss`` = (sigma, weight), weight
times the NMAE of the error blurred by a Gaussian of sigma Bohr (the projection passes the
network's error on scales of a Bohr or so and drops most of what lies below half a Bohr;
docs/training.md, "Length scales of the network's error"), summed over the patches of a
step.  Validation runs the whole boxes and reports both.

What a step draws (molecules, symmetries, patches) is a pure function of the seed, the rank and
the step number (:class:`StepPatches`), so ``loader_workers`` DataLoader processes build and
load the boxes ahead of the optimiser, and a resumed run draws exactly what a straight one did.
A checkpoint after every epoch holds the model (and its moving average, with ``ema_decay``),
optimiser, schedule, epoch, random-number state and the run's settings, so ``resume`` continues
exactly.  CUDA is used when available (with
bfloat16 autocast); under ``torchrun`` the data are sharded over ranks with DDP.

On CPU the steps run in float32 unless ``cpu_bf16`` (bfloat16 autocast; the weights, optimiser,
loss and validation stay float32).  For a float32 input of batch 1 and 3-voxel kernels, PyTorch
takes oneDNN for a 3D convolution only when channels x depth x height exceed 20480, else its
native ``slow_conv3d``, which for some shapes is several times slower: a 16-channel patch whose
first two edges the box's faces cut to about 32 voxels costs more than a whole 40^3 one.
bfloat16 always takes oneDNN, which on a CPU with native bfloat16 (AVX512-BF16, AMX) is also
faster per voxel; on one without (:func:`cpu_has_native_bf16`), oneDNN emulates it some forty
times slower than float32, so there ``cpu_bf16`` is declined with a warning and the sitting runs
in float32.  Measured in docs/training.md; it is a setting of the sitting, not of the recipe
(each epoch records what it used), so a run may switch between sittings and machines.
"""

import copy
import hashlib
import itertools
import json
import math
import os
import time
import warnings

import numpy
import torch
from torch import nn

from pyscf_mlguess.data.dataset import DensityDataset
from pyscf_mlguess.field import coulomb_kernel_spectrum, hartree_potential
from pyscf_mlguess.model import (LEVEL_BLOCKS, DensitySR, add_blocks, add_branch,
                                 add_charge_input, load_weights, predict_delta, refine_output,
                                 save_weights)

CHECKPOINT = 'checkpoint.pt'


def cpu_has_native_bf16():
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX), as PyTorch itself
    asks; False where the build cannot tell."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def nmae(pred, ref, voxel_volume, n_electrons):
    """sum |pred - ref| dV / N over a batch (tensors of equal shape)."""
    return (pred - ref).abs().sum() * voxel_volume / n_electrons


def coulomb_error(error, spacing, spectra=None):
    """The Coulomb norm sqrt(2 E_H[error]) = sqrt(int error * v[error]) of a (D, H, W) tensor
    ``error`` (e/Bohr^3) on a box of ``spacing`` Bohr, differentiable (free-space kernel,
    zero-padded FFT, as :func:`pyscf_mlguess.field.hartree_potential`).  ``spectra`` (a dict)
    caches the kernel's spectrum by padded shape."""
    import scipy.fft
    shape = tuple(error.shape)
    padded = tuple(2 * scipy.fft.next_fast_len(n, real=True) for n in shape)
    key = (padded, float(spacing))
    spec = None if spectra is None else spectra.get(key)
    if spec is None:
        spec = torch.from_numpy(coulomb_kernel_spectrum(padded, float(spacing)))
        if spectra is not None:
            spectra[key] = spec
    spec = spec.to(error.device)
    e = error.float()
    v = torch.fft.irfftn(torch.fft.rfftn(e, s=padded) * spec, s=padded)
    v = v[:shape[0], :shape[1], :shape[2]] * spacing**3
    return (e * v).sum().clamp(min=0).mul(spacing**3).sqrt()


def gaussian_blur(x, sigma, truncate=4.0):
    """A (D, H, W) tensor ``x`` convolved with a normalised Gaussian of ``sigma`` voxels along
    each axis, zero outside the box, differentiable: three 1D convolutions, the kernel cut at
    ``truncate`` sigma (as ``scipy.ndimage.gaussian_filter(mode='constant')``)."""
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma)**2)
    kernel = kernel / kernel.sum()
    y = x[None, None]
    for axis in range(3):
        shape, pad = [1, 1, 1, 1, 1], [0, 0, 0]
        shape[2 + axis], pad[axis] = kernel.numel(), radius
        y = nn.functional.conv3d(y, kernel.view(shape), padding=tuple(pad))
    return y[0, 0]


def coulomb_error_numpy(error, spacing):
    """:func:`coulomb_error` of a numpy box (for whole validation boxes)."""
    return float(numpy.sqrt(max(0.0, float((error * hartree_potential(error, spacing)).sum())
                                * spacing**3)))


def random_patch(item, patch, upsample, generator, near_density=0.5, context=0):
    """(sad patch, delta_rho patch, inner) of ``patch`` input voxels per edge.  With probability
    ``near_density`` the centre is drawn in proportion to the SAD density (where the correction
    is), otherwise uniformly over the box (so the network also learns to leave vacuum alone,
    which whole boxes are mostly made of).  The SAD patch carries up to ``context`` input voxels
    more on each side; ``inner`` slices the model's output on it down to the target patch."""
    image, delta = item['sad'], item['delta_rho'][0]
    sad = image[0]
    shape = sad.shape
    size = [min(patch, n) for n in shape]
    if float(torch.rand((), generator=generator)) < near_density:
        weights = sad.flatten().clamp(min=0).double()
    else:
        weights = torch.ones(sad.numel(), dtype=torch.float64)
    flat = int(torch.multinomial(weights, 1, generator=generator))
    centre = numpy.unravel_index(flat, shape)
    jitter = torch.randint(-patch // 4, patch // 4 + 1, (3,), generator=generator).tolist()
    lo = [min(max(0, c + j - s // 2), n - s) for c, j, s, n in zip(centre, jitter, size, shape)]
    lo_in = [max(0, a - context) for a in lo]
    hi_in = [min(n, a + s + context) for a, s, n in zip(lo, size, shape)]
    sl = tuple(slice(a, b) for a, b in zip(lo_in, hi_in))
    fine = tuple(slice(a * upsample, (a + s) * upsample) for a, s in zip(lo, size))
    inner = tuple(slice((a - b) * upsample, (a - b + s) * upsample)
                  for a, b, s in zip(lo, lo_in, size))
    return image[(slice(None),) + sl][None], delta[fine][None, None], inner


class StepPatches(torch.utils.data.Dataset):
    """Item ``step``: the ``batch`` training patches of that optimiser step, each a dict with
    ``x`` (SAD patch), ``y`` (target), ``inner`` (see :func:`random_patch`), ``voxel_volume``,
    ``n_electrons`` and ``electrons`` (the molecule's extra electrons, ``-charge``), drawn with
    a generator seeded by (seed, rank, step) alone.  Samples are drawn uniformly, or with
    ``probabilities`` (one per sample) when given."""

    def __init__(self, dataset, batch, patch, upsample, context=0, seed=0, rank=0,
                 probabilities=None):
        self.dataset, self.batch, self.patch = dataset, batch, patch
        self.upsample, self.context, self.seed, self.rank = upsample, context, seed, rank
        self.probabilities = probabilities

    def __len__(self):
        return 2**62

    def __getitem__(self, step):
        gen = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + self.rank) * 2**40 + int(step))
        out = []
        for _ in range(self.batch):
            if self.probabilities is None:
                index = int(torch.randint(len(self.dataset), (1,), generator=gen))
            else:
                index = int(torch.multinomial(self.probabilities, 1, generator=gen))
            item = self.dataset.item(index, gen)
            x, y, inner = random_patch(item, self.patch, self.upsample, gen,
                                       context=self.context)
            out.append({'x': x, 'y': y, 'inner': inner, 'voxel_volume': item['voxel_volume'],
                        'n_electrons': item['n_electrons'], 'electrons': -item['charge']})
        return out


def _sample_probabilities(dataset, folders, folder_weights):
    """Per-sample draw probabilities giving folder i the share ``folder_weights[i]`` of the
    draws (None: uniform over samples); a folder without samples, or a weight that is not
    positive, is refused by name."""
    if folder_weights is None:
        return None
    if len(folder_weights) != len(folders):
        raise ValueError(f'{len(folder_weights)} folder weights for {len(folders)} training '
                         f'folders ({", ".join(map(str, folders))})')
    index = torch.tensor(dataset.folder_index)
    counts = torch.bincount(index, minlength=len(folders))
    for folder, weight, count in zip(folders, folder_weights, counts.tolist()):
        if not weight > 0:
            raise ValueError(f'folder weight {weight} for {folder}: weights must be positive')
        if count == 0:
            raise ValueError(f'{folder} has no training samples to give weight {weight}')
    weights = torch.tensor([float(w) for w in folder_weights], dtype=torch.float64)
    return (weights / weights.sum() / counts)[index]


def _as_is(item):
    return item


def _loader_worker_init(_):
    # one thread each: the workers build boxes next to the optimiser, not against it
    from pyscf import lib
    lib.num_threads(1)
    torch.set_num_threads(1)


def _setup_distributed():
    if int(os.environ.get('WORLD_SIZE', '1')) > 1 and not torch.distributed.is_initialized():
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
        torch.distributed.init_process_group(backend)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _device(rank, device=None):
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device('cuda', rank % torch.cuda.device_count())
    return torch.device('cpu')


def lr_factor(step, warmup, total):
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress))


def evaluate(model, dataset, device, tile=None, coulomb=False):
    """Mean whole-box NMAE of the model and of the SAD density (delta_rho = 0) over a dataset;
    with ``coulomb``, also the mean Coulomb error per electron, sqrt(2 E_H[error] / N), of both."""
    model.eval()
    errs, sad_errs, c_errs, c_sad = [], [], [], []
    with torch.inference_mode():
        for i in range(len(dataset)):
            item = dataset[i]
            sad = item['sad'].to(device)
            pred = predict_delta(model, sad, -item['charge'], item['voxel_volume'], tile)
            ref = item['delta_rho'][0].to(device)
            n = item['n_electrons']
            errs.append(float(nmae(pred, ref, item['voxel_volume'], n)))
            sad_errs.append(float(ref.abs().sum() * item['voxel_volume'] / n))
            if coulomb:
                h = dataset.spacing
                err = (pred - ref).double().cpu().numpy()
                c_errs.append(coulomb_error_numpy(err, h) / numpy.sqrt(n))
                c_sad.append(coulomb_error_numpy(ref.double().cpu().numpy(), h) / numpy.sqrt(n))
    out = (float(numpy.mean(errs)), float(numpy.mean(sad_errs)))
    if coulomb:
        out += (float(numpy.mean(c_errs)), float(numpy.mean(c_sad)))
    return out


def _validate(model, valid_set, device, guess_valid):
    """One epoch's validation figures on one validation set."""
    out = dict(zip(('valid_nmae', 'valid_nmae_sad', 'valid_coulomb', 'valid_coulomb_sad'),
                   evaluate(model, valid_set, device, coulomb=True)))
    if guess_valid:
        out['valid_guess_nmae'] = guess_nmae(model, valid_set, guess_valid)
    return out


def patch_loss(pred, item, spacing, coulomb_weight, spectra, device=None, smooth=None):
    """The training loss of one patch (module docstring): NMAE of the central patch of
    ``pred`` plus ``coulomb_weight`` times its Coulomb error per sqrt(electron), plus, with
    ``smooth`` = (sigma, weight), weight times the NMAE of the error blurred by a Gaussian of
    sigma Bohr (:func:`gaussian_blur`)."""
    pred = pred[(Ellipsis,) + item['inner']].float()
    y = item['y'] if device is None else item['y'].to(device)
    loss = nmae(pred, y, item['voxel_volume'], item['n_electrons'])
    error = (pred - y)[0, 0]
    if coulomb_weight:
        loss = loss + coulomb_weight * coulomb_error(
            error, spacing, spectra) / item['n_electrons']**0.5
    if smooth is not None:
        sigma, weight = smooth
        blurred = gaussian_blur(error, sigma / spacing)
        loss = loss + weight * nmae(blurred, 0.0, item['voxel_volume'], item['n_electrons'])
    return loss


def _validate_each(model, valid_sets, device, guess_valid):
    """{folder: its validation figures} over the non-empty validation sets."""
    return {folder: _validate(model, valid_set, device, guess_valid)
            for folder, valid_set in valid_sets.items() if len(valid_set)}


def guess_nmae(model, dataset, n):
    """Mean NMAE of the projected 'mlsr' guess (PySCF's integration grid, as the release and the
    ablations measure it) on the first ``n`` samples of ``dataset``: the proxy that ranks SCF
    cycles best (docs/training.md).  A copy of ``model`` runs on CPU."""
    from pyscf_mlguess.model import CNNPredictor
    from pyscf_mlguess.train.release import measure_sample
    meta = {'input_spacing': dataset.spacing * model.upsample, 'margin': dataset.margin,
            'near_nucleus': dataset.near_nucleus}
    predictor = CNNPredictor(copy.deepcopy(model).cpu(), meta, device='cpu')
    return float(numpy.mean([measure_sample(r, predictor)['mlsr_guess']
                             for r in dataset.records[:n]]))


def _as_trained(path, model, meta, arch, spacing, margin):
    """The box (target spacing, margin) that weights ``path`` were trained on, which fine-tuning
    keeps: a network's filters are tied to its voxel size.  ``arch``, ``spacing`` or ``margin``
    asked for that differ from the weights' are refused, not ignored."""
    trained = {'spacing': meta.get('output_spacing'), 'margin': meta.get('margin')}
    have = dict({'levels': 0, 'elements': None, 'charge_input': False},   # flat, no channels
                **model.arch, **trained)
    asked = dict(arch or {}, spacing=spacing, margin=margin)
    differ = [f'{k} {v} (the weights have {have.get(k)})' for k, v in asked.items()
              if v is not None and have.get(k) != v]
    if differ:
        raise ValueError(f'{path} fixes the network and its box; asked for {", ".join(differ)}. '
                         f'Leave them unset to fine-tune, or train a new network from scratch.')
    return (spacing if spacing is not None else trained['spacing'],
            margin if margin is not None else trained['margin'])


def train(train_folders, valid_folders, out, arch=None, epochs=10, steps_per_epoch=200,
          batch=4, patch=24, lr=1e-3, weight_decay=1e-4, warmup=100, spacing=None,
          margin=None, cache_dir=None, device=None, seed=0, max_valid=50, progress=True,
          init_weights=None, sitting_epochs=None, max_minutes=None, context=0,
          coulomb_weight=0.0, max_train=None, loader_workers=1, guess_valid=0,
          folder_weights=None, cpu_bf16=False, valid_every=1, ema_decay=None,
          near_nucleus=None, smooth_loss=None):
    """Train (or resume, when ``out`` holds a checkpoint) and write ``out/weights.pt``.

    The schedule spans ``epochs``; one call (a "sitting") stops early after ``sitting_epochs``
    epochs or the first epoch that ends past ``max_minutes``, and the same call again resumes.
    ``max_train`` keeps the first that many training samples (in the data's fixed order: the
    points of a learning curve); ``context``, ``coulomb_weight`` and ``loader_workers`` (0:
    boxes are built in this process) are described in the module docstring.  ``guess_valid``
    > 0 adds, after each epoch, the projected-guess NMAE of the first that many validation
    samples (:func:`guess_nmae`; about a second of PySCF per molecule).  Each validation
    folder is measured on its own (``valid_by_folder`` when there are several; the first
    folder's figures are the epoch's ``valid_*``), on at most ``max_valid`` samples.  The
    settings that shape the run are stored in the checkpoint, and resuming with other ones is
    refused; the training data may grow between sittings (each epoch records how many samples
    it drew from).  ``init_weights`` without sub-voxel upsampling and ``arch`` asking for
    ``upsample=2`` start a network with a twice finer output from them (:func:`refine_output`);
    ``init_weights`` without the charge input and ``arch`` asking for ``charge_input`` start a
    network that takes the molecule's charge from them (:func:`add_charge_input`); a flat
    ``init_weights`` and ``arch`` asking for ``levels`` add a multi-scale branch to them
    (:func:`add_branch`); ``arch`` asking for more ``blocks`` than ``init_weights`` have adds
    residual blocks that start at zero (:func:`add_blocks`).
    A run from ``init_weights`` first measures those weights on the validation
    sets (``start_valid`` in the checkpoint and the weights' metadata).  ``folder_weights``
    (one per training folder) draws each folder's samples with that share of the steps, however
    many samples it holds (default: every sample alike, so the larger folder dominates).
    ``cpu_bf16``: bfloat16 autocast for the training steps on CPU too (see the module docstring).
    ``valid_every`` validates only every that many epochs, and always on the last epoch of a
    sitting and of the run (the others are recorded without ``valid_*`` figures); like
    ``cpu_bf16`` and ``guess_valid`` it belongs to the sitting, not to the recipe.
    ``ema_decay`` (e.g. 0.998) keeps an exponential moving average of the weights, updated
    after every step (:class:`torch.optim.swa_utils.AveragedModel`): validation and the
    written weights are the average's, which does not swing with the last steps' patches as
    the raw weights do.  It is part of the recipe and of the checkpoint.
    ``near_nucleus`` (a table of :func:`pyscf_mlguess.train.near_nucleus.mean_profiles`; by
    default the ``init_weights``' own, if any) makes the targets delta_rho less those
    near-nucleus terms; the weights carry the table, and their predictor adds the terms back.
    ``smooth_loss`` (sigma in Bohr, weight) adds the blurred-error term of the module
    docstring; part of the recipe.

    Returns the history: one dict per epoch with the training loss and validation NMAE.
    """
    from tqdm import tqdm
    if valid_every < 1:
        raise ValueError(f'valid_every {valid_every}: validate every 1 or more epochs')
    rank, world = _setup_distributed()
    device = _device(rank, device)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(seed)
    if init_weights is not None:              # fine-tuning starts from existing weights
        model, meta = load_weights(init_weights)
        if model.upsample == 1 and (arch or {}).get('upsample') == 2:
            # a twice finer output from a coarse network: its body, and an upsampling stage
            # that starts as the interpolation of its output (model.refine_output)
            model = refine_output(model)
            meta = dict(meta, output_spacing=meta['output_spacing'] / 2)
        if (arch or {}).get('charge_input') and not model.charge_input:
            # the molecule's charge as a new input, whose filters start at zero
            # (model.add_charge_input): the run starts where the weights stand
            model = add_charge_input(model)
        if (arch or {}).get('blocks', 0) > model.arch['blocks']:
            # residual blocks added at zero (model.add_blocks): the run starts where it stood
            model = add_blocks(model, arch['blocks'])
        if (arch or {}).get('levels') and model.branch is None:
            # a multi-scale branch whose way back starts at zero (model.add_branch)
            model = add_branch(model, arch['levels'], arch.get('level_blocks', LEVEL_BLOCKS))
        spacing, margin = _as_trained(init_weights, model, meta, arch, spacing, margin)
        if near_nucleus is None:
            near_nucleus = meta.get('near_nucleus')
    else:
        model = DensitySR(**(arch or {}))
    arch = model.arch
    upsample = model.upsample
    model.to(device)
    elements = arch.get('elements')
    train_set = DensityDataset(train_folders, spacing, margin, upsample, cache_dir=cache_dir,
                               elements=elements, near_nucleus=near_nucleus)
    # one validation set per folder (QM9 and derived molecules are measured apart), each of at
    # most max_valid samples; the first folder's figures are the run's headline
    valid_sets = {str(folder): DensityDataset([folder], spacing, margin, upsample,
                                              cache_dir=cache_dir, elements=elements,
                                              near_nucleus=near_nucleus)
                  for folder in valid_folders}
    for valid_set in valid_sets.values():
        valid_set.keep_first(max_valid)
    train_set.keep_first(max_train)
    if not len(train_set):
        raise ValueError(f'no converged samples in {train_folders}')
    probabilities = _sample_probabilities(train_set, train_folders, folder_weights)
    recipe = dict(arch=arch, epochs=epochs, steps_per_epoch=steps_per_epoch, batch=batch,
                  patch=patch, lr=lr, weight_decay=weight_decay, warmup=warmup,
                  spacing=train_set.spacing, margin=train_set.margin, seed=seed,
                  context=context, coulomb_weight=coulomb_weight,
                  max_train=max_train, max_valid=max_valid)
    if folder_weights is not None:                 # only when set: older recipes lack it
        recipe['folder_weights'] = [float(w) for w in folder_weights]
    if near_nucleus:                               # likewise; the table, by its content
        recipe['near_nucleus'] = hashlib.sha256(
            json.dumps(near_nucleus, sort_keys=True).encode()).hexdigest()[:16]
    if smooth_loss is not None:                    # likewise
        values = [float(v) for v in smooth_loss]
        if len(values) != 2 or min(values) <= 0:
            raise ValueError(f'smooth_loss {smooth_loss}: (sigma in Bohr, weight), both > 0')
        smooth_loss = recipe['smooth_loss'] = values
    if ema_decay is not None:                      # likewise
        if not 0 < ema_decay < 1:
            raise ValueError(f'ema_decay {ema_decay}: a decay per step in (0, 1)')
        recipe['ema_decay'] = float(ema_decay)
    recipe = json.loads(json.dumps(recipe))       # as stored: lists, not tuples
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    ema = None if ema_decay is None else torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema_decay),
        use_buffers=True)
    # what is validated and written: the average when there is one
    kept = model if ema is None else ema.module
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, total))
    steps = StepPatches(train_set, batch, patch, upsample, context, seed, rank, probabilities)
    history, start_epoch, start_valid = [], 0, None
    ckpt_path = os.path.join(out, CHECKPOINT)
    if os.path.exists(ckpt_path):
        ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
        model.load_state_dict(ckpt['model'])
        opt.load_state_dict(ckpt['optimizer'])
        sched.load_state_dict(ckpt['scheduler'])
        if ema is not None:
            ema.load_state_dict(ckpt['ema'])
        torch.set_rng_state(ckpt['torch_rng'])
        history = json.loads(ckpt['history'])
        start_epoch = ckpt['epoch']
        start_valid = json.loads(ckpt.get('start_valid', 'null'))
        stored = json.loads(ckpt.get('recipe', 'null'))     # runs before recipes: no check
        if stored is not None and stored != recipe:
            changed = sorted(k for k in set(recipe) | set(stored)
                             if stored.get(k) != recipe.get(k))
            raise ValueError(f'{ckpt_path} was trained with other settings ({", ".join(changed)}'
                             f'); resume with the same ones, or start a new run folder.')
    if init_weights is not None and start_epoch == 0 and rank == 0:
        # the weights as given, measured like every epoch: whether fine-tuning helped is on
        # record (the selection is made on validation, never on the test split)
        start_valid = _validate_each(kept, valid_sets, device, guess_valid)
    if device.type == 'cpu' and cpu_bf16 and not cpu_has_native_bf16():
        warnings.warn('cpu_bf16 (--cpu-bf16) declined: this CPU has no native bfloat16 '
                      '(AVX512-BF16 or AMX), where bfloat16 steps run some forty times slower '
                      'than float32 (docs/training.md); this sitting trains in float32')
        cpu_bf16 = False
    use_amp = device.type == 'cuda' or (device.type == 'cpu' and cpu_bf16)
    spectra = {}
    t_start = time.perf_counter()
    last = epochs if sitting_epochs is None else min(epochs, start_epoch + sitting_epochs)
    # One loader for the sitting.  Workers are spawned, not forked: PySCF's OpenMP runtime
    # (libgomp) hangs in a forked child once the parent has used it.
    loader = iter(torch.utils.data.DataLoader(
        steps, sampler=range(start_epoch * steps_per_epoch, last * steps_per_epoch),
        batch_size=None, collate_fn=_as_is, num_workers=loader_workers,
        multiprocessing_context='spawn' if loader_workers else None,
        worker_init_fn=_loader_worker_init if loader_workers else None))
    for epoch in range(start_epoch, last):
        model.train()
        losses = []
        t0 = time.perf_counter()
        bar = tqdm(itertools.islice(loader, steps_per_epoch), desc=f'epoch {epoch + 1}/{epochs}',
                   total=steps_per_epoch, disable=not progress or rank != 0)
        for patches in bar:
            opt.zero_grad(set_to_none=True)
            loss_sum = 0.0
            for item in patches:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    pred = net(item['x'].to(device), item['electrons'])
                loss = patch_loss(pred, item, train_set.spacing, coulomb_weight, spectra,
                                  device, smooth_loss) / batch
                loss.backward()
                loss_sum += float(loss.detach())
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            losses.append(loss_sum)
            bar.set_postfix(loss=f'{numpy.mean(losses[-20:]):.2e}',
                            lr=f'{sched.get_last_lr()[0]:.1e}')
        entry = {'epoch': epoch + 1, 'train_patch_loss': float(numpy.mean(losses)),
                 'train_samples': len(train_set),
                 'seconds': time.perf_counter() - t0, 'bf16': use_amp}
        out_of_time = (max_minutes is not None
                       and time.perf_counter() - t_start > 60 * max_minutes)
        if rank == 0:
            if out_of_time or epoch + 1 == last or (epoch + 1) % valid_every == 0:
                by_folder = _validate_each(kept, valid_sets, device, guess_valid)
                if by_folder:
                    entry.update(next(iter(by_folder.values())))
                if len(by_folder) > 1:
                    entry['valid_by_folder'] = by_folder
            history.append(entry)
            state = {'model': model.state_dict(), 'optimizer': opt.state_dict(),
                     'scheduler': sched.state_dict(),
                     'torch_rng': torch.get_rng_state(), 'epoch': epoch + 1,
                     'history': json.dumps(history), 'arch': arch,
                     'start_valid': json.dumps(start_valid),
                     'recipe': json.dumps(recipe)}
            if ema is not None:
                state['ema'] = ema.state_dict()
            torch.save(state, ckpt_path + '.tmp')
            os.replace(ckpt_path + '.tmp', ckpt_path)
            if progress:
                print(json.dumps(entry), flush=True)
        if out_of_time:
            break
    if rank == 0:
        rec = train_set.records[0]
        meta = {'xc': rec['xc'], 'basis': rec['basis'],
                'input_spacing': train_set.spacing * upsample, 'output_spacing': train_set.spacing,
                'margin': train_set.margin,
                'elements': sorted({e for r in train_set.records for e in r['elements']}),
                'charges': sorted({int(r['charge']) for r in train_set.records}),
                'spins': sorted({int(r['spin']) for r in train_set.records}),
                'train_samples': len(train_set),
                'valid_samples': sum(len(v) for v in valid_sets.values()),
                'train_folders': [str(f) for f in train_folders],
                'history': json.dumps(history), 'recipe': json.dumps(recipe),
                'start_valid': json.dumps(start_valid),
                'valid_nmae': history[-1].get('valid_nmae') if history else None}
        if near_nucleus:
            meta['near_nucleus'] = near_nucleus
        save_weights(os.path.join(out, 'weights.pt'), kept, meta)
    return history
