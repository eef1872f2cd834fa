"""Torch ``Dataset`` of (SAD density, target delta_rho) boxes built on demand from stored samples.

The input is the SAD density on the model's input box (spacing ``spacing * upsample``); the target
is the exact correction ``rho[D] - rho[D_SAD]`` on the box refined ``upsample`` times (the layout
of a 3D pixel shuffle, :meth:`pyscf_mlguess.grid.UniformGrid.refine`).  Both come from the
compact samples of :mod:`pyscf_mlguess.data.store`; an optional cache folder keeps the boxes
(float32 npz) so later epochs skip the AO evaluation.

Augmentation draws one of the 48 symmetries of the cube (axis permutation and reflections) and
applies it to input and target alike: the box is centred on the molecule, so this is the same
molecule rotated by multiples of 90 degrees or mirrored.
"""

import hashlib
import os

import numpy
import torch
from pyscf import gto

from pyscf_mlguess import config
from pyscf_mlguess.data import store
from pyscf_mlguess.grid import (density_on_grid, make_grid, near_nucleus_terms,
                                sad_density_matrix, sad_density_on_grid)

#: Default ratio of input (SAD) to output (delta_rho) spacing: the model's sub-voxel upsampling.
UPSAMPLE = 2
#: How boxes are oriented (part of the box cache's key: boxes cached before are not reused).
BOX_FRAME = 'principal-axes'


def molecule_of(record):
    """The PySCF molecule of a stored sample."""
    return gto.M(atom=list(zip(record['elements'], record['coords_bohr'])), unit='Bohr',
                 basis=record['basis'], charge=record['charge'], spin=record['spin'], verbose=0)


def boxes_of(record, spacing, margin, upsample, elements=None):
    """(rho_sad on the input box, delta_rho on the refined box, input grid) of one sample;
    ``elements``: the element channels of the SAD image, if any."""
    mol = molecule_of(record)
    dm = store.density_matrix_from_orbitals(record['mo_occ_coeff'], mol.intor('int1e_ovlp'))
    dm_sad = sad_density_matrix(mol)[0]
    grid = make_grid(mol, spacing * upsample, margin)
    rho_sad = sad_density_on_grid(mol, grid, dm_sad, elements=elements)
    fine = grid.refine(upsample) if upsample > 1 else grid
    return rho_sad, density_on_grid(mol, dm - dm_sad, fine), grid


def cube_symmetry(generator=None):
    """A random element of the cube's symmetry group: (axis permutation, axes to reflect)."""
    perm = torch.randperm(3, generator=generator).tolist()
    flips = [a for a in range(3) if torch.rand((), generator=generator) < 0.5]
    return perm, flips


def apply_cube_symmetry(array, perm, flips):
    """Apply a symmetry to the last three axes of ``array`` (numpy or torch)."""
    lead = list(range(array.ndim - 3))
    axes = lead + [len(lead) + p for p in perm]
    if isinstance(array, torch.Tensor):
        out = array.permute(*axes)
        return out.flip([len(lead) + a for a in flips]) if flips else out
    out = numpy.transpose(array, axes)
    return numpy.flip(out, [len(lead) + a for a in flips]) if flips else out


