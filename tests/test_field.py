import numpy
import pytest
from scipy.special import erf

from pyscf_mlguess.field import DensityField, density_gradient, hartree_potential
from pyscf_mlguess.grid import UniformGrid


def _gaussian_field(a=2.0, h=0.1, half=6.0, centre=(0.0, 0.0, 0.0)):
    """A unit charge exp(-a r^2) normalised, on a cube of half-width ``half``."""
    n = int(round(2 * half / h)) + 1
    grid = UniformGrid((-half, -half, -half), h, (n, n, n))
    x, y, z = numpy.meshgrid(*grid.axes(), indexing='ij')
    r2 = (x - centre[0])**2 + (y - centre[1])**2 + (z - centre[2])**2
    return DensityField((a / numpy.pi) ** 1.5 * numpy.exp(-a * r2), grid)


def _gaussian_potential(r, a=2.0):
    r_safe = numpy.where(r > 0, r, 1.0)
    return numpy.where(r > 0, erf(numpy.sqrt(a) * r) / r_safe, 2 * numpy.sqrt(a / numpy.pi))


def test_hartree_potential_of_a_gaussian():
    # unit charge, exponent a: v(r) = erf(sqrt(a) r) / r
    field = _gaussian_field()
    x, y, z = numpy.meshgrid(*field.grid.axes(), indexing='ij')
    r = numpy.sqrt(x**2 + y**2 + z**2)
    v = hartree_potential(field.values, field.grid.spacing)
    exact = _gaussian_potential(r)
    # point sampling at h = 0.1 Bohr of a Gaussian of width 0.5 Bohr: 0.14 % at the centre
    assert numpy.abs(v - exact).max() < 3e-3
    assert v[60, 60, 60] == pytest.approx(exact[60, 60, 60], rel=2e-3)
    assert numpy.abs(v - exact)[r > 2].max() < 1e-4
    numpy.testing.assert_array_equal(field.hartree_potential, v)


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


def test_evaluate_between_points_and_outside_the_box():
    a = 2.0
    field = _gaussian_field(a=a, h=0.1, centre=(0.3, -0.2, 0.1))
    assert field.charge == pytest.approx(1.0, abs=1e-6)
    rng = numpy.random.default_rng(1)
    pts = rng.uniform(-1.5, 1.5, size=(500, 3))
    d = pts - (0.3, -0.2, 0.1)
    exact = (a / numpy.pi) ** 1.5 * numpy.exp(-a * (d**2).sum(1))
    rho = field.evaluate(pts, deriv=1)
    assert rho.shape == (4, 500)
    numpy.testing.assert_array_equal(field.evaluate(pts), rho[0])
    assert numpy.abs(rho[0] - exact).max() < 2e-4 * exact.max()
    numpy.testing.assert_allclose(rho[1:], -2 * a * d.T * exact, atol=2e-3 * exact.max())
    # outside the box: no density, and the potential of its multipoles (here a unit charge)
    far = numpy.array([[9.0, 0.0, 0.0], [0.0, -7.0, 8.0]])
    assert not field.evaluate(far, deriv=1).any()
    r = numpy.linalg.norm(far - (0.3, -0.2, 0.1), axis=1)
    numpy.testing.assert_allclose(field.potential(far), 1 / r, rtol=1e-4)
    # just inside (splines of the FFT potential) and just outside the face (the expansion)
    face = numpy.array([[5.99, 0.5, 0.5], [6.01, 0.5, 0.5]])
    exact = _gaussian_potential(numpy.linalg.norm(face - (0.3, -0.2, 0.1), axis=1))
    v_in, v_out = field.potential(face)
    assert v_in == pytest.approx(exact[0], abs=1e-4)    # as on the box points (test above)
    assert v_out == pytest.approx(exact[1], rel=1e-5)


