"""Molecules from .xyz files, for the benchmark and for fine-tuning on one's own molecules.

The geometry is read by PySCF's own reader (:func:`pyscf.gto.mole.fromfile`); the comment line
may carry ``charge=N`` and ``spin=M`` (spin = 2S, as ``Mole.spin``), which plain xyz has no place
for.  Not part of the guess itself.
"""

import dataclasses
import os
import re

import numpy
from pyscf import gto

_CHARGE = re.compile(r'charge\s*=\s*([+-]?\d+)')
_SPIN = re.compile(r'spin\s*=\s*(\d+)')


@dataclasses.dataclass(frozen=True)
class XYZMolecule:
    """One molecule of an .xyz file: ``atom`` is PySCF's atom string (Angstrom)."""
    name: str
    atom: str
    charge: int = 0
    spin: int = 0

    @property
    def elements(self):
        return tuple(line.split()[0] for line in self.atom.splitlines())

    @property
    def coords_angstrom(self):
        return numpy.array([[float(v) for v in line.split()[1:4]]
                            for line in self.atom.splitlines()])


def read_xyz(path):
    """The :class:`XYZMolecule` of an .xyz file; a clear ``ValueError`` naming the file when it
    is not one."""
    with open(path) as f:
        lines = f.read().splitlines()
    try:
        natm = int(lines[0].split()[0])
        atom = gto.mole.fromfile(str(path), format='xyz')
    except (IndexError, ValueError):
        raise ValueError(f'{path}: the first line must be the number of atoms') from None
    rows = [ln.split() for ln in atom.splitlines()]
    if len(rows) != natm or any(len(r) < 4 for r in rows):
        raise ValueError(f'{path}: expected {natm} atom lines "symbol x y z"')
    comment = lines[1] if len(lines) > 1 else ''
    charge = _CHARGE.search(comment)
    spin = _SPIN.search(comment)
    return XYZMolecule(os.path.splitext(os.path.basename(path))[0], atom,
                       int(charge.group(1)) if charge else 0, int(spin.group(1)) if spin else 0)
