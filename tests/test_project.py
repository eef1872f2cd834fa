import numpy
import pytest
from pyscf import dft, gto, scf

from pyscf_mlguess.grid import UniformGrid, make_grid, sad_density_matrix
from pyscf_mlguess.oracle import OraclePredictor
from pyscf_mlguess.project import (EXCHANGE_TREATMENTS, density_gradient, hartree_potential,
                                   project_density)

from conftest import AMMONIA, assert_density_matrix


def test_hartree_potential_of_a_gaussian():
    # unit charge, exponent a: v(r) = erf(sqrt(a) r) / r
    from scipy.special import erf
    a = 2.0
    grid = UniformGrid((-6.0, -6.0, -6.0), 0.1, (121, 121, 121))
    x, y, z = numpy.meshgrid(*grid.axes(), indexing='ij')
    r = numpy.sqrt(x**2 + y**2 + z**2)
    rho = (a / numpy.pi) ** 1.5 * numpy.exp(-a * r**2)
    v = hartree_potential(rho, grid)
    r_safe = numpy.where(r > 0, r, 1.0)
    exact = numpy.where(r > 0, erf(numpy.sqrt(a) * r) / r_safe, 2 * numpy.sqrt(a / numpy.pi))
    # point sampling at h = 0.1 Bohr of a Gaussian of width 0.5 Bohr: 0.14 % at the centre
    assert numpy.abs(v - exact).max() < 3e-3
    assert v[60, 60, 60] == pytest.approx(exact[60, 60, 60], rel=2e-3)
    assert numpy.abs(v - exact)[r > 2].max() < 1e-4


def test_density_gradient_is_fourth_order():
    # exp(-2 r^2) off-centre: the error must fall ~16x when the spacing halves
    errors = []
    for h in (0.1, 0.05):
        n = int(round(8 / h)) + 1
        grid = UniformGrid((-4.0, -4.0, -4.0), h, (n, n, n))
        x, y, z = numpy.meshgrid(*grid.axes(), indexing='ij')
        f = numpy.exp(-2 * ((x - 0.3)**2 + y**2 + z**2))
        gx, gy, gz = density_gradient(f, h)
        errors.append(max(numpy.abs(gx + 4 * (x - 0.3) * f).max(), numpy.abs(gy + 4 * y * f).max(),
                          numpy.abs(gz + 4 * z * f).max()))
    assert errors[0] < 1e-3
    assert errors[0] / errors[1] > 12


def _oracle_cycles(mol, dm_ref, e_ref, xc, spacing, margin=5.0):
    mf = dft.RKS(mol, xc=xc)
    mf.init_guess = 'mlsr'
    mf.mlsr_predictor = OraclePredictor(dm_ref, spacing, margin)
    mf.kernel()
    assert abs(mf.e_tot - e_ref) < 1e-6
    return mf.cycles


def _minao_cycles(mol, xc):
    mf = dft.RKS(mol, xc=xc)
    mf.kernel()
    return mf, mf.cycles


@pytest.mark.parametrize('atom', ['water', 'ammonia'])
def test_pbe_oracle_beats_minao(atom, water):
    mol = water if atom == 'water' else gto.M(atom=AMMONIA, basis='def2-svp', verbose=0)
    ref, minao = _minao_cycles(mol, 'pbe')
    cycles = _oracle_cycles(mol, ref.make_rdm1(), ref.e_tot, 'pbe', 0.15)
    assert cycles < minao


@pytest.mark.xfail(strict=True, reason='target of issue 2 not reached: the uniform grid does not '
                   'resolve the near-nucleus part of delta_rho (see benchmarks/results/oracle)')
@pytest.mark.parametrize('atom', ['water', 'ammonia'])
def test_pbe_oracle_within_three_cycles(atom, water):
    mol = water if atom == 'water' else gto.M(atom=AMMONIA, basis='def2-svp', verbose=0)
    ref, _ = _minao_cycles(mol, 'pbe')
    assert _oracle_cycles(mol, ref.make_rdm1(), ref.e_tot, 'pbe', 0.15) <= 3


def test_projection_keeps_a_converged_density_close(water_pbe):
    mol, dm_ref, _ = water_pbe
    mf = dft.RKS(mol, xc='pbe')
    grid = make_grid(mol, spacing=0.1, margin=6.0)
    delta, grid = OraclePredictor(dm_ref)(mol, grid, None)
    dm = project_density(mf, delta, grid)
    assert_density_matrix(mf, dm)
    assert numpy.abs(dm - dm_ref).max() < 1e-3


@pytest.mark.parametrize('exchange', EXCHANGE_TREATMENTS)
@pytest.mark.parametrize('make', [lambda m: scf.RHF(m), lambda m: dft.RKS(m, xc='b3lyp'),
                                  lambda m: dft.UKS(m, xc='camb3lyp')],
                         ids=['hf', 'b3lyp', 'uks-camb3lyp'])
def test_exchange_treatments_give_valid_density_matrices(water_pbe, make, exchange):
    mol, dm_ref, _ = water_pbe
    mf = make(mol)
    grid = make_grid(mol, spacing=0.3, margin=4.0)
    delta, grid = OraclePredictor(dm_ref)(mol, grid, None)
    dm = project_density(mf, delta, grid, exchange=exchange)
    assert_density_matrix(mf, dm)


def test_unknown_exchange_treatment(water_pbe):
    mol, dm_ref, _ = water_pbe
    grid = make_grid(mol, spacing=0.4)
    with pytest.raises(ValueError, match='Unknown exchange treatment'):
        project_density(scf.RHF(mol), numpy.zeros(grid.shape), grid, exchange='magic')


def test_delta_rho_shape_must_match_grid(water):
    grid = make_grid(water, spacing=0.4)
    with pytest.raises(ValueError, match='delta_rho has shape'):
        project_density(scf.RHF(water), numpy.zeros((3, 3, 3)), grid,
                        dm_sad=sad_density_matrix(water)[0])
