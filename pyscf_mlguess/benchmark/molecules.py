"""Molecule sets for the benchmark: the QM9 test split, or a folder of .xyz files."""

import glob
import os
import pathlib

from pyscf_mlguess.xyz import read_xyz

#: The held-out QM9 test split of the training data (needs ``qm9pack``).
QM9_TEST = 'qm9-test'
#: The held-out test split of the molecules derived from QM9 with S, Cl, Br, P, Si and ions
#: (:mod:`pyscf_mlguess.data.derived`; needs ``qm9pack`` and RDKit).
DERIVED_TEST = 'derived-test'


def elements_of(atom):
    """The set of element symbols in a PySCF atom specification (string or list)."""
    from pyscf import gto
    from pyscf.data.elements import ELEMENTS
    return {ELEMENTS[gto.charge(symbol)] for symbol, _ in gto.format_atom(atom)}


def load_molecules(spec, n=None, folders=None, elements=None, containing=None, charges=None):
    """[(name, entry)] where entry is a dict (atom, charge, spin) or an error message.

    ``spec`` is ``'qm9-test'`` (the held-out QM9 test split of the training data, in its fixed
    order; needs ``qm9pack``), ``'derived-test'`` (the test split of the molecules derived from
    QM9 with other elements and charges), a name in ``folders`` ({name: folder of .xyz}), or a
    folder of .xyz files (comment line ``charge=N spin=M``).  ``elements`` (symbols) keeps only
    the molecules made of them, ``containing`` (symbols) those with at least one of them (the
    S or Cl medicines of a drug set), ``charges`` (integers) those of these charges (the ions):
    of a folder, before ``n`` takes the first N; of the built-in splits, among their first N.
    Unreadable files stay in, as errors; a symbol that is no element is a ``ValueError`` naming
    the option.
    """
    for option, symbols in (('--elements', elements), ('--containing', containing)):
        if symbols:
            from pyscf.data.elements import ELEMENTS
            unknown = [e for e in symbols if e not in ELEMENTS]
            if unknown:
                raise ValueError(f'{option}: not element symbols: {", ".join(unknown)}')
    split = spec in (QM9_TEST, DERIVED_TEST)
    entries = _load(spec, n if split or not (elements or containing or charges) else None,
                    folders)
    if elements:
        allowed = set(elements)
        entries = [(name, entry) for name, entry in entries
                   if isinstance(entry, str) or elements_of(entry['atom']) <= allowed]
    if containing:
        wanted = set(containing)
        entries = [(name, entry) for name, entry in entries
                   if isinstance(entry, str) or elements_of(entry['atom']) & wanted]
    if charges:
        wanted = {int(c) for c in charges}
        entries = [(name, entry) for name, entry in entries
                   if isinstance(entry, str) or entry['charge'] in wanted]
    return entries if split else entries[:n]


def _load(spec, n, folders):
    if spec == QM9_TEST:
        from pyscf_mlguess.data import qm9
        samples = qm9.select('test', n or 50, perturb_fraction=0.0)
        return [(s.key, {'atom': s.atom, 'charge': 0, 'spin': 0}) for s in samples]
    if spec == DERIVED_TEST:
        from pyscf_mlguess.data import derived
        return [(s.key, {'atom': s.atom, 'charge': s.charge, 'spin': 0})
                for s in derived.select('test', n or 50)]
    folders = folders or {}
    folder = folders.get(spec) or pathlib.Path(spec)
    paths = sorted(glob.glob(os.path.join(folder, '*.xyz')))
    if not paths:
        raise ValueError(f'--molecules {spec}: no .xyz files there (built-in sets: '
                         f'{", ".join([QM9_TEST, DERIVED_TEST, *folders])})')
    out = []
    for path in paths[:n]:
        name = pathlib.Path(path).stem
        try:
            s = read_xyz(path)
            out.append((name, {'atom': s.atom, 'charge': s.charge, 'spin': s.spin}))
        except Exception as err:                      # reported per molecule, the run goes on
            out.append((name, f'unreadable: {err}'))
    return out
