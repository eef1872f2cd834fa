import numpy
import pytest
from pyscf import dft, gto
from pyscf.scf import hf

import pyscf_mlguess  # noqa: F401  (registers 'mlsr')
from pyscf_mlguess import ZeroPredictor, config
from pyscf_mlguess.grid import (check_atomic_shells, density_on_grid, make_grid,
                                principal_axes, sad_density_matrix, sad_density_on_grid,
                                signed_factors)


def test_box_encloses_atoms_with_margin(water):
    grid = make_grid(water, spacing=0.25, margin=3.0)
    axes = grid.axes()
    xyz = grid.to_frame(water.atom_coords())
    for k in range(3):
        assert axes[k][0] <= xyz[:, k].min() - 3.0 + 1e-12
        assert axes[k][-1] >= xyz[:, k].max() + 3.0 - 1e-12
        assert grid.shape[k] % config.GRID_MULTIPLE == 0
    assert grid.spacing == 0.25 and grid.margin == 3.0
    rotation = grid.rotation
    numpy.testing.assert_allclose(rotation @ rotation.T, numpy.eye(3), atol=1e-12)
    assert numpy.linalg.det(rotation) == pytest.approx(1.0)
    index = numpy.array(numpy.unravel_index(5, grid.shape))
    point = grid.coords(5, 6)[0]
    assert point == pytest.approx(numpy.array(grid.origin) + 0.25 * index @ rotation)
    numpy.testing.assert_allclose(grid.fractional_index(point[None])[:, 0], index, atol=1e-12)
    # Cartesian boxes on request
    plain = make_grid(water, spacing=0.25, margin=3.0, orientation=numpy.eye(3))
    assert plain.orientation == ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    assert plain.coords(5, 6)[0] == pytest.approx(
        numpy.array(plain.origin) + 0.25 * numpy.array(numpy.unravel_index(5, plain.shape)))


ACETAMIDE = ('C 0 0 0; C 1.514 0 0; O 2.13 1.06 0; N 2.12 -1.2 0; H -0.36 -1.02 0; '
             'H -0.37 0.51 0.89; H -0.37 0.51 -0.89; H 3.13 -1.25 0; H 1.6 -2.06 0')
BENZENE = ('C 1.39 0 0; C 0.695 1.204 0; C -0.695 1.204 0; C -1.39 0 0; C -0.695 -1.204 0; '
           'C 0.695 -1.204 0; H 2.47 0 0; H 1.235 2.139 0; H -1.235 2.139 0; H -2.47 0 0; '
           'H -1.235 -2.139 0; H 1.235 -2.139 0')
METHANE = ('C 0 0 0; H 0.629 0.629 0.629; H -0.629 -0.629 0.629; H -0.629 0.629 -0.629; '
           'H 0.629 -0.629 -0.629')


def _rotated_copies(mol, n=3, seed=5):
    from scipy.spatial.transform import Rotation
    rng = numpy.random.default_rng(seed)
    for k in range(n):
        rot = Rotation.random(random_state=rng).as_matrix()
        shift = rng.normal(size=3)
        yield mol.copy().set_geom_(mol.atom_coords() @ rot.T + shift, unit='Bohr')


@pytest.mark.parametrize('atoms', [ACETAMIDE, BENZENE, METHANE,
                                   'O 0 0 0.1173; H 0 0.7572 -0.4692; H 0 -0.7572 -0.4692'],
                         ids=['asymmetric top', 'symmetric top', 'spherical top', 'water'])
def test_principal_axes_turn_with_the_molecule(atoms):
    """Rotated and translated copies see their atoms at the same box-frame positions (up to a
    translation), so the box image is the same."""
    mol = gto.M(atom=atoms, basis='sto-3g', verbose=0)
    ref = mol.atom_coords() @ principal_axes(mol).T
    for copy in _rotated_copies(mol):
        axes = principal_axes(copy)
        numpy.testing.assert_allclose(axes @ axes.T, numpy.eye(3), atol=1e-12)
        assert numpy.linalg.det(axes) == pytest.approx(1.0)
        got = copy.atom_coords() @ axes.T
        numpy.testing.assert_allclose(got - got[0], ref - ref[0], atol=1e-8)
        g0, g1 = make_grid(mol, 0.3, 4.0), make_grid(copy, 0.3, 4.0)
        assert g0.shape == g1.shape
        numpy.testing.assert_allclose(sad_density_on_grid(copy, g1), sad_density_on_grid(mol, g0),
                                      atol=1e-10)


