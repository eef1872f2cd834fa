"""Molecules derived from QM9 (other elements, ions): valence, charge, determinism, split."""

import collections

import numpy
import pytest
from rdkit import Chem

from pyscf_mlguess.data import derived, generate, qm9


@pytest.mark.parametrize('smiles, rule, expected', [
    ('CCO', 'o2s', 'CCS'),
    ('CC=O', 'o2s', 'CC=S'),
    ('CCF', 'h2cl', 'CCCl'),                     # a fluorine before any C-H
    ('CC#C', 'h2br', None),                       # some C-H: checked below
    ('CCN', 'n2p', 'CCP'),
    ('CC(N)=O', 'n2p', None),                     # an amide N is not an amine
    ('CCO', 'c2si', 'OC[SiH3]'),                  # only the carbon with no O neighbour
    ('CC(=O)O', 'anion', 'CC(=O)[O-]'),
    ('Oc1ccccc1', 'anion', '[O-]c1ccccc1'),
    ('CCN', 'cation', 'CC[NH3+]'),
    ('c1ccncc1', 'cation', 'c1cc[nH+]cc1'),
])
def test_each_rule_makes_the_expected_molecule(smiles, rule, expected):
    s = derived.derive(101, smiles, rule)
    if expected is None and rule == 'n2p':
        assert s == 'n2p does not apply'
        return
    assert isinstance(s, qm9.Sample), s
    if expected is not None:
        assert s.smiles == Chem.CanonSmiles(expected)
    else:
        assert Chem.MolFromSmiles(s.smiles).HasSubstructMatch(Chem.MolFromSmarts('[#6]Br'))
    assert s.charge == {'anion': -1, 'cation': 1}.get(rule, 0)
    assert s.key == f'qm9-000101-{rule}' and s.qm9_index == 101
    assert s.recipe['rule'] == rule and s.recipe['parent_smiles'] == smiles
    # the geometry has the hydrogens of the graph: element list = RDKit's with explicit H
    assert sorted(s.elements) == sorted(
        a.GetSymbol() for a in Chem.AddHs(Chem.MolFromSmiles(s.smiles)).GetAtoms())
    assert derived.geometry_problem_of(s) is None


def test_geometry_filter_catches_a_broken_bond_and_a_clash():
    s = derived.derive(5, 'CCCC', 'h2cl')
    xyz = s.coords_angstrom.copy()
    heavy = [i for i, e in enumerate(s.elements) if e != 'H']
    stretched = xyz.copy()
    stretched[heavy[0]] += 1.0 * (xyz[heavy[0]] - xyz[heavy[1]])    # double a C-C bond
    assert 'bond' in derived.geometry_problem_of(s, stretched)
    clash = xyz.copy()
    clash[heavy[-1]] = xyz[heavy[0]] + [0.8, 0.0, 0.0]            # the chain's ends touch
    assert derived.geometry_problem_of(s, clash) is not None


def test_unknown_rule_and_invalid_product_are_refused():
    with pytest.raises(ValueError, match='unknown rule'):
        derived.apply_rule(Chem.MolFromSmiles('CC'), 'c2ge', 0)
    with pytest.raises(ValueError, match='invalid molecule'):                # 5-valent C
        derived.apply_rule(Chem.MolFromSmiles('C(C)(C)(C)C'), 'cation', 0)


@pytest.fixture(scope='module')
def valid_set():
    return derived.select('valid', 21)


def test_selection_is_deterministic_balanced_and_keeps_the_split(valid_set):
    again = derived.select('valid', 28)
    assert [s.key for s in again[:21]] == [s.key for s in valid_set]       # prefix-stable
    for a, b in zip(valid_set, again):
        numpy.testing.assert_array_equal(a.coords_angstrom, b.coords_angstrom)
    counts = collections.Counter(s.recipe['rule'] for s in valid_set)
    assert set(counts) == set(derived.RULES) and max(counts.values()) <= 4
    for s in valid_set:
        assert qm9.split_of(s.qm9_index) == 'valid'
        mol = Chem.MolFromSmiles(s.smiles)                           # sanitises: valences hold
        assert mol is not None and Chem.GetFormalCharge(mol) == s.charge
        z = sum(Chem.GetPeriodicTable().GetAtomicNumber(e) for e in s.elements)
        assert (z - s.charge) % 2 == 0


def test_reference_of_an_ion_keeps_charge_and_recipe():
    s = derived.derive(3, 'CO', 'anion')                                 # methoxide
    rec = generate.reference_calculation(s, 'pbe', threads=0)
    assert rec['converged'] and rec['charge'] == -1
    assert rec['recipe']['rule'] == 'anion' and rec['key'] == 'qm9-000003-anion'
    assert rec['mo_occ_coeff'].shape[1] == 9                             # 18 electrons


def test_derived_source_refuses_perturbed_copies(tmp_path):
    with pytest.raises(ValueError, match='no perturbed copies'):
        generate.generate(str(tmp_path), 'pbe', 'valid', 1, perturb_fraction=0.1,
                          source='derived')
    with pytest.raises(ValueError, match='unknown molecule source'):
        generate.level_name('pbe', source='zinc')


def test_benchmark_set_is_the_derived_test_split():
    from pyscf_mlguess.benchmark.molecules import DERIVED_TEST, load_molecules
    entries = load_molecules(DERIVED_TEST, n=3)
    expected = derived.select('test', 3)
    assert [name for name, _ in entries] == [s.key for s in expected]
    assert [e['charge'] for _, e in entries] == [s.charge for s in expected]
    assert all(qm9.split_of(s.qm9_index) == 'test' for s in expected)
