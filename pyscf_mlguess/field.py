"""The value that crosses from the model to the projection: a density sampled on a uniform box.

:class:`DensityField` holds the samples (e/Bohr^3) and their
:class:`~pyscf_mlguess.grid.UniformGrid` and answers what the projection asks of a density: its
value and gradient anywhere (cubic splines inside the box, zero outside), its free-space Hartree
potential anywhere (FFT on the box, multipole expansion outside) and its charge. Predictors return
one (the model's ``delta_rho``), :func:`pyscf_mlguess.project.project_density` consumes one, and
:mod:`pyscf_mlguess.metrics` measures one. Everything derived from the samples is built once, on
first use.
"""

import functools

import numpy
import scipy.fft
from scipy import ndimage

# Mean of 1/r over a unit cube centred at the origin: the self-term of the discrete Coulomb kernel.
_CUBE_MEAN_INV_R = 2.3800772531

# Order of the interpolating splines for the density, its gradient and its potential.
_SPLINE_ORDER = 3

#: Peak working bytes per box point of a field while the projection uses it: first the values
#: and the single-precision FFT buffers of its Hartree potential on the 2x zero-padded box
#: (a pass's input and output, the kernel's spectrum), then the values, the potential and the
#: five spline coefficient arrays (density, gradient, potential), all float64.  The guess's
#: measured peak is within this bound (tests/test_guess.py).
BYTES_PER_POINT = 100