def test_the_principal_box_is_no_larger_for_a_tilted_molecule():
    from scipy.spatial.transform import Rotation
    mol = gto.M(atom=BENZENE, basis='sto-3g', verbose=0)
    tilted = mol.copy().set_geom_(mol.atom_coords() @ Rotation.from_euler(
        'xyz', [30, 40, 50], degrees=True).as_matrix().T, unit='Bohr')
    principal = make_grid(tilted, 0.3, 5.0).size
    cartesian = make_grid(tilted, 0.3, 5.0, orientation=numpy.eye(3)).size
    assert principal < 0.8 * cartesian      # 0.73 measured


def test_refined_grid_covers_the_same_voxels(water):
    grid = make_grid(water, spacing=0.3)
    fine = grid.refine(2)
    assert fine.shape == tuple(2 * n for n in grid.shape)
    # the mean of the 8 sub-voxel centres is the coarse point
    sub = fine.coords(0, fine.size).reshape(*fine.shape, 3)[:2, :2, :2].reshape(-1, 3)
    numpy.testing.assert_allclose(sub.mean(axis=0), grid.origin, atol=1e-12)


@pytest.mark.parametrize('cart', [False, True])
def test_sad_on_grid_matches_ao_evaluation(cart):
    mol = gto.M(atom='C 0 0 0; O 1.2 0 0; N -1.3 0.2 0.1; H -1.8 -0.6 0.3; H -1.7 1 -0.2; '
                     'H 0 0.9 0.5', basis='def2-svp', cart=cart, verbose=0)
    grid = make_grid(mol, spacing=0.3, margin=3.0)
    dm, nelec_atom = sad_density_matrix(mol)
    numpy.testing.assert_allclose(nelec_atom, mol.atom_charges(), atol=1e-8)
    rho = sad_density_on_grid(mol, grid, dm)
    ref = density_on_grid(mol, dm, grid)
    assert numpy.abs(rho - ref).sum() / ref.sum() < 1e-4


def test_density_of_a_low_rank_difference_matches_pyscf(water, water_pbe):
    """A converged density matrix less SAD's is of low rank: summed over its eigenvectors, the
    density is PySCF's ``eval_rho`` of the full matrix to rounding."""
    from pyscf.dft import numint
    delta = water_pbe[1] - sad_density_matrix(water)[0]
    coeff, sign = signed_factors(delta)
    assert coeff.shape[1] < 0.75 * water.nao          # the route under test is taken
    numpy.testing.assert_allclose(coeff @ numpy.diag(sign) @ coeff.T, delta, atol=1e-12)
    grid = make_grid(water, spacing=0.2, margin=3.0)
    coords = grid.coords(0, grid.size)
    ref = numint.eval_rho(water, numint.eval_ao(water, coords), delta).reshape(grid.shape)
    rho = density_on_grid(water, delta, grid)
    assert numpy.abs(ref).max() > 0.1
    numpy.testing.assert_allclose(rho, ref, rtol=0, atol=1e-12)
    full = delta + 1e-3 * numpy.eye(water.nao)         # full rank: eval_rho's own route
    assert signed_factors(full)[0].shape[1] == water.nao
    ref = numint.eval_rho(water, numint.eval_ao(water, coords), full).reshape(grid.shape)
    numpy.testing.assert_allclose(density_on_grid(water, full, grid), ref, rtol=0, atol=1e-12)


def test_sad_on_grid_integrates_to_electrons(water):
    grid = make_grid(water, spacing=0.1, margin=6.0)
    rho = sad_density_on_grid(water, grid)
    assert rho.min() >= 0
    # a uniform grid of 0.1 Bohr resolves all but the O 1s cusp
    assert rho.sum() * grid.voxel_volume == pytest.approx(water.nelectron, rel=2e-3)


def test_sad_image_with_element_channels(water):
    grid = make_grid(water, 0.3, 4.0)
    total = sad_density_on_grid(water, grid)
    image = sad_density_on_grid(water, grid, elements=['O', 'F', 'H'])
    assert image.shape == (4,) + tuple(grid.shape)
    numpy.testing.assert_allclose(image[0], total, rtol=1e-12, atol=0)
    numpy.testing.assert_allclose(image[1] + image[3], total, rtol=1e-12, atol=1e-14)
    assert not image[2].any()                                  # no fluorine in water
    n = image.sum(axis=(1, 2, 3)) * grid.voxel_volume     # 0.3 Bohr misses part of the O core
    assert n[1] == pytest.approx(7.28, abs=0.05) and n[3] == pytest.approx(2, abs=0.05)
    only_o = sad_density_on_grid(water, grid, elements=['O'])    # H counts in the total only
    numpy.testing.assert_allclose(only_o[1], image[1], rtol=1e-12, atol=0)