def test_a_rotated_box_answers_in_cartesian_coordinates():
    """The same Gaussian on a turned box: values, gradients (Cartesian components) and the
    potential inside and outside the box agree with the analytic ones at Cartesian points."""
    from scipy.spatial.transform import Rotation
    a, h, half = 2.0, 0.1, 5.0
    rotation = Rotation.from_euler('zyx', [35, -20, 60], degrees=True).as_matrix().T
    centre = numpy.array([0.3, -0.2, 0.1])
    n = int(round(2 * half / h)) + 1
    origin = (centre @ rotation.T - half) @ rotation        # the box centred on the Gaussian
    grid = UniformGrid(tuple(origin), h, (n, n, n), orientation=tuple(map(tuple, rotation)))
    d = grid.coords() - centre
    field = DensityField(((a / numpy.pi) ** 1.5 * numpy.exp(-a * (d**2).sum(1))).reshape(
        grid.shape), grid)
    rng = numpy.random.default_rng(2)
    pts = centre + rng.uniform(-1.5, 1.5, size=(400, 3))
    d = pts - centre
    exact = (a / numpy.pi) ** 1.5 * numpy.exp(-a * (d**2).sum(1))
    rho = field.evaluate(pts, deriv=1)
    assert numpy.abs(rho[0] - exact).max() < 2e-4 * exact.max()
    numpy.testing.assert_allclose(rho[1:], -2 * a * d.T * exact, atol=2e-3 * exact.max())
    near = _gaussian_potential(numpy.linalg.norm(d, axis=1))
    assert numpy.abs(field.potential(pts) - near).max() < 3e-3
    far = centre + numpy.array([[0.0, 0.0, 12.0], [-9.0, 7.0, 0.0]])
    numpy.testing.assert_allclose(field.potential(far), 1 / numpy.linalg.norm(far - centre,
                                                                              axis=1), rtol=1e-4)


def test_multipoles_of_a_displaced_pair():
    # +1 and -1 Gaussians 1 Bohr apart along x: no charge, dipole (-1, 0, 0) about any centre
    plus = _gaussian_field(h=0.1, half=4.0, centre=(-0.5, 0.0, 0.0))
    minus = _gaussian_field(h=0.1, half=4.0, centre=(0.5, 0.0, 0.0))
    field = DensityField(plus.values - minus.values, plus.grid)
    centre, charge, dipole, quadrupole = field.multipoles
    numpy.testing.assert_allclose(centre, 0.0, atol=1e-12)
    assert charge == pytest.approx(0.0, abs=1e-9)
    numpy.testing.assert_allclose(dipole, [-1.0, 0.0, 0.0], atol=1e-5)
    numpy.testing.assert_allclose(quadrupole, 0.0, atol=1e-5)


def test_values_must_match_their_grid():
    grid = UniformGrid((0.0, 0.0, 0.0), 0.2, (4, 5, 6))
    with pytest.raises(ValueError, match=r'shape \(3, 3, 3\).*\(4, 5, 6\)'):
        DensityField(numpy.zeros((3, 3, 3)), grid)


def test_atom_terms_add_density_gradient_and_potential():
    from pyscf_mlguess.grid import RadialAtoms
    r = numpy.geomspace(1e-5, 1.0, 400)
    bump = numpy.exp(-(r / 0.2)**2)                     # a spherical term of charge q
    q = 4 * numpy.pi * numpy.trapezoid(bump * r**2, r)
    atoms = RadialAtoms([[0.1, 0.0, 0.0], [2.0, 0.5, 0.0]], ['C', 'H'], r, {'C': bump})
    assert atoms.charge == pytest.approx(q, rel=1e-6)   # the H has no table: nothing
    grid = UniformGrid((-3.0, -3.0, -3.0), 0.25, (25, 25, 25))
    values = numpy.zeros(grid.shape)
    plain, with_atoms = DensityField(values, grid), DensityField(values, grid, atoms)
    pts = numpy.array([[0.1, 0.0, 0.05], [0.4, 0.2, 0.0], [6.0, 0.0, 0.0]])
    d = numpy.linalg.norm(pts - [0.1, 0.0, 0.0], axis=1)
    numpy.testing.assert_allclose(with_atoms.evaluate(pts) - plain.evaluate(pts),
                                  numpy.exp(-(d / 0.2)**2) * (d < 1.0), rtol=5e-3, atol=1e-9)
    grad = with_atoms.evaluate(pts, deriv=1)[1:, 1]     # d/dr of the bump along (0.3, 0.2, 0)
    expected = -2 * d[1] / 0.04 * numpy.exp(-(d[1] / 0.2)**2) * (pts[1] - [0.1, 0, 0]) / d[1]
    numpy.testing.assert_allclose(grad, expected, rtol=1e-2, atol=1e-6)
    # far away, a point charge; the box's multipoles stay the grid's alone
    assert with_atoms.potential(pts[2:])[0] == pytest.approx(q / d[2], rel=1e-4)
    assert with_atoms.charge == pytest.approx(q, rel=1e-6) and plain.charge == 0
    # on a grid's points, the terms as evaluate gives them
    numpy.testing.assert_allclose(atoms.on_grid(grid).ravel(),
                                  atoms.evaluate(grid.coords(0, grid.size)), atol=1e-12)
