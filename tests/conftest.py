"""Shared fixtures and physical assertions (electron count, idempotency, same energy)."""

import importlib.util
import pathlib

import numpy
import pytest
from pyscf import dft, gto

import pyscf_mlguess  # noqa: F401  (registers 'mlsr')

WATER = 'O 0 0 0.1173; H 0 0.7572 -0.4692; H 0 -0.7572 -0.4692'
AMMONIA = 'N 0 0 0.1127; H 0 0.9372 -0.2630; H 0.8116 -0.4686 -0.2630; H -0.8116 -0.4686 -0.2630'
NH2_RADICAL = 'N 0 0 0.15; H 0 0.8 -0.45; H 0 -0.8 -0.45'


def water_sample():
    """Water as a QM9 sample (index 3), for the reference calculation of the data pipeline."""
    from pyscf_mlguess.data import qm9
    mol = gto.M(atom=WATER, verbose=0)
    return qm9.Sample(3, 'O', tuple(mol.elements), mol.atom_coords(unit='Angstrom'))


@pytest.fixture(scope='session')
def water_record():
    """A PBE training record of water, as ``data generate`` makes it (orbitals quantised)."""
    from pyscf_mlguess.data import generate
    return generate.reference_calculation(water_sample(), 'pbe', threads=0)


@pytest.fixture(scope='session')
def water():
    return gto.M(atom=WATER, basis='def2-svp', verbose=0)


@pytest.fixture(scope='session')
def water_pbe(water):
    """Tightly converged PBE/def2-SVP water: (mol, dm, e_tot)."""
    mf = dft.RKS(water, xc='pbe')
    mf.conv_tol = 1e-11
    mf.kernel()
    return water, mf.make_rdm1(), mf.e_tot


def assert_density_matrix(mf, dm, atol=1e-8):
    """Electron counts per spin and idempotency in the SCF object's own representation."""
    mol = mf.mol
    s = mf.get_ovlp()
    dm = numpy.asarray(dm)
    if dm.ndim == 2:
        assert numpy.einsum('ij,ji->', dm, s) == pytest.approx(mol.nelectron, abs=atol)
        numpy.testing.assert_allclose(dm @ s @ dm, 2 * dm, atol=atol)
    else:
        for dm_s, n_s in zip(dm, mol.nelec):
            assert numpy.einsum('ij,ji->', dm_s, s) == pytest.approx(n_s, abs=atol)
            numpy.testing.assert_allclose(dm_s @ s @ dm_s, dm_s, atol=atol)


def assert_same_energy(mf, e_ref, tol=1e-6):
    assert mf.converged
    assert abs(mf.e_tot - e_ref) < tol


def load_benchmark(name):
    """The script ``benchmarks/<name>.py`` imported as a module (the folder is no package)."""
    path = pathlib.Path(__file__).resolve().parents[1] / 'benchmarks' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