class DensityDataset(torch.utils.data.Dataset):
    """Samples of one or more dataset folders (``ROOT/<xc>_<basis>/<split>``) as boxes.

    Each item is a dict: ``'sad'`` (C, nx, ny, nz; C = 1, or 1 + the element channels of
    ``elements``, total first) and ``'delta_rho'`` (1, u*nx, u*ny, u*nz; less the
    near-nucleus terms of the table ``near_nucleus`` when given,
    :mod:`pyscf_mlguess.train.near_nucleus`) float32 tensors (e/Bohr^3), ``'voxel_volume'`` of
    the target box, ``'n_electrons'``, the molecule's ``'charge'``, ``'key'``.  Boxes differ in
    size between molecules; crop patches for batching.
    """

    def __init__(self, folders, spacing=None, margin=None, upsample=UPSAMPLE, augment=False,
                 cache_dir=None, generator=None, elements=None, near_nucleus=None):
        if isinstance(folders, (str, os.PathLike)):
            folders = [folders]
        self.records, self.folder_index = [], []     # folder_index: the folder of each record
        for i, folder in enumerate(folders):
            records = list(store.iter_records(folder))
            self.records += records
            self.folder_index += [i] * len(records)
        self.spacing = config.GRID_SPACING if spacing is None else float(spacing)
        self.margin = config.GRID_MARGIN if margin is None else float(margin)
        self.upsample = int(upsample)
        self.augment = augment
        self.cache_dir = cache_dir
        self.generator = generator
        self.elements = list(elements) if elements else None
        self.near_nucleus = near_nucleus

    def __len__(self):
        return len(self.records)

    def keep_first(self, n):
        """Keep the first ``n`` samples (None: all), with their folders."""
        self.records = self.records[:n]
        self.folder_index = self.folder_index[:n]
        return self

    def _cache_path(self, record):
        tag = f"{record['key']}|{record['xc']}|{record['basis']}|{self.spacing}|{self.margin}|" \
              f"{self.upsample}|{record['e_tot']!r}|{BOX_FRAME}" + \
              (f"|{','.join(self.elements)}" if self.elements else '')
        name = hashlib.sha256(tag.encode()).hexdigest()[:20]
        return os.path.join(self.cache_dir, f"{record['key']}-{name}.npz")

    def boxes(self, index):
        """(rho_sad, delta_rho) of sample ``index`` as float32 arrays, from the cache if any."""
        record = self.records[index]
        path = self._cache_path(record) if self.cache_dir else None
        if path and os.path.exists(path):
            with numpy.load(path) as f:
                return f['sad'], f['delta_rho']
        sad, delta, _ = boxes_of(record, self.spacing, self.margin, self.upsample,
                                 self.elements)
        sad, delta = sad.astype(numpy.float32), delta.astype(numpy.float32)
        if path:
            os.makedirs(self.cache_dir, exist_ok=True)
            tmp = path + f'.{os.getpid()}.tmp.npz'
            numpy.savez(tmp, sad=sad, delta_rho=delta)
            os.replace(tmp, path)
        return sad, delta

    def near_nucleus_part(self, index):
        """The near-nucleus terms (``near_nucleus``, a weights file's table) of sample ``index``
        on its target box (float32): what the target leaves to them."""
        mol = molecule_of(self.records[index])
        grid = make_grid(mol, self.spacing * self.upsample, self.margin)
        fine = grid.refine(self.upsample) if self.upsample > 1 else grid
        return near_nucleus_terms(mol, self.near_nucleus).on_grid(fine).astype(numpy.float32)

    def __getitem__(self, index):
        return self.item(index, self.generator if self.augment else None)

    def item(self, index, symmetry_generator=None):
        """Item ``index``, turned by a random cube symmetry drawn from ``symmetry_generator``
        when one is given."""
        record = self.records[index]
        sad, delta = self.boxes(index)
        if self.near_nucleus:
            delta = delta - self.near_nucleus_part(index)
        sad = torch.from_numpy(numpy.ascontiguousarray(sad))
        sad = sad[None] if sad.ndim == 3 else sad
        delta = torch.from_numpy(numpy.ascontiguousarray(delta))[None]
        if symmetry_generator is not None:
            perm, flips = cube_symmetry(symmetry_generator)
            sad = apply_cube_symmetry(sad, perm, flips).contiguous()
            delta = apply_cube_symmetry(delta, perm, flips).contiguous()
        return {'sad': sad, 'delta_rho': delta,
                'voxel_volume': (self.spacing) ** 3,
                'n_electrons': int(sum(gto.charge(e) for e in record['elements'])
                                   - record['charge']),
                'charge': int(record['charge']), 'key': record['key']}
