"""Stage 2 of the guess: the predictor that turns the SAD image into a density correction.

A *predictor* is any object with

* ``input_spacing`` and ``margin``: the box (Bohr) it needs its input on, or ``None`` when it
  works on any box;
* optionally ``refine`` (its output grid is the input grid refined this many times; default 1)
  and ``memory_bytes(grid)`` (the host memory one call needs at its peak, output included;
  default 16 bytes per output point), which the guess checks against ``max_memory``;
* optionally ``input_elements``: element symbols whose SAD densities it takes as extra input
  channels (``rho_sad`` is then (1 + n, ...) with the total first,
  :func:`pyscf_mlguess.grid.sad_density_on_grid`); default none;
* ``__call__(mol, grid, rho_sad) -> DensityField``: the correction ``delta_rho`` to the SAD
  density as a :class:`~pyscf_mlguess.field.DensityField`, on ``grid`` itself or on a finer grid
  covering the same voxels (:meth:`pyscf_mlguess.grid.UniformGrid.refine`).

The pretrained residual 3D CNN (:class:`DensitySR`, wrapped by :class:`CNNPredictor`) is such a
predictor; :func:`load_predictor` finds the weights that match an SCF object's functional.  Without
weights it raises :class:`WeightsNotFoundError`: the ``'mlsr'`` guess never quietly replaces the
model with something else.  :class:`ZeroPredictor` (delta_rho = 0, i.e. the plain SAD density
projected) exists for tests and comparisons and is only ever used when asked for by name.

The network is "image super-resolution" for densities (arXiv:2402.12335): a convolutional head,
residual blocks without normalisation layers (EDSR-style residual scaling; a normalisation over
the box would make the output depend on the box and break tiling), a global skip, one sub-voxel
upsampling stage (3D pixel shuffle, the layout of :meth:`UniformGrid.refine`) and a convolutional
tail.  Only convolutions: translation-equivariant by construction.  Large boxes run in tiles with
a halo of the receptive field, which gives the untiled result.
"""

import hashlib
import os
import re
from importlib import resources

import numpy
import torch
from torch import nn

from pyscf_mlguess import config
from pyscf_mlguess.field import DensityField
from pyscf_mlguess.grid import near_nucleus_terms

#: Weight families: the functional each pretrained model was trained on.
PURE_FAMILY = 'pbe'
HYBRID_FAMILY = 'b3lyp'

#: Residual blocks per level of a multi-scale branch unless a network says otherwise.
LEVEL_BLOCKS = 2


class WeightsNotFoundError(RuntimeError):
    """No pretrained weights are available for the requested functional."""


class ZeroPredictor:
    """delta_rho = 0: the SAD density itself goes through the projection (for tests and the
    ``sad`` baseline; never picked automatically)."""
    input_spacing = None
    margin = None

    def __call__(self, mol, grid, rho_sad):
        return DensityField(numpy.zeros(grid.shape), grid)

    def __repr__(self):
        return 'ZeroPredictor()'


def xc_family(xc, spin=0):
    """'pbe' for LDA/GGA/meta-GGA functionals, 'b3lyp' for hybrids and 'hf'."""
    from pyscf import dft
    omega, alpha, hyb = dft.numint.NumInt().rsh_and_hybrid_coeff(xc, spin=spin)
    return HYBRID_FAMILY if (hyb or alpha) else PURE_FAMILY


def weights_family(mf):
    """The weights family of an SCF object: :func:`xc_family` of its functional; Hartree-Fock
    objects are hybrids."""
    from pyscf import dft
    if not isinstance(mf, dft.rks.KohnShamDFT):
        return HYBRID_FAMILY
    return xc_family(mf.xc, spin=mf.mol.spin)


def shipped_weights_folder():
    """The folder of the weights shipped with the package.

    An installed package carries them as ``pyscf_mlguess.weights``; a source checkout imported
    from the repository root (``python -c`` there) has no such subpackage, and its weights are
    the top-level ``weights/`` folder that setup.py maps into it."""
    try:
        return resources.files('pyscf_mlguess.weights')
    except ModuleNotFoundError:
        return resources.files('pyscf_mlguess').joinpath(os.pardir, 'weights')


def _version_key(name, family):
    """(0, 2) for ``pbe-0.2.pt`` of family ``pbe``; ``None`` for any other file name."""
    m = re.fullmatch(re.escape(family) + r'-(\d+(?:\.\d+)*)\.pt', name)
    return tuple(int(p) for p in m.group(1).split('.')) if m else None