def coulomb_kernel_spectrum(padded, h):
    """The real-FFT spectrum (float32) of the 1/r kernel on a zero-padded box of (even) shape
    ``padded``.

    The kernel is even along every axis, so its spectrum is real and is the type-I DCT of one
    octant: an eighth of the points of building and transforming the whole padded kernel.  It
    is not cached: at 16 bytes per field point it is large, and boxes rarely repeat.
    """
    half = [m // 2 + 1 for m in padded]
    d2 = [(h * numpy.arange(n, dtype=numpy.float32)) ** 2 for n in half]
    r = numpy.sqrt(d2[0][:, None, None] + d2[1][None, :, None] + d2[2][None, None, :])
    r[0, 0, 0] = 1.0
    octant = numpy.reciprocal(r, out=r)
    octant[0, 0, 0] = _CUBE_MEAN_INV_R / h
    spec = scipy.fft.dctn(octant, type=1, workers=-1)
    # q and m - q carry the same value: mirror the first two axes to their full length
    for axis in (0, 1):
        mirror = numpy.take(spec, numpy.arange(1, padded[axis] - half[axis] + 1), axis=axis)
        spec = numpy.concatenate([spec, numpy.flip(mirror, axis=axis)], axis=axis)
    return spec


def hartree_potential(values, spacing):
    """Free-space electrostatic potential (Hartree/e) of a density ``values`` (e/Bohr^3) on a
    uniform box of ``spacing`` Bohr, on the same points.

    Zero-padded FFT convolution with the 1/r kernel (no periodic images, Hockney's method); the
    kernel's self term is the mean of 1/r over one voxel.  Single precision (relative error
    ~1e-6, far below what a guess needs) and pruned transforms: the padded input is zero outside
    one octant and only that octant of the output is kept, so each 1D pass runs on the lines that
    carry data.
    """
    shape = values.shape
    padded = tuple(2 * scipy.fft.next_fast_len(n, real=True) for n in shape)
    x = numpy.asarray(values, dtype=numpy.float32)
    a = scipy.fft.rfft(x, n=padded[2], axis=2, workers=-1)
    a = scipy.fft.fft(a, n=padded[1], axis=1, workers=-1)
    a = scipy.fft.fft(a, n=padded[0], axis=0, workers=-1)
    a *= coulomb_kernel_spectrum(padded, float(spacing))
    # in place where the shape allows: the padded spectrum is the largest buffer of the guess
    a = scipy.fft.ifft(a, axis=0, workers=-1, overwrite_x=True)[:shape[0]]
    a = scipy.fft.ifft(a, axis=1, workers=-1, overwrite_x=True)[:, :shape[1]]
    v = scipy.fft.irfft(a, n=padded[2], axis=2, workers=-1)[..., :shape[2]]
    return v.astype(numpy.float64) * spacing**3


def density_gradient(f, h):
    """Gradient of a box density by fourth-order central differences (one C pass per axis; at
    the two outermost layers, where the density is negligible, the box edge is extended by
    its nearest value).

    Fourth order matters for GGAs: with an otherwise exact Hartree term, numpy's second-order
    gradient leaves a Vxc error that costs SCF cycles from the exact density (see
    docs/design.md).
    """
    stencil = numpy.array([1.0, -8.0, 0.0, 8.0, -1.0]) / (12 * h)
    # correlate1d computes sum_k w_k f[i + k - 2], so the stencil reads f[i-2] ... f[i+2]
    return [ndimage.correlate1d(f, stencil, axis=ax, mode='nearest') for ax in range(3)]


def _spline(f):
    return ndimage.spline_filter(f, order=_SPLINE_ORDER, mode='nearest')


class DensityField:
    """A spin-summed density (e/Bohr^3) sampled on a :class:`~pyscf_mlguess.grid.UniformGrid`.

    ``values[i, j, k]`` is the density at the grid's point ``(i, j, k)``
    (:class:`~pyscf_mlguess.grid.UniformGrid`, possibly rotated); the density is zero outside
    the box.  ``atoms`` (a :class:`~pyscf_mlguess.grid.RadialAtoms`, optional) adds spherical
    terms on the nuclei, held as radial tables: the sharp part of a density near the nuclei,
    which samples a few tenths of a Bohr apart cannot carry (docs/design.md).
    """

    def __init__(self, values, grid, atoms=None):
        values = numpy.asarray(values, dtype=numpy.float64)
        if values.shape != tuple(grid.shape):
            raise ValueError(f'density values have shape {values.shape}, their grid '
                             f'{tuple(grid.shape)}.')
        self.values = values
        self.grid = grid
        self.atoms = atoms

    def __repr__(self):
        terms = '' if self.atoms is None else f', {len(self.atoms.atom_tables)} atom terms'
        return (f'DensityField({"x".join(map(str, self.grid.shape))} points, spacing '
                f'{self.grid.spacing:g} Bohr{terms}, charge {self.charge:.4g} e)')

    @property
    def charge(self):
        """Electrons in the box and the atom terms (e)."""
        atoms = 0.0 if self.atoms is None else self.atoms.charge
        return float(self.values.sum() * self.grid.voxel_volume) + atoms

    @functools.cached_property
    def hartree_potential(self):
        """The free-space Hartree potential on the box points (:func:`hartree_potential`)."""
        return hartree_potential(self.values, self.grid.spacing)

    @functools.cached_property
    def _density_splines(self):
        return [_spline(self.values)]

    @functools.cached_property
    def _gradient_splines(self):
        # Differences and spline prefiltering are both convolutions and commute (inside the
        # box), so differencing the density's spline coefficients gives the gradient's.
        return density_gradient(self._density_splines[0], self.grid.spacing)

    @functools.cached_property
    def _potential_spline(self):
        return _spline(self.hartree_potential)

    @functools.cached_property
    def multipoles(self):
        """(centre, charge, dipole, traceless quadrupole) of the density about the box centre,
        in box-frame coordinates, for its potential outside the box."""
        axes = self.grid.axes()
        centre = numpy.array([0.5 * (x[0] + x[-1]) for x in axes])
        dv = self.grid.voxel_volume
        rel = [a - c for a, c in zip(axes, centre)]
        f = self.values
        # first and second moments from the density's projections onto axes and planes
        dipole = numpy.array([f.sum(axis=(1, 2)) @ rel[0], f.sum(axis=(0, 2)) @ rel[1],
                              f.sum(axis=(0, 1)) @ rel[2]]) * dv
        second = numpy.empty((3, 3))
        for a in range(3):
            line = f.sum(axis=tuple(b for b in range(3) if b != a))
            second[a, a] = line @ rel[a]**2 * dv
            for b in range(a + 1, 3):
                plane = f.sum(axis=3 - a - b)      # the (a, b) plane
                second[a, b] = second[b, a] = rel[a] @ plane @ rel[b] * dv
        quadrupole = 3 * second - numpy.eye(3) * numpy.trace(second)
        return centre, float(f.sum() * dv), dipole, quadrupole

    def _inside(self, coords):
        idx = self.grid.fractional_index(coords)
        shape = numpy.asarray(self.grid.shape)[:, None]
        inside = numpy.all((idx >= 0) & (idx <= shape - 1), axis=0)
        return idx[:, inside], inside

    @staticmethod
    def _interpolate(splines, idx):
        return [ndimage.map_coordinates(c, idx, order=_SPLINE_ORDER, mode='nearest',
                                        prefilter=False) for c in splines]

    def evaluate(self, coords, deriv=0):
        """The density at ``coords`` (n, 3), and with ``deriv=1`` its gradient: shape (n,) or
        (4, n) = (rho, d/dx, d/dy, d/dz), the layout of PySCF's ``eval_rho``."""
        coords = numpy.asarray(coords, dtype=float)
        splines = self._density_splines + (self._gradient_splines if deriv else [])
        out = numpy.zeros((len(splines), len(coords)))
        idx, inside = self._inside(coords)
        if inside.any():
            out[:, inside] = self._interpolate(splines, idx)
        if deriv:
            out[1:] = self.grid.vectors_to_lab(out[1:])
        out = out if deriv else out[0]
        return out if self.atoms is None else out + self.atoms.evaluate(coords, deriv)

    def potential(self, coords):
        """The Hartree potential of the density at ``coords`` (n, 3): splines inside the box,
        the multipole expansion (charge, dipole, quadrupole) outside it."""
        coords = numpy.asarray(coords, dtype=float)
        vh = numpy.empty(len(coords))
        idx, inside = self._inside(coords)
        if inside.any():
            vh[inside] = self._interpolate([self._potential_spline], idx)[0]
        outside = ~inside
        if outside.any():
            centre, charge, dipole, quadrupole = self.multipoles
            d = self.grid.to_frame(coords[outside]) - centre
            r2 = numpy.einsum('gi,gi->g', d, d)
            r = numpy.sqrt(r2)
            vh[outside] = (charge / r + d @ dipole / (r2 * r)
                           + 0.5 * numpy.einsum('gi,ij,gj->g', d, quadrupole, d) / (r2**2 * r))
        if self.atoms is not None:
            vh += self.atoms.evaluate(coords, with_potential=True)[1]
        return vh
