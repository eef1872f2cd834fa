"""Molecules beyond QM9's elements and charges, derived from QM9 molecules with RDKit.

QM9 holds neutral closed shells of H, C, N, O and F.  Each QM9 molecule here gives at most one
derived molecule, made by one chemically ordinary edit of its SMILES graph:

========  ==================================================================================
rule      edit
========  ==================================================================================
o2s       an ether, alcohol, carbonyl or furan oxygen becomes sulfur (thioethers, thiols,
          thiocarbonyls, thiophenes)
h2cl      a fluorine, else a hydrogen on carbon, becomes chlorine
h2br      the same with bromine
n2p       an amine nitrogen (sp3, not bonded to a heteroatom, a pi system or an aromatic ring)
          becomes phosphorus (phosphines)
c2si      an sp3 carbon bonded only to carbon and hydrogen becomes silicon
anion     the most acidic O-H loses its proton: carboxylate, else phenolate, else alkoxide
cation    the most basic nitrogen gains a proton: ammonium, else pyridinium-like, else iminium
========  ==================================================================================

Everything is deterministic (SHA-256 hashes, as in :mod:`.qm9`): the order of the parents, the
rule (:func:`select` balances the rules), the site (among the symmetry-distinct matches) and the
embedding seed.  Geometries come from ETKDG and an MMFF94
minimisation, and a sample is kept only when RDKit sanitises it, MMFF has parameters for it,
the minimisation converges, the electron count is even (closed shell) and the geometry passes
:func:`geometry_problem`.  A derived molecule inherits the split of its QM9 parent, so nothing
of a test molecule leaks into training, and every sample carries its recipe (parent, rule, site,
seed, bonds, RDKit version).
"""

import itertools

import numpy

from pyscf_mlguess.data import qm9

RULES = ('o2s', 'h2cl', 'h2br', 'n2p', 'c2si', 'anion', 'cation')

#: SMARTS of each rule's sites (the first atom of a match), tried in order; the first pattern
#: with a match gives the sites (a fluorine before a C-H, the most acidic O-H, the most basic N).
_SITES = {
    'o2s': ['[OX2;!$(O~[!#6;!#1])]', '[OX1]=[#6]', '[o]'],
    'h2cl': ['[F]', '[#6;!H0]'],
    'h2br': ['[F]', '[#6;!H0]'],
    'n2p': ['[NX3;+0;!a;!$(N~[!#6;!#1]);!$(N-[#6]=,#[*]);!$(N-a)]'],
    'c2si': ['[CX4;!$(C~[!#6;!#1])]'],
    'anion': ['[OX2H1]-[CX3]=[OX1]', '[OX2H1]-c', '[OX2H1]-[CX4]'],
    'cation': ['[NX3;H2,H1,H0;+0;!a;!$(N~[!#6;!#1]);!$(N-[#6]=,#[*]);!$(N-a)]',
               '[nX2;H0;+0]', '[NX2;+0]=[#6]'],
}
_NEW_ELEMENT = {'o2s': 16, 'h2cl': 17, 'h2br': 35, 'n2p': 15, 'c2si': 14}
#: Bond lengths must lie within these factors of the sum of covalent radii; atoms three or more
#: bonds apart must be further than the upper factor (no clash, no unintended bond).
BOND_RANGE = (0.75, 1.3)
MMFF_MAX_ITERS = 2000


def _patterns():
    from rdkit import Chem
    return {rule: [Chem.MolFromSmarts(s) for s in smarts] for rule, smarts in _SITES.items()}


def _sites(mol, rule, patterns):
    """Symmetry-distinct atom indices where ``rule`` applies (first matching pattern)."""
    from rdkit import Chem
    for pattern in patterns[rule]:
        atoms = sorted({m[0] for m in mol.GetSubstructMatches(pattern)})
        if atoms:
            ranks = list(Chem.CanonicalRankAtoms(mol, breakTies=False))
            seen, distinct = set(), []
            for a in atoms:
                if ranks[a] not in seen:
                    seen.add(ranks[a])
                    distinct.append(a)
            return distinct
    return []


def apply_rule(mol, rule, site):
    """A sanitised copy of the RDKit molecule (hydrogens implicit) with ``rule`` applied at atom
    ``site``; raises ValueError from RDKit when the result is not a valid molecule."""
    from rdkit import Chem
    rw = Chem.RWMol(mol)
    atom = rw.GetAtomWithIdx(site)
    if rule in ('h2cl', 'h2br') and atom.GetAtomicNum() != 9:     # on carbon: replace an H
        n_h = atom.GetTotalNumHs()
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(n_h - 1)
        new = rw.AddAtom(Chem.Atom(_NEW_ELEMENT[rule]))
        rw.AddBond(site, new, Chem.BondType.SINGLE)
    elif rule in _NEW_ELEMENT:
        atom.SetAtomicNum(_NEW_ELEMENT[rule])
    elif rule == 'anion':
        atom.SetFormalCharge(-1)
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(0)
    elif rule == 'cation':
        n_h = atom.GetTotalNumHs()
        atom.SetFormalCharge(1)
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(n_h + 1)
    else:
        raise ValueError(f'unknown rule {rule!r}; choose from {", ".join(RULES)}')
    out = rw.GetMol()
    try:
        Chem.SanitizeMol(out)
    except Exception as err:             # RDKit raises its own exception types
        raise ValueError(f'{rule} at atom {site} gives an invalid molecule: {err}') from None
    return out