def _in_folder(folder, family):
    """The weights of ``family`` in ``folder``: ``<family>.pt`` if there is one (a folder of the
    user's own), else the newest version ``<family>-<version>.pt`` (the shipped folder), else
    the path that was looked for."""
    plain = os.path.join(folder, f'{family}.pt')
    versions = [(key, name) for name in os.listdir(folder)
                if (key := _version_key(name, family)) is not None]
    if os.path.isfile(plain) or not versions:
        return plain
    return os.path.join(folder, max(versions)[1])


def shipped_version(name):
    """Path of the shipped weights file ``name`` (``'pbe-0.1'`` or ``'pbe-0.1.pt'``), or
    ``None`` when the package ships no such file: how a user pins one version."""
    name = name if name.endswith('.pt') else name + '.pt'
    if os.sep in name or name not in _shipped_hashes():
        return None
    return str(shipped_weights_folder() / name)


def find_weights(family, path=None):
    """Path of the weights for ``family``: ``path`` if given, else the file or folder named by
    ``$PYSCF_MLGUESS_WEIGHTS``, else the newest version shipped in the package.

    In a folder, ``<family>.pt`` is taken if present, else the newest ``<family>-<version>.pt``.
    Raises :class:`WeightsNotFoundError` listing every place that was searched.
    """
    searched = []
    candidates = []
    if path is not None:
        candidates.append(str(path))
    elif os.environ.get(config.WEIGHTS_ENV):
        candidates.append(os.environ[config.WEIGHTS_ENV])
    else:
        candidates.append(str(shipped_weights_folder()))
    for cand in candidates:
        target = _in_folder(cand, family) if os.path.isdir(cand) else cand
        searched.append(target)
        if os.path.isfile(target):
            return target
    raise WeightsNotFoundError(
        f"No pretrained mlsr weights for the {family.upper()} family (searched: "
        f"{', '.join(searched)}), so init_guess='mlsr' cannot run; set mf.mlsr_predictor to "
        f"a shipped version ({', '.join(sorted(_shipped_hashes())) or 'none shipped'}), a "
        f"weights file or a predictor of your own, or point ${config.WEIGHTS_ENV} to a "
        f"weights file or folder.")


# ----------------------------------------------------------------------------- the network