def test_sad_with_ecp():
    mol = gto.M(atom='H 0 0 0; I 0 0 1.61', basis='def2-svp', ecp='def2-svp',
                verbose=0)
    assert mol.has_ecp()
    grid = make_grid(mol, spacing=0.3, margin=3.0)
    dm, nelec_atom = sad_density_matrix(mol)
    assert nelec_atom.sum() == pytest.approx(mol.nelectron, abs=1e-6)
    rho = sad_density_on_grid(mol, grid, dm)
    ref = density_on_grid(mol, dm, grid)
    assert numpy.abs(rho - ref).sum() / ref.sum() < 1e-4


@pytest.mark.parametrize('basis', ['def2-svp', 'def2-tzvp'])
def test_a_heavy_atom_without_its_ecp_is_named(basis):
    atoms = 'C 0 0 0; I 0 0 2.14; H 1.03 0 -0.36; H -0.515 0.892 -0.36; H -0.515 -0.892 -0.36'
    mol = gto.M(atom=atoms, basis=basis, verbose=0)
    ecp = gto.M(atom=atoms, basis=basis, ecp={'I': basis}, verbose=0)
    if basis == 'def2-svp':
        # PySCF's own atomic HF stops on this basis with a bare assertion
        with pytest.raises(AssertionError):
            hf.init_guess_by_atom(mol)
        with pytest.raises(ValueError, match=r"Atom 1 \(I\): its basis has 4 contracted s .*"
                           r"5 doubly occupied s .*No ECP is set for I"):
            sad_density_matrix(mol)
        mf = dft.RKS(mol, xc='pbe')
        with pytest.raises(ValueError, match=r'Atom 1 \(I\)'):
            mf.init_guess_by_mlsr(predictor=ZeroPredictor())
    else:
        # def2-TZVP has room for iodine's shells without an ECP; nothing is refused
        check_atomic_shells(mol)
    check_atomic_shells(ecp)


def test_translation_moves_the_image(water):
    shift = numpy.array([0.6, -0.3, 0.9])  # whole multiples of the spacing
    moved = water.copy().set_geom_(water.atom_coords() + shift, unit='Bohr')
    g1 = make_grid(water, spacing=0.3)
    g2 = make_grid(moved, spacing=0.3)
    numpy.testing.assert_allclose(numpy.array(g2.origin) - g1.origin, shift, atol=1e-12)
    numpy.testing.assert_allclose(sad_density_on_grid(water, g1), sad_density_on_grid(moved, g2),
                                  atol=1e-9)


def test_missing_basis_is_refused():
    mol = gto.M(atom='O 0 0 0; H 0 0 1.8', basis={'O': 'def2-svp'}, spin=1, unit='Bohr',
                verbose=0)
    with pytest.raises(ValueError, match='SAD guess cannot describe atom 1'):
        sad_density_matrix(mol)


def test_bad_grid_parameters(water):
    with pytest.raises(ValueError, match='spacing must be > 0'):
        make_grid(water, spacing=0.0)
    with pytest.raises(ValueError, match='at least one atom'):
        make_grid(gto.M(atom=[], verbose=0))


def test_sad_density_and_gradient_at_points_match_the_aos():
    """RadialSAD (radial tables) against PySCF's eval_rho of D_SAD, on an integration
    grid: the same density and gradient to the radial table's accuracy."""
    from pyscf import dft
    from pyscf_mlguess.grid import RadialSAD
    mol = gto.M(atom='C 0 0 0; O 1.2 0 0; N -1.3 0.2 0.1; H -1.8 -0.6 0.3; H -1.7 1 -0.2; '
                     'H 0 0.9 0.5; Cl 1.9 1.5 0.3', basis='def2-svp', charge=1, verbose=0)
    dm = sad_density_matrix(mol)[0]
    sad = RadialSAD(mol, dm)
    grids = dft.gen_grid.Grids(mol).build(with_non0tab=True)
    ni = dft.numint.NumInt()
    err = numpy.zeros(2)
    norm = numpy.zeros(2)
    for ao, mask, weight, coords in ni.block_loop(mol, grids, mol.nao, 1):
        exact = ni.eval_rho(mol, ao, dm, mask, 'GGA', hermi=1)
        rho, vh = sad.evaluate(coords, deriv=1, with_potential=True)
        numpy.testing.assert_array_equal(sad.evaluate(coords), rho[0])
        numpy.testing.assert_array_equal(sad.evaluate(coords, with_potential=True)[1], vh)
        err += [weight @ abs(rho[0] - exact[0]),
                weight @ numpy.linalg.norm(rho[1:] - exact[1:], axis=0)]
        norm += [weight @ exact[0], weight @ numpy.linalg.norm(exact[1:], axis=0)]
    assert norm[0] == pytest.approx(mol.atom_charges().sum(), abs=1e-3)   # neutral atoms
    assert err[0] / norm[0] < 5e-5 and err[1] / norm[1] < 1e-4
