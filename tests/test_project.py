import numpy
import pytest
from pyscf import dft, gto, scf
from pyscf.dft import numint

from pyscf_mlguess.field import DensityField
from pyscf_mlguess.grid import RadialSAD, make_grid, sad_density_matrix
from pyscf_mlguess.oracle import OraclePredictor
from pyscf_mlguess.project import EXCHANGE_TREATMENTS, project_density, projection_grids

from conftest import AMMONIA, assert_density_matrix


def test_sad_hartree_potential_gives_the_exact_coulomb_matrix(water):
    """J[D_SAD] by quadrature of the SAD atoms' radial potentials on the projection grid
    against PySCF's analytic J."""
    dm_sad = sad_density_matrix(water)[0]
    j_exact = scf.RHF(water).get_j(water, dm_sad)
    sad = RadialSAD(water, dm_sad)
    grids = projection_grids(water, level=3)
    ni = numint.NumInt()
    j = 0
    for ao, mask, weight, coords in ni.block_loop(water, grids, water.nao, 0):
        vh = sad.evaluate(coords, with_potential=True)[1]
        j = j + numint.eval_mat(water, ao, weight, None, (vh,), mask, 'LDA')
    assert numpy.abs(j - j_exact).max() < 2e-4
    assert abs(numpy.einsum('ij,ji->', j - j_exact, dm_sad)) < 1e-3


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
    field = OraclePredictor(dm_ref)(mol, grid, None)
    dm = project_density(mf, sad_density_matrix(mol)[0], field)
    assert_density_matrix(mf, dm)
    assert numpy.abs(dm - dm_ref).max() < 1e-3
    # tagged with the orbitals it filled, whose energies are then the converged ones
    numpy.testing.assert_allclose(mf.make_rdm1(dm.mo_coeff, dm.mo_occ), dm, atol=1e-12)
    converged = mf.eig(mf.get_fock(dm=dm_ref), mf.get_ovlp())[0]
    nocc = mol.nelectron // 2
    numpy.testing.assert_allclose(dm.mo_energy[:nocc + 2], converged[:nocc + 2], rtol=1e-3,
                                  atol=2e-3)


def test_quadrature_blocks_do_not_change_the_potential(water_pbe):
    from pyscf_mlguess.project import potential_matrices
    mol, dm_ref, _ = water_pbe
    mf = dft.RKS(mol, xc='pbe')
    grid = make_grid(mol, spacing=0.2, margin=4.0)
    field = OraclePredictor(dm_ref)(mol, grid, None)
    grids = projection_grids(mol)
    dm_sad = sad_density_matrix(mol)[0]
    whole, _, n_whole = potential_matrices(mf, mol, dm_sad, field, grids, block_memory=None)
    small, _, n_small = potential_matrices(mf, mol, dm_sad, field, grids, block_memory=1)
    assert grids.weights.size > 2 * 4 * 56        # a 1 MB budget gives several blocks
    numpy.testing.assert_allclose(small, whole, rtol=0, atol=1e-12)
    assert n_small == pytest.approx(n_whole, abs=1e-10) and n_whole == pytest.approx(10, abs=0.01)


@pytest.mark.parametrize('exchange', EXCHANGE_TREATMENTS)
@pytest.mark.parametrize('make', [lambda m: scf.RHF(m), lambda m: dft.RKS(m, xc='b3lyp'),
                                  lambda m: dft.UKS(m, xc='camb3lyp')],
                         ids=['hf', 'b3lyp', 'uks-camb3lyp'])
def test_exchange_treatments_give_valid_density_matrices(water_pbe, make, exchange):
    mol, dm_ref, _ = water_pbe
    mf = make(mol)
    grid = make_grid(mol, spacing=0.3, margin=4.0)
    field = OraclePredictor(dm_ref)(mol, grid, None)
    dm = project_density(mf, None, field, exchange=exchange)
    assert_density_matrix(mf, dm)


def test_unknown_exchange_treatment(water_pbe):
    mol, dm_ref, _ = water_pbe
    grid = make_grid(mol, spacing=0.4)
    with pytest.raises(ValueError, match="Unknown mlsr exchange treatment 'magic'"):
        project_density(scf.RHF(mol), None, DensityField(numpy.zeros(grid.shape), grid),
                        exchange='magic')


def test_exchange_setting_is_checked_first_and_in_any_case(water_pbe):
    mol, dm_ref, _ = water_pbe
    mf = scf.RHF(mol)
    mf.mlsr_exchange = 'lda-x'

    class Unreachable:
        input_spacing = margin = None

        def __call__(self, *args):
            pytest.fail('the predictor ran before the setting was checked')

    with pytest.raises(ValueError, match='Unknown mlsr exchange treatment .*mlsr_exchange'):
        mf.init_guess_by_mlsr(predictor=Unreachable())
    mf.mlsr_exchange = 'LDA_X'
    lower = scf.RHF(mol)
    lower.mlsr_exchange = 'lda_x'
    predictor = OraclePredictor(dm_ref, 0.4)
    numpy.testing.assert_allclose(mf.init_guess_by_mlsr(predictor=predictor),
                                  lower.init_guess_by_mlsr(predictor=predictor), atol=1e-12)