class PixelShuffle3d(nn.Module):
    """(N, C*f^3, D, H, W) -> (N, C, f*D, f*H, f*W); sub-voxel (a, b, c) of voxel (i, j, k) lands
    at (f*i + a, f*j + b, f*k + c), the layout of :meth:`UniformGrid.refine`."""

    def __init__(self, factor):
        super().__init__()
        self.factor = int(factor)

    def forward(self, x):
        n, c, d, h, w = x.shape
        f = self.factor
        x = x.reshape(n, c // f**3, f, f, f, d, h, w)
        return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(n, c // f**3, d * f, h * f, w * f)


def _conv(cin, cout, kernel):
    # Replicate padding: the box face continues the (near-constant) vacuum around the molecule
    # instead of showing the network an artificial edge; tiles stay exact (the halo covers it).
    return nn.Conv3d(cin, cout, kernel, padding=kernel // 2, padding_mode='replicate')


class ResidualBlock(nn.Module):
    """conv -> PReLU -> conv, added to the input with a small scale (no normalisation)."""

    def __init__(self, channels, kernel, res_scale):
        super().__init__()
        self.conv1 = _conv(channels, channels, kernel)
        self.act = nn.PReLU(channels)
        self.conv2 = _conv(channels, channels, kernel)
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.res_scale * self.conv2(self.act(self.conv1(x)))


class CoarseBranch(nn.Module):
    """The multi-scale (U-Net-like) part of :class:`DensitySR`: halve the resolution (2³
    convolution, stride 2, channels doubled), residual blocks there, the next coarser branch
    (added), and back to the finer grid (2³ transposed convolution, stride 2).  Its output is
    added to the finer features, so it widens the receptive field by about ``2**level`` voxels
    per coarse block for an eighth of the voxels per level."""

    def __init__(self, channels, blocks, kernel, res_scale, levels):
        super().__init__()
        coarse = 2 * channels
        self.down = nn.Sequential(nn.Conv3d(channels, coarse, 2, stride=2), nn.PReLU(coarse))
        self.blocks = nn.Sequential(*[ResidualBlock(coarse, kernel, res_scale)
                                      for _ in range(blocks)])
        self.inner = (CoarseBranch(coarse, blocks, kernel, res_scale, levels - 1)
                      if levels > 1 else None)
        self.up = nn.ConvTranspose3d(coarse, channels, 2, stride=2)

    def radius(self, kernel, blocks):
        """Finer-grid voxels on each side that an output voxel depends on (an upper bound: the
        2³ stride-2 steps add one finer voxel of alignment)."""
        inner = self.inner.radius(kernel, blocks) if self.inner is not None else 0
        return 1 + 2 * (2 * blocks * (kernel // 2) + inner)

    def forward(self, x):
        h = self.blocks(self.down(x))
        if self.inner is not None:
            h = h + self.inner(h)
        return self.up(h)


class DensitySR(nn.Module):
    """Residual 3D CNN: SAD density on the input box -> delta_rho on the box refined
    ``upsample`` times.

    The input transform (log of the density) and the output scale are part of the module, so
    the weights file alone defines the map from e/Bohr^3 to e/Bohr^3.

    The output is gated by the SAD density, ``rho / (rho + gate_density)`` of each input voxel
    (so 1 wherever there are electrons and falling linearly with the density in the tails):
    without it, the network's small constant output in the vacuum, summed over a box that is
    mostly vacuum, was the largest single error after training (measured: 0.03 NMAE of a
    validation molecule from voxels where the SAD density is below 1e-6).  ``gate_density=0``
    turns the gate off.

    ``levels > 0`` adds a multi-scale branch after the head (:class:`CoarseBranch`, nested
    ``levels`` deep with ``level_blocks`` residual blocks per level): the flat stack sees a few
    Bohr, the branch several more for little cost.  The input is then padded (replicate) to a
    multiple of ``2**levels`` voxels per edge and the output cropped back, so any box works; tiles
    must start on multiples of :attr:`alignment` (:func:`predict_tiled` does so).

    ``elements`` (element symbols) makes the input an image with element channels (see
    :func:`pyscf_mlguess.grid.sad_density_on_grid`): the total SAD density, then each listed
    element's part, which the network sees as fractions of the total (so it need not infer the
    element from the shape of a peak).

    ``charge_input`` adds one more input channel, constant over the box: the molecule's extra
    electrons over its neutral atoms (``-mol.charge``), which :meth:`forward` then needs.  The
    SAD density is that of neutral atoms, so without it an ion looks like its neutral molecule
    and the network cannot tell where the extra electron or the hole goes (docs/design.md,
    "Ions").
    """

    def __init__(self, channels=16, blocks=4, kernel=3, head_kernel=5, upsample=2,
                 up_channels=4, res_scale=0.1, density_floor=1e-5, output_scale=0.05,
                 gate_density=1e-3, levels=0, level_blocks=LEVEL_BLOCKS, elements=None,
                 charge_input=False):
        super().__init__()
        self.arch = dict(channels=channels, blocks=blocks, kernel=kernel, head_kernel=head_kernel,
                         upsample=upsample, up_channels=up_channels, res_scale=res_scale,
                         density_floor=density_floor, output_scale=output_scale,
                         gate_density=gate_density)
        # options left at their defaults keep the architecture dict of the v0.1 weights files
        if levels:
            self.arch.update(levels=levels, level_blocks=level_blocks)
        if elements:
            self.arch.update(elements=list(elements))
        if charge_input:
            self.arch.update(charge_input=True)
        self.input_elements = tuple(elements) if elements else None
        self.charge_input = bool(charge_input)
        n_in = 1 + (len(elements) if elements else 0) + self.charge_input
        self.head = nn.Sequential(_conv(n_in, channels, head_kernel), nn.PReLU(channels))
        self.branch = (CoarseBranch(channels, level_blocks, kernel, res_scale, levels)
                       if levels > 0 else None)
        self.body = nn.Sequential(*[ResidualBlock(channels, kernel, res_scale)
                                    for _ in range(blocks)],
                                  _conv(channels, channels, kernel))
        if upsample > 1:
            self.up = nn.Sequential(_conv(channels, up_channels * upsample**3, kernel),
                                    PixelShuffle3d(upsample), nn.PReLU(up_channels))
            tail_in = up_channels
        else:
            self.up = nn.Identity()
            tail_in = channels
        self.tail = _conv(tail_in, 1, kernel)
        # Start from delta_rho = 0, i.e. from the SAD density: training can only improve on it.
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        self.upsample = int(upsample)
        self.register_buffer('density_floor', torch.tensor(float(density_floor)))
        self.register_buffer('output_scale', torch.tensor(float(output_scale)))
        self.gate_density = float(gate_density)

    @property
    def receptive_radius(self):
        """Input voxels on each side that an output voxel depends on."""
        a = self.arch
        k = a['kernel'] // 2
        coarse = a['head_kernel'] // 2 + (2 * a['blocks'] + 1) * k
        if self.branch is not None:
            coarse += self.branch.radius(a['kernel'], a['level_blocks'])
        if self.upsample > 1:
            coarse += k + -(-k // self.upsample)      # up conv, then the tail at fine spacing
        else:
            coarse += k
        return coarse

    @property
    def alignment(self):
        """Input voxels per edge that the multi-scale branch groups (1 for a flat network)."""
        return 2 ** self.arch.get('levels', 0)

    def features(self, rho_sad):
        total = rho_sad[:, :1].clamp(min=0)
        log = torch.log(total + self.density_floor)
        if rho_sad.shape[1] == 1:
            return log
        return torch.cat([log, rho_sad[:, 1:].clamp(min=0) / (total + self.density_floor)], 1)

    def forward(self, rho_sad, electrons=None):
        """rho_sad: (N, C, D, H, W) e/Bohr^3 (C = 1 + element channels; channel 0 the total)
        -> delta_rho (N, 1, fD, fH, fW) e/Bohr^3.  ``electrons``: each molecule's extra
        electrons over its neutral atoms (a number or (N,)); needed with ``charge_input``,
        ignored without."""
        x = self.features(rho_sad)
        if self.charge_input:
            if electrons is None:
                raise ValueError('this network takes the molecule\'s charge: call it with '
                                 'electrons = -mol.charge')
            e = torch.as_tensor(electrons, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1, 1)
            x = torch.cat([x, e.expand(x.shape[0], 1, *x.shape[2:])], 1)
        h = self.head(x)
        if self.branch is not None:
            a = self.alignment
            shape = h.shape[-3:]
            pad = [(-n) % a for n in shape]
            if any(pad):
                h = nn.functional.pad(h, (0, pad[2], 0, pad[1], 0, pad[0]), mode='replicate')
            h = (h + self.branch(h))[..., :shape[0], :shape[1], :shape[2]]
        h = h + self.body(h)
        out = self.tail(self.up(h)) * self.output_scale
        if self.gate_density > 0:
            rho = rho_sad[:, :1].clamp(min=0)
            gate = rho / (rho + self.gate_density)
            for axis in range(-3, 0):
                gate = gate.repeat_interleave(self.upsample, dim=axis)
            out = out * gate
        return out


def refine_output(model):
    """A copy of a network without sub-voxel upsampling whose output is twice as fine.

    The head, the multi-scale branch and the body are the network's own.  The new upsampling
    stage starts as the trilinear interpolation of the network's output: the up-convolution's
    first output channel repeats the old tail on every sub-voxel, its PReLU starts as the
    identity, and the new tail is the separable kernel (1/4, 1/2, 1/4), which on the repeated
    values interpolates linearly at the sub-voxel centres (:meth:`UniformGrid.refine`); the
    other up-channels start at PyTorch's default and enter the tail with weight zero.  Training
    at the finer spacing starts where the coarse network stands, not from the SAD density.
    """
    if model.upsample != 1:
        raise ValueError(f'refine_output takes a network without sub-voxel upsampling; this one '
                         f'has upsample {model.upsample}')
    arch = dict(model.arch, upsample=2)
    if arch['kernel'] != 3:
        raise ValueError(f"refine_output needs kernel 3 (linear interpolation); "
                         f"got {arch['kernel']}")
    fine = DensitySR(**arch)
    own = {k: v for k, v in model.state_dict().items() if not k.startswith('tail.')}
    missing, unexpected = fine.load_state_dict(own, strict=False)
    assert not unexpected and all(k.startswith(('up.', 'tail.')) for k in missing), missing
    with torch.no_grad():
        conv, prelu = fine.up[0], fine.up[2]
        conv.weight[:8] = model.tail.weight[0]          # output channel 0: sub-voxels 0..7
        conv.bias[:8] = model.tail.bias[0]
        prelu.weight[0] = 1.0
        k = torch.tensor([0.25, 0.5, 0.25])
        fine.tail.weight.zero_()
        fine.tail.weight[0, 0] = k[:, None, None] * k[None, :, None] * k[None, None, :]
        fine.tail.bias.zero_()
    return fine.eval()


def add_charge_input(model):
    """A copy of a network that also takes the molecule's charge (``charge_input``), with the
    new input's filters zero: it starts as the network it came from, for every charge, and
    training teaches it what an ion's charge changes."""
    if model.charge_input:
        raise ValueError('add_charge_input: this network already takes the charge')
    charged = DensitySR(**dict(model.arch, charge_input=True))
    own = model.state_dict()
    head = own.pop('head.0.weight')
    missing, unexpected = charged.load_state_dict(own, strict=False)
    assert not unexpected and missing == ['head.0.weight'], (missing, unexpected)
    with torch.no_grad():
        weight = charged.head[0].weight
        weight.zero_()
        weight[:, :head.shape[1]] = head
    return charged.eval()


def add_branch(model, levels, level_blocks=LEVEL_BLOCKS):
    """A copy of a flat network with a multi-scale branch (``levels``, ``level_blocks``; see
    :class:`DensitySR`) whose last step, the transposed convolution back to the finer grid,
    starts at zero: the copy starts as the network it came from, and training decides what the
    wider view adds."""
    if model.branch is not None:
        raise ValueError('add_branch: this network already has a multi-scale branch')
    if levels < 1:
        raise ValueError(f'add_branch: levels {levels}; a branch needs 1 or more')
    wider = DensitySR(**dict(model.arch, levels=levels, level_blocks=level_blocks))
    missing, unexpected = wider.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith('branch.') for k in missing), (missing,
                                                                              unexpected)
    with torch.no_grad():
        wider.branch.up.weight.zero_()
        wider.branch.up.bias.zero_()
    return wider.eval()


def add_blocks(model, blocks):
    """A copy of a network with ``blocks`` residual blocks in its body instead of fewer: the new
    blocks go after the old ones, before the body's last convolution, with their second
    convolution at zero, so each adds nothing and the copy starts as the network it came from
    (more capacity for a fine-tune to use; the receptive field grows by two kernel radii per
    new block on each side, so train it with the context to match)."""
    have = model.arch['blocks']
    if blocks <= have:
        raise ValueError(f'add_blocks: the network has {have} residual blocks; asked for '
                         f'{blocks}, and blocks are only added')
    deeper = DensitySR(**dict(model.arch, blocks=blocks))
    state = {}
    for key, value in model.state_dict().items():
        parts = key.split('.')
        if parts[0] == 'body' and int(parts[1]) == have:     # the body's last convolution
            key = '.'.join(['body', str(blocks)] + parts[2:])
        state[key] = value
    missing, unexpected = deeper.load_state_dict(state, strict=False)
    new = tuple(f'body.{i}.' for i in range(have, blocks))
    assert not unexpected and all(k.startswith(new) for k in missing), (missing, unexpected)
    with torch.no_grad():
        for block in deeper.body[have:blocks]:
            block.conv2.weight.zero_()
            block.conv2.bias.zero_()
    return deeper.eval()


#: An ion's net charge goes where the SAD density exceeds about this (e/Bohr^3): weight
#: rho / (rho + ION_CHARGE_DENSITY), flat inside the molecule and fading at its surface
#: (docs/design.md, "Ions").
ION_CHARGE_DENSITY = 0.003


def _on_output_grid(weight, f):
    for axis in range(-3, 0):
        weight = weight.repeat_interleave(f, dim=axis)
    return weight


def conserve_charge(delta_rho, rho_sad, electrons=0.0, voxel_volume=1.0):
    """Give a predicted correction the net charge ``electrons``: the molecule's electrons minus
    the SAD's (``-mol.charge``; SAD densities are of neutral atoms).

    For a neutral molecule whatever net charge the network predicts is an error of its shape and
    is removed in proportion to the SAD density, where the electrons are (removing it
    near-uniformly instead made the guesses worse; docs/design.md, "Ions").  For an ion the
    network's field is kept, charge included (a network trained on ions puts part of the extra
    electron or hole where it sits), and only its mismatch with ``electrons`` is placed, nearly
    uniformly over the molecule (:data:`ION_CHARGE_DENSITY`): the extra electron or the hole is
    in the valence shell, not in the cores.  Each input voxel's weight is spread over its
    sub-voxels.  ``voxel_volume``: of ``delta_rho``'s voxels (Bohr^3).  ``rho_sad``: (D, H, W),
    or (C, D, H, W) with the total in channel 0."""
    if rho_sad.ndim == 4:
        rho_sad = rho_sad[0]
    f = delta_rho.shape[-1] // rho_sad.shape[-1]
    rho = rho_sad.clamp(min=0)
    if float(rho.sum()) == 0:
        return delta_rho
    weight = rho if not electrons else rho / (rho + ION_CHARGE_DENSITY)
    weight = _on_output_grid(weight, f)
    missing = electrons / voxel_volume - delta_rho.sum()
    return delta_rho + weight * (missing / weight.sum())


def predict_tiled(model, rho_sad, tile=None, electrons=None):
    """Run ``model`` on a (D, H, W) input box (or (C, D, H, W) with element channels) in tiles of
    ``tile`` voxels per edge, each padded with a halo of the receptive field from its
    neighbours; equals the untiled output.  ``tile=None`` runs the whole box at once.
    ``electrons`` (``-mol.charge``) goes to a network that takes the charge."""
    f = model.upsample
    x = rho_sad[None, None] if rho_sad.ndim == 3 else rho_sad[None]
    x = x.contiguous(memory_format=torch.channels_last_3d)
    shape = tuple(rho_sad.shape[-3:])
    if tile is None or all(n <= tile for n in shape):
        return model(x, electrons)[0, 0]
    align = getattr(model, 'alignment', 1)
    halo = -(-model.receptive_radius // align) * align     # tiles start on the coarse grid
    tile = max(align, tile // align * align)
    out = torch.empty(tuple(n * f for n in shape), dtype=x.dtype, device=x.device)
    starts = [range(0, n, tile) for n in shape]
    for i in starts[0]:
        for j in starts[1]:
            for k in starts[2]:
                lo = [max(0, s - halo) for s in (i, j, k)]
                hi = [min(n, s + tile + halo) for s, n in zip((i, j, k), shape)]
                piece = model(x[..., lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], electrons)[0, 0]
                keep = [slice((s - l) * f, (min(s + tile, n) - l) * f)
                        for s, l, n in zip((i, j, k), lo, shape)]
                out[i * f:min(i + tile, shape[0]) * f, j * f:min(j + tile, shape[1]) * f,
                    k * f:min(k + tile, shape[2]) * f] = piece[tuple(keep)]
    return out



def predict_delta(model, rho_sad, electrons=0.0, voxel_volume=1.0, tile=None):
    """The correction the guess adds to the SAD density: :func:`predict_tiled`, then
    :func:`conserve_charge` to the net charge ``electrons`` (``-mol.charge``).  ``voxel_volume``:
    of the output grid (Bohr^3)."""
    delta = predict_tiled(model, rho_sad, tile, electrons=electrons)
    return conserve_charge(delta, rho_sad, electrons, voxel_volume)

def default_device():
    """``config.MODEL_DEVICE`` when set, else CUDA when available, else CPU."""
    if config.MODEL_DEVICE:
        return torch.device(config.MODEL_DEVICE)
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


# ------------------------------------------------------------------------------ weights files

WEIGHTS_FORMAT = 1


def save_weights(path, model, meta):
    """Write a weights file: architecture arguments, metadata and tensors only (loadable with
    ``torch.load(weights_only=True)``)."""
    torch.save({'format': WEIGHTS_FORMAT, 'arch': dict(model.arch), 'meta': dict(meta),
                'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()}},
               path)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _shipped_hashes():
    """{file name: SHA-256} from the package's ``SHA256SUMS`` table."""
    table = shipped_weights_folder() / 'SHA256SUMS'
    if not table.is_file():
        return {}
    out = {}
    for line in table.read_text().splitlines():
        if line.strip() and not line.startswith('#'):
            digest, name = line.split()
            out[name] = digest
    return out


#: What a weights file holds (see :func:`save_weights`); ``meta`` needs at least these keys.
_WEIGHTS_KEYS = ('format', 'arch', 'meta', 'state_dict')
_META_KEYS = ('xc', 'input_spacing', 'margin')


class WeightsFileError(ValueError):
    """A weights file that cannot be used; the message names the file and what is wrong."""


def _read_weights_blob(path):
    """The dict in a weights file, or :class:`WeightsFileError` saying why there is none."""
    try:
        blob = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:    # torch raises OSError, KeyError, UnpicklingError, RuntimeError
        raise WeightsFileError(
            f'{path} is not a readable pyscf-mlguess weights file: torch.load(weights_only=True) '
            f'failed with {type(err).__name__}: {err}. The file may be truncated or damaged, '
            f'not written by torch.save, or hold Python objects other than tensors.') from err
    if not isinstance(blob, dict):
        raise WeightsFileError(
            f'{path} holds a {type(blob).__name__}, not a pyscf-mlguess weights dict (keys '
            f'{", ".join(_WEIGHTS_KEYS)}); write weights with pyscf_mlguess.model.save_weights '
            f'or `pyscf-mlguess train`.')
    missing = [k for k in _WEIGHTS_KEYS if k not in blob]
    if missing:
        raise WeightsFileError(
            f'{path} is not a pyscf-mlguess weights file: it lacks {", ".join(missing)} (it has '
            f'{", ".join(map(str, blob)) or "no keys"}). A bare state_dict does not say which '
            f'network it belongs to; write weights with pyscf_mlguess.model.save_weights.')
    if blob['format'] != WEIGHTS_FORMAT:
        raise WeightsFileError(f'{path}: weights format {blob["format"]!r}, this version of '
                               f'pyscf_mlguess reads {WEIGHTS_FORMAT}.')
    missing = [k for k in _META_KEYS if k not in blob['meta']]
    if missing:
        raise WeightsFileError(f'{path}: its metadata lacks {", ".join(missing)}, which say what '
                               f'functional and input box the network was trained for.')
    return blob


def load_weights(path, expected_sha256=None):
    """(model, meta) from a weights file, after checking its SHA-256 when one is expected.

    A file that is not a usable weights file raises :class:`WeightsFileError` naming the file
    and the defect.
    """
    if expected_sha256 is not None:
        digest = sha256_of(path)
        if digest != expected_sha256:
            raise WeightsFileError(f'Weights file {path} has SHA-256 {digest}, expected '
                                   f'{expected_sha256}: the file is damaged or not the shipped '
                                   f'one.')
    blob = _read_weights_blob(path)
    try:
        model = DensitySR(**blob['arch'])
    except TypeError as err:
        raise WeightsFileError(f'{path}: its architecture {blob["arch"]} is not one DensitySR '
                               f'accepts ({err}).') from err
    try:
        model.load_state_dict(blob['state_dict'])
    except RuntimeError as err:
        raise WeightsFileError(f'{path}: its tensors do not fit the architecture it names '
                               f'({blob["arch"]}): {err}') from err
    model.eval()
    return model, blob['meta']


class CNNPredictor:
    """The trained network as a predictor: SAD box in, delta_rho out on the box refined
    ``model.upsample`` times, its net charge set so that SAD + delta_rho holds the molecule's
    electrons (:func:`conserve_charge`; the SAD is of neutral atoms, so ions differ).
    Weights trained with near-nucleus terms (``meta['near_nucleus']``,
    :mod:`pyscf_mlguess.train.near_nucleus`) predict the smooth rest on the box, and the field
    carries the terms, one radial profile per element without net charge, on the atoms.

    On CPU the network runs in the channels-last layout (oneDNN's fast path for 3D convolutions)
    with as many threads as PySCF uses (``lib.num_threads()``), so the guess honours the same
    thread setting as the SCF it starts.
    """

    def __init__(self, model, meta, device=None, tile=None, source=None):
        self.device = default_device() if device is None else torch.device(device)
        self.model = model.to(self.device, memory_format=torch.channels_last_3d).eval()
        self.meta = meta
        self.input_spacing = float(meta['input_spacing'])
        self.margin = float(meta['margin'])
        self.tile = config.MODEL_TILE if tile is None else tile
        self.source = source
        #: element channels the network takes (see :func:`~pyscf_mlguess.grid.sad_density_on_grid`)
        self.input_elements = model.input_elements

    @property
    def refine(self):
        return self.model.upsample

    def memory_bytes(self, grid):
        """Peak host memory (bytes) of one call on ``grid``: the largest tile's activations
        (on CPU) and the output.

        Per input voxel of a tile (float32): about four ``channels``-wide tensors live in a
        residual block, three ``up_channels * upsample**3``-wide ones around the pixel shuffle,
        and the input itself when it has element channels.
        Per output point: the float32 output, the gate, the charge-conservation weights and
        the float64 field.
        """
        a = self.model.arch
        f = self.model.upsample
        n_out = grid.size * f**3
        out = n_out * (3 * 4 + 8)
        if self.device.type != 'cpu':
            return out
        halo = self.model.receptive_radius
        edge = [n if self.tile is None or n <= self.tile else min(n, self.tile + 2 * halo)
                for n in grid.shape]
        per_voxel = 4 * (4 * a['channels'] + 3 * a['up_channels'] * f**3)
        if a.get('levels'):
            # the padded features, the branch's output and its coarse tensors (each level: four
            # of twice the channels on an eighth of the voxels, so at most one channels-wide)
            per_voxel += 4 * 3 * a['channels']
        if a.get('elements') or a.get('charge_input'):      # the tile's multi-channel input
            per_voxel += 4 * (1 + len(a.get('elements') or ()) + bool(a.get('charge_input')))
        return out + int(numpy.prod(edge)) * per_voxel

    @classmethod
    def from_file(cls, path, expected_sha256=None, **kwargs):
        model, meta = load_weights(path, expected_sha256)
        return cls(model, meta, source=str(path), **kwargs)

    def __call__(self, mol, grid, rho_sad):
        from pyscf import lib
        x = torch.as_tensor(numpy.asarray(rho_sad), dtype=torch.float32, device=self.device)
        out_grid = grid.refine(self.model.upsample) if self.model.upsample > 1 else grid
        threads = torch.get_num_threads()
        if self.device.type == 'cpu':
            torch.set_num_threads(lib.num_threads())
        try:
            with torch.inference_mode():
                delta = predict_delta(self.model, x, -mol.charge, out_grid.voxel_volume,
                                      self.tile)
        finally:
            torch.set_num_threads(threads)
        table = self.meta.get('near_nucleus')
        atoms = near_nucleus_terms(mol, table) if table else None
        return DensityField(delta.double().cpu().numpy(), out_grid, atoms)

    def __repr__(self):
        xc = self.meta.get('xc', '?')
        if self.meta.get('trained_xc'):
            xc += f" (trained on {self.meta['trained_xc']} densities)"
        return f"CNNPredictor({self.source or 'in memory'}, {xc}, device={self.device})"


def resolve_weights(family, path=None):
    """(file, shipped) of the weights :func:`load_predictor` takes for ``family`` with ``path``:
    a shipped version's name pins it, else :func:`find_weights`; ``shipped`` says whether the
    file is the package's own (then its hash is checked)."""
    pinned = shipped_version(str(path)) if path is not None and not os.path.exists(path) else None
    target = pinned or find_weights(family, path)
    return target, pinned is not None or (path is None and not os.environ.get(config.WEIGHTS_ENV))


def weights_id(path):
    """'<file name> sha256:<first 12 hex digits>': which weights a result was made with."""
    return f'{os.path.basename(path)} sha256:{sha256_of(path)[:12]}'


def load_predictor(mf, path=None, device=None):
    """The pretrained predictor for ``mf``'s functional (see :func:`weights_family`), on
    ``device`` (default :func:`default_device`).

    ``path`` may name a shipped version (``'pbe-0.1'``) to pin it; by default the newest
    shipped version of the family is used.  Shipped weights are checked against the package's
    SHA-256 table; weights given by path or ``$PYSCF_MLGUESS_WEIGHTS`` are the user's own and
    are loaded as they are.  Weights trained for the other family are used with a warning.
    """
    from pyscf.lib import logger
    target, shipped = resolve_weights(weights_family(mf), path)
    expected = None
    if shipped:
        expected = _shipped_hashes().get(os.path.basename(target))
        if expected is None:
            raise WeightsFileError(f'{target} is not listed in the package SHA256SUMS table.')
    else:
        logger.warn(mf, 'mlsr: weights %s are not the shipped ones and are loaded without a '
                    'checksum check (SHA-256 %s)', target, sha256_of(target))
    predictor = CNNPredictor.from_file(target, expected, device=device)
    trained = predictor.meta.get('xc')
    if trained and xc_family(trained) != weights_family(mf):
        logger.warn(mf, 'mlsr: weights %s were trained for %s, not for the %s family of this '
                    'calculation', target, trained, weights_family(mf).upper())
    return predictor