def geometry_problem(elements, coords, bonds):
    """None when a geometry (Angstrom) looks like its graph (``bonds``: atom index pairs), else a
    sentence saying what is wrong: a bond outside :data:`BOND_RANGE` of the covalent radii, or two
    atoms three or more bonds apart at bonding distance."""
    from rdkit import Chem
    from scipy.sparse import csgraph, coo_matrix
    table = Chem.GetPeriodicTable()
    xyz = numpy.asarray(coords, dtype=float)
    radii = numpy.array([table.GetRcovalent(e) for e in elements])
    i, j = numpy.asarray(bonds).T
    topo = csgraph.shortest_path(coo_matrix((numpy.ones(len(i)), (i, j)),
                                            shape=(len(radii),) * 2), unweighted=True,
                                 directed=False)
    lo, hi = BOND_RANGE
    for i, j in itertools.combinations(range(len(radii)), 2):
        d = numpy.linalg.norm(xyz[i] - xyz[j]) / (radii[i] + radii[j])
        if topo[i, j] == 1 and not lo <= d <= hi:
            return f'bond {i}-{j} at {d:.2f} x the covalent radii'
        if topo[i, j] >= 3 and d <= hi:
            return f'atoms {i} and {j} ({int(topo[i, j])} bonds apart) at {d:.2f} x the radii'
    return None


def geometry_problem_of(sample, coords=None):
    """:func:`geometry_problem` of a derived sample (its recipe holds the bonds), optionally with
    other coordinates."""
    return geometry_problem(sample.elements,
                            sample.coords_angstrom if coords is None else coords,
                            sample.recipe['bonds'])


def derive(qm9_index, smiles, rule, patterns=None):
    """The molecule that ``rule`` makes of one QM9 molecule, as a
    :class:`~pyscf_mlguess.data.qm9.Sample`, or a string saying why there is none (the rule does
    not apply, RDKit or MMFF refused, or the geometry failed).  The site and the embedding seed
    are hashes of the QM9 index and the rule."""
    import rdkit
    from rdkit import Chem
    from rdkit.Chem import AllChem
    patterns = patterns or _patterns()
    parent = Chem.MolFromSmiles(smiles)
    if parent is None:
        return f'RDKit cannot read the QM9 SMILES {smiles!r}'
    sites = _sites(parent, rule, patterns)
    if not sites:
        return f'{rule} does not apply'
    site = sites[int(qm9._unit_hash(f'derived-site:{qm9_index}:{rule}') * len(sites))]
    try:
        mol = apply_rule(parent, rule, site)
    except ValueError as err:
        return str(err)
    mol_h = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed = int(qm9._unit_hash(f'derived-embed:{qm9_index}:{rule}') * 2**31)
    if AllChem.EmbedMolecule(mol_h, params) != 0:
        return 'ETKDG found no embedding'
    props = AllChem.MMFFGetMoleculeProperties(mol_h)
    if props is None:
        return 'MMFF94 has no parameters for it'
    if AllChem.MMFFGetMoleculeForceField(mol_h, props).Minimize(maxIts=MMFF_MAX_ITERS) != 0:
        return f'MMFF94 did not converge in {MMFF_MAX_ITERS} iterations'
    elements = tuple(a.GetSymbol() for a in mol_h.GetAtoms())
    xyz = mol_h.GetConformer().GetPositions()
    bonds = [[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol_h.GetBonds()]
    problem = geometry_problem(elements, xyz, bonds)
    if problem:
        return problem
    charge = Chem.GetFormalCharge(mol_h)
    if (sum(a.GetAtomicNum() for a in mol_h.GetAtoms()) - charge) % 2:
        return 'odd electron count'
    recipe = {'source': 'qm9-derived', 'parent_qm9_index': int(qm9_index),
              'parent_smiles': smiles, 'rule': rule, 'site_atom': int(site),
              'embed': 'ETKDGv3 + MMFF94', 'embed_seed': seed, 'rdkit': rdkit.__version__,
              'bonds': bonds}
    return qm9.Sample(qm9_index, Chem.MolToSmiles(mol), elements, xyz, charge=charge,
                      name=f'qm9-{qm9_index:06d}-{rule}', recipe=recipe)


def select(split, n, data_dir=None):
    """The first ``n`` derived molecules of ``split``.

    QM9 molecules of that split are taken in a fixed hashed order (another order than
    :func:`.qm9.select`'s), each giving at most one molecule: of the rules that apply to it, the
    one with the fewest molecules so far (ties in a hashed order), else the next.  So the rules
    share the set about equally however rarely they apply (amines are rarer than C-H), and a
    larger ``n`` extends the list without changing its beginning."""
    if split not in qm9.SPLIT_FRACTIONS:
        raise ValueError(f'unknown split {split!r}; choose from {sorted(qm9.SPLIT_FRACTIONS)}')
    from rdkit import Chem, RDLogger
    RDLogger.DisableLog('rdApp.*')
    parents = sorted((qm9._unit_hash(f'derived-order:{i}'), i, smi)
                     for i, smi, _, _ in qm9.iter_qm9(data_dir) if qm9.split_of(i) == split)
    patterns = _patterns()
    counts = dict.fromkeys(RULES, 0)
    samples = []
    for _, i, smi in parents:
        if len(samples) == n:
            break
        mol = Chem.MolFromSmiles(smi)
        rules = [r for r in RULES if mol is not None and _sites(mol, r, patterns)]
        rules.sort(key=lambda r: (counts[r], qm9._unit_hash(f'derived-rule:{i}:{r}')))
        for rule in rules:
            sample = derive(i, smi, rule, patterns)
            if not isinstance(sample, str):
                samples.append(sample)
                counts[rule] += 1
                break
    return samples
