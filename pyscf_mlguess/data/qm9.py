"""QM9 molecules from the ``qm9pack`` wheel, the fixed train/valid/test split and perturbed copies.

The split of a molecule is a pure function of its QM9 index (a SHA-256 hash), so it never depends
on which molecules were generated first, on the machine, or on the order of a run.  Perturbed
copies (conformers) inherit the split of their parent, so no test molecule leaks into training
through a displaced geometry.
"""

import csv
import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass

import numpy as np

#: Fractions of QM9 in train / valid / test.
SPLIT_FRACTIONS = {'train': 0.8, 'valid': 0.1, 'test': 0.1}
#: Fraction of molecules that also get one geometry-perturbed copy, and its displacement
#: (Angstrom).
PERTURB_FRACTION = 0.15
PERTURB_SIGMA = 0.03
_CSV_FILES = ('qm9_part1.csv', 'qm9_part2.csv', 'qm9_part3.csv')
_BARE_POINT = re.compile(r'\.(?=[,\]])')


@dataclass(frozen=True)
class Sample:
    """One geometry to compute: a QM9 molecule (conformer 0), a perturbed copy of it, a molecule
    derived from one (:mod:`.derived`: ``name`` and ``recipe`` set, ``qm9_index`` the parent's),
    or a molecule of the user's (``name`` set, ``qm9_index`` -1)."""
    qm9_index: int
    smiles: str
    elements: tuple
    coords_angstrom: np.ndarray
    conformer: int = 0
    perturb_seed: int = -1
    perturb_sigma: float = 0.0
    charge: int = 0
    spin: int = 0
    name: str = ''
    recipe: dict = None

    @property
    def key(self):
        if self.name:
            return self.name
        return f'qm9-{self.qm9_index:06d}-c{self.conformer}'

    @property
    def atom(self):
        """PySCF ``atom`` list (Angstrom)."""
        return [(e, tuple(float(x) for x in r))
                for e, r in zip(self.elements, self.coords_angstrom)]


def _unit_hash(text):
    """A number in [0, 1) from SHA-256: stable across machines and Python versions."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], 'big') / 2.0**64


def split_of(qm9_index):
    """'train', 'valid' or 'test' for a QM9 index; fixed forever by the hash rule."""
    u = _unit_hash(f'qm9-split:{qm9_index}')
    edge = 0.0
    for name, frac in SPLIT_FRACTIONS.items():
        edge += frac
        if u < edge:
            return name
    return 'test'


def generation_rank(qm9_index):
    """Order in which molecules of a split are generated (a random but fixed permutation)."""
    return _unit_hash(f'qm9-order:{qm9_index}')


def qm9_data_dir():
    """The folder of CSV files inside the installed ``qm9pack`` wheel.

    Found without importing ``qm9pack`` (its ``__init__`` needs pandas and pkg_resources).
    """
    spec = importlib.util.find_spec('qm9pack')
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("QM9 comes from the 'qm9pack' package: pip install '.[train]'")
    path = os.path.join(spec.submodule_search_locations[0], 'data')
    missing = [f for f in _CSV_FILES if not os.path.exists(os.path.join(path, f))]
    if missing:
        raise FileNotFoundError(f'qm9pack is installed but lacks {missing} in {path}')
    return path


def iter_qm9(data_dir=None):
    """Yield (index, smiles, elements, coords in Angstrom) for every QM9 molecule."""
    data_dir = data_dir or qm9_data_dir()
    csv.field_size_limit(1 << 27)
    for name in _CSV_FILES:
        with open(os.path.join(data_dir, name), newline='') as f:
            for row in csv.DictReader(f):
                elements = tuple(json.loads(row['Elements'].replace("'", '"')))
                # QM9 writes some zeros as '0.', which JSON does not accept.
                xyz = _BARE_POINT.sub('.0', row['XYZ_Ang'])
                coords = np.asarray(json.loads(xyz), dtype=float)
                yield int(row['Index']), row['SMILES'], elements, coords


def perturbed_copy(sample, sigma=PERTURB_SIGMA):
    """The same molecule with every atom displaced by an isotropic Gaussian of width sigma (A)."""
    seed = int(_unit_hash(f'qm9-perturb:{sample.qm9_index}') * 2**31)
    rng = np.random.default_rng(seed)
    coords = sample.coords_angstrom + rng.normal(scale=sigma, size=sample.coords_angstrom.shape)
    return Sample(sample.qm9_index, sample.smiles, sample.elements, coords, conformer=1,
                  perturb_seed=seed, perturb_sigma=float(sigma))


def select(split, n, perturb_fraction=PERTURB_FRACTION, data_dir=None):
    """The first ``n`` QM9 molecules of ``split`` in generation order, each followed by its
    perturbed copy when the hash rule gives it one.  ``n`` counts QM9 molecules, not copies."""
    if split not in SPLIT_FRACTIONS:
        raise ValueError(f'unknown split {split!r}; choose from {sorted(SPLIT_FRACTIONS)}')
    chosen = [(generation_rank(i), i, smi, el, xyz) for i, smi, el, xyz in iter_qm9(data_dir)
              if split_of(i) == split]
    chosen.sort()
    samples = []
    for _, i, smi, el, xyz in chosen[:n]:
        s = Sample(i, smi, el, xyz)
        samples.append(s)
        if _unit_hash(f'qm9-perturb-pick:{i}') < perturb_fraction:
            samples.append(perturbed_copy(s))
    return samples
