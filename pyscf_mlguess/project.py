"""Stage 3 of the guess: a density on the uniform grid -> an idempotent AO density matrix.

The density is given as the SAD density matrix (exact, evaluated from AOs) plus a correction
``delta_rho`` sampled on a uniform grid.  The projection builds the Kohn-Sham/Fock matrix that
density defines and diagonalises it once:

    F = hcore + J[rho] + Vxc[rho] (- exchange, see below)

* ``J[rho] = J[D_SAD] + J[delta_rho]``: the first term with the SCF object's own ``get_j``; the
  second from the free-space Hartree potential of ``delta_rho`` (zero-padded FFT convolution with
  1/r on the uniform grid, Hockney's method), interpolated onto the integration grid.
* ``Vxc[rho]`` with the calculation's own functional, ``rho = rho_SAD + delta_rho`` evaluated on
  the integration grid (``delta_rho`` and its fourth-order finite-difference gradient by
  cubic-spline interpolation).  Meta-GGAs
  need a kinetic-energy density that a density cannot provide: PBE stands in for them (logged).
* Exact exchange (hybrids, HF) needs a density matrix, which no density gives.  Three treatments:
  ``'sad_k'`` K from the SAD density matrix; ``'lda_x'`` the exact-exchange share replaced by LDA
  (Slater) exchange of ``rho``; ``'k_refresh'`` ``'lda_x'`` followed by one K build from the
  diagonalised density matrix and a second diagonalisation (costs about one SCF cycle).  The
  default (:data:`pyscf_mlguess.config.EXCHANGE`) was chosen by total cycles, extra build
  included; see ``benchmarks/results/oracle.md``.

The Fock matrix goes through the SCF object's own ``get_fock``/``eig``/``get_occ``/``make_rdm1``,
so RHF/RKS get D with D S D = 2 D, UHF/UKS an (alpha, beta) pair and ROHF/ROKS its Roothaan form,
all with exactly the molecule's electron count and spin (aufbau occupations).  The density on the
grid is spin-summed; open-shell molecules get the same Fock matrix for both spins.
"""

import numpy
import scipy.fft
from scipy import ndimage
from pyscf import dft, lib
from pyscf.dft import numint
from pyscf.lib import logger
from pyscf.scf import uhf

from pyscf_mlguess import config
from pyscf_mlguess.grid import sad_density_matrix

EXCHANGE_TREATMENTS = ('sad_k', 'lda_x', 'k_refresh')

# Mean of 1/r over a unit cube centred at the origin: the self-term of the discrete Coulomb kernel.
_CUBE_MEAN_INV_R = 2.3800772531

# Order of the interpolating splines for delta_rho and its potential.
_SPLINE_ORDER = 3


def _coulomb_kernel_spectrum(padded, h):
    """The real-FFT spectrum of the 1/r kernel on a zero-padded box of (even) shape ``padded``.

    The kernel is even along every axis, so its spectrum is the type-I DCT of one octant: an
    eighth of the points of building and transforming the whole padded kernel.
    """
    half = [m // 2 + 1 for m in padded]
    d2 = [(h * numpy.arange(n)) ** 2 for n in half]
    r = numpy.sqrt(d2[0][:, None, None] + d2[1][None, :, None] + d2[2][None, None, :])
    r[0, 0, 0] = 1.0
    octant = 1.0 / r
    octant[0, 0, 0] = _CUBE_MEAN_INV_R / h
    del r
    spec = scipy.fft.dctn(octant, type=1, workers=-1)
    # q and m - q carry the same value: mirror the first two axes to their full length
    for axis in (0, 1):
        mirror = numpy.take(spec, numpy.arange(1, padded[axis] - half[axis] + 1), axis=axis)
        spec = numpy.concatenate([spec, numpy.flip(mirror, axis=axis)], axis=axis)
    return spec


def hartree_potential(rho, grid):
    """Free-space electrostatic potential of ``rho`` (e/Bohr^3) on ``grid``, in Hartree/e.

    Zero-padded FFT convolution with the 1/r kernel (no periodic images, Hockney's method); the
    kernel's self term is the mean of 1/r over one voxel.
    """
    h = grid.spacing
    shape = rho.shape
    padded = [2 * scipy.fft.next_fast_len(n, real=True) for n in shape]
    v = scipy.fft.irfftn(scipy.fft.rfftn(rho, padded, workers=-1)
                         * _coulomb_kernel_spectrum(padded, h), padded, workers=-1)
    return v[:shape[0], :shape[1], :shape[2]] * h**3


def density_gradient(f, h):
    """Gradient of a box density by fourth-order central differences (second order in the two
    outermost layers, where the density is negligible).

    Fourth order matters for GGAs: on water at 0.1 Bohr, with an otherwise exact Hartree term,
    numpy's second-order gradient leaves a Vxc matrix error of 7e-5 Ha (4 SCF cycles from the
    exact density); fourth order leaves 8e-6 Ha (1 cycle).
    """
    grads = []
    for ax in range(3):
        g = numpy.gradient(f, h, axis=ax)
        if f.shape[ax] > 4:
            def shifted(k):
                return tuple(slice(2 + k, f.shape[ax] - 2 + k) if a == ax else slice(None)
                             for a in range(3))
            g[shifted(0)] = (8 * (f[shifted(1)] - f[shifted(-1)])
                             - (f[shifted(2)] - f[shifted(-2)])) / (12 * h)
        grads.append(g)
    return grads


class GridDensityCorrection:
    """``delta_rho`` on a uniform grid, evaluated anywhere: value, gradient and Hartree potential.

    Inside the box by cubic splines; outside it the density is zero and the potential is the
    multipole expansion (charge, dipole, quadrupole) of ``delta_rho`` about the box centre.
    """

    def __init__(self, delta_rho, grid):
        if delta_rho.shape != tuple(grid.shape):
            raise ValueError(f'delta_rho has shape {delta_rho.shape}, its grid {grid.shape}.')
        self.grid = grid
        h = grid.spacing
        grads = density_gradient(delta_rho, h)
        fields = [delta_rho, *grads, hartree_potential(delta_rho, grid)]
        self._coeffs = [ndimage.spline_filter(f, order=_SPLINE_ORDER, mode='nearest')
                        for f in fields]
        axes = grid.axes()
        self.centre = numpy.array([0.5 * (x[0] + x[-1]) for x in axes])
        dv = grid.voxel_volume
        x, y, z = (a - c for a, c in zip(axes, self.centre))
        self.charge = delta_rho.sum() * dv
        self.dipole = numpy.array([numpy.einsum('ijk,i->', delta_rho, x),
                                   numpy.einsum('ijk,j->', delta_rho, y),
                                   numpy.einsum('ijk,k->', delta_rho, z)]) * dv
        second = numpy.empty((3, 3))
        for a, ua in enumerate((x, y, z)):
            for b, ub in enumerate((x, y, z)):
                shp_a = [1, 1, 1]
                shp_a[a] = -1
                shp_b = [1, 1, 1]
                shp_b[b] = -1
                second[a, b] = (delta_rho * ua.reshape(shp_a) * ub.reshape(shp_b)).sum() * dv
        self.quadrupole = 3 * second - numpy.eye(3) * numpy.trace(second)

    def evaluate(self, coords):
        """(rho, d/dx, d/dy, d/dz) of delta_rho and its Hartree potential at ``coords``."""
        idx = self.grid.fractional_index(coords)
        shape = numpy.asarray(self.grid.shape)[:, None]
        inside = numpy.all((idx >= 0) & (idx <= shape - 1), axis=0)
        n = len(coords)
        rho = numpy.zeros((4, n))
        vh = numpy.empty(n)
        if inside.any():
            sub = idx[:, inside]
            vals = [ndimage.map_coordinates(c, sub, order=_SPLINE_ORDER, mode='nearest',
                                            prefilter=False) for c in self._coeffs]
            rho[:, inside] = vals[:4]
            vh[inside] = vals[4]
        outside = ~inside
        if outside.any():
            d = coords[outside] - self.centre
            r2 = numpy.einsum('gi,gi->g', d, d)
            r = numpy.sqrt(r2)
            vh[outside] = (self.charge / r + d @ self.dipole / (r2 * r)
                           + 0.5 * numpy.einsum('gi,ij,gj->g', d, self.quadrupole, d) / (r2**2 * r))
        return rho, vh


def exchange_fractions(mf):
    """(omega, long-range fraction, short-range/global fraction) of exact exchange in ``mf``."""
    if not isinstance(mf, dft.rks.KohnShamDFT):
        return 0.0, 0.0, 1.0
    return mf._numint.rsh_and_hybrid_coeff(mf.xc, spin=mf.mol.spin)


def exchange_matrix(mf, mol, dm):
    """The scaled exact-exchange matrix of ``mf`` for ``dm``, as in ``rks.get_veff`` (no 1/2)."""
    omega, alpha, hyb = exchange_fractions(mf)
    if omega == 0:
        return mf.get_k(mol, dm, hermi=1) * hyb
    if alpha == 0:
        return mf.get_k(mol, dm, hermi=1, omega=-omega) * hyb
    if hyb == 0:
        return mf.get_k(mol, dm, hermi=1, omega=omega) * alpha
    vk = mf.get_k(mol, dm, hermi=1) * hyb
    vk += mf.get_k(mol, dm, hermi=1, omega=omega) * (alpha - hyb)
    return vk


def _semilocal_xc(mf):
    """The functional whose potential the projection evaluates (None for HF)."""
    if not isinstance(mf, dft.rks.KohnShamDFT):
        return None
    ni = mf._numint
    xc = mf.xc
    if ni._xc_type(xc) == 'MGGA':
        logger.info(mf, 'mlsr projection: meta-GGA %s needs tau; PBE stands in for it', xc)
        xc = 'PBE'
    if mf.do_nlc():
        logger.info(mf, 'mlsr projection: the non-local (VV10) term is left out of the guess')
    return xc


def _integration_grids(mf, mol, dm_sad):
    """The integration grid: the DFT object's own (built and pruned as its first get_veff
    would, so the SCF reuses it), or a level-``HF_GRID_LEVEL`` Becke grid for HF."""
    if isinstance(mf, dft.rks.KohnShamDFT):
        if mf.grids.coords is None:
            mf.initialize_grids(mol, dm_sad)
        return mf.grids
    grids = dft.gen_grid.Grids(mol)
    grids.level = config.HF_GRID_LEVEL
    grids.verbose = mf.verbose
    grids.stdout = mf.stdout
    return grids.build(with_non0tab=True)


def potential_matrices(mf, mol, dm_sad, correction, with_lda_x=False):
    """Vxc[rho] + J[delta_rho] on the integration grid, rho = rho[D_SAD] + delta_rho.

    With ``with_lda_x`` the same pass also integrates the Slater-exchange potential of rho (the
    ``'lda_x'`` stand-in for exact exchange), else that matrix is None.  Also returns the number
    of electrons of rho on the integration grid.
    """
    xc = _semilocal_xc(mf)
    ni = mf._numint if isinstance(mf, dft.rks.KohnShamDFT) else numint.NumInt()
    grids = _integration_grids(mf, mol, dm_sad)
    gga = xc is not None and ni._xc_type(xc) == 'GGA'
    nvar = 4 if gga else 1
    nao = mol.nao
    vmat = numpy.zeros((nao, nao))
    vx_lda = numpy.zeros((nao, nao)) if with_lda_x else None
    nelec = 0.0
    shls_slice = (0, mol.nbas)
    ao_loc = mol.ao_loc_nr()
    max_memory = max(2000, mf.max_memory - lib.current_memory()[0])
    for ao, mask, weight, coords in ni.block_loop(mol, grids, nao, int(gga), max_memory):
        delta, vh = correction.evaluate(coords)
        rho = ni.eval_rho(mol, ao, dm_sad, mask, 'GGA' if gga else 'LDA', hermi=1)
        rho += delta[:nvar].reshape(rho.shape)
        rho0 = rho[0] if gga else rho
        nelec += numpy.dot(rho0, weight)
        wv = numpy.zeros((nvar, len(weight)))
        if xc is not None:
            wv += ni.eval_xc_eff(xc, rho, deriv=1, xctype='GGA' if gga else 'LDA')[1]
        wv[0] += vh
        wv *= weight
        if gga:
            wv[0] *= .5  # the matrix is symmetrised below
            aow = numint._scale_ao(ao, wv)
            vmat += numint._dot_ao_ao(mol, ao[0], aow, mask, shls_slice, ao_loc)
        else:
            aow = numint._scale_ao(ao, wv[0])
            vmat += numint._dot_ao_ao(mol, ao, aow, mask, shls_slice, ao_loc)
        if with_lda_x:
            ao0 = ao[0] if gga else ao
            wx = ni.eval_xc_eff('LDA,', rho0, deriv=1, xctype='LDA')[1][0] * weight
            vx_lda += numint._dot_ao_ao(mol, ao0, numint._scale_ao(ao0, wx), mask, shls_slice,
                                        ao_loc)
    if gga:
        vmat = vmat + vmat.T
    return vmat, vx_lda, nelec


def _is_spin_separated(mf):
    """True for UHF/UKS and ROHF/ROKS, whose Fock matrices come per spin."""
    return mf.istype('UHF') or mf.istype('ROHF')


def _diagonalise(mf, h1e, s1e, vhf, dm):
    fock = mf.get_fock(h1e, s1e, vhf, dm, cycle=-1, diis=None)
    mo_energy, mo_coeff = mf.eig(fock, s1e)
    mo_occ = mf.get_occ(mo_energy, mo_coeff)
    return mf.make_rdm1(mo_coeff, mo_occ)


def project_density(mf, delta_rho, grid, dm_sad=None, exchange=None, mol=None, s1e=None,
                    correction=None):
    """Density matrix of the density ``rho[D_SAD] + delta_rho`` for the SCF object ``mf``.

    Args:
        mf: a molecular SCF object (RHF, UHF, ROHF, RKS, UKS, ROKS and their variants).
        delta_rho: correction to the SAD density on ``grid`` (e/Bohr^3), spin-summed.
        grid: the :class:`pyscf_mlguess.grid.UniformGrid` of ``delta_rho``.
        dm_sad: the SAD density matrix (computed when not given).
        exchange: treatment of exact exchange, one of :data:`EXCHANGE_TREATMENTS`.
        correction: the :class:`GridDensityCorrection` of ``delta_rho`` if already built
            (else it is built here).

    Returns:
        The density matrix in the form ``mf`` uses (2D for RHF; an (alpha, beta) pair otherwise).
    """
    mol = mf.mol if mol is None else mol
    exchange = config.EXCHANGE if exchange is None else exchange
    if exchange not in EXCHANGE_TREATMENTS:
        raise ValueError(f'Unknown exchange treatment {exchange!r}; '
                         f'choose from {EXCHANGE_TREATMENTS}.')
    if dm_sad is None:
        dm_sad = sad_density_matrix(mol)[0]
    t0 = (logger.process_clock(), logger.perf_counter())
    h1e = mf.get_hcore(mol)
    s1e = mf.get_ovlp(mol) if s1e is None else s1e
    if correction is None:
        correction = GridDensityCorrection(numpy.asarray(delta_rho, dtype=float), grid)
    elif correction.grid is not grid:
        raise ValueError('correction was built on another grid than the one given.')
    t0 = logger.timer(mf, 'mlsr Hartree potential on the box', *t0)

    omega, alpha, hyb = exchange_fractions(mf)
    has_exx = bool(hyb or alpha)
    # Slater exchange stands in for the short-range (or global) exact-exchange share.
    lda_x_share = hyb if hyb != 0 else alpha
    vmat, vx_lda, nelec = potential_matrices(mf, mol, dm_sad, correction,
                                             with_lda_x=has_exx and exchange != 'sad_k')
    logger.debug(mf, 'mlsr projection: %.6f electrons in the density on the integration grid',
                 nelec)
    vmat += mf.get_j(mol, dm_sad, hermi=1)
    t0 = logger.timer(mf, 'mlsr potential matrix', *t0)

    spin_separated = _is_spin_separated(mf)
    dm_ref = numpy.array((dm_sad * .5, dm_sad * .5)) if spin_separated else dm_sad
    if has_exx and exchange == 'sad_k':
        vhf = _subtract_exchange(mf, mol, vmat, dm_ref)
    else:
        vhf = vmat if vx_lda is None else vmat + lda_x_share * vx_lda
        if spin_separated:
            vhf = numpy.array((vhf, vhf))
    dm = _diagonalise(mf, h1e, s1e, vhf, dm_ref)
    if has_exx and exchange == 'k_refresh':
        # The LDA stand-in made a first density matrix; now the real exact exchange from it.
        dm = _diagonalise(mf, h1e, s1e, _subtract_exchange(mf, mol, vmat, dm), dm)
        logger.info(mf, 'mlsr projection: exact exchange refreshed once from the first '
                    'diagonalised density matrix')
    logger.timer(mf, 'mlsr diagonalisation', *t0)
    return dm


def _subtract_exchange(mf, mol, vhf, dm):
    """vhf - K (per spin for a spin pair, -K/2 for a spin-summed dm)."""
    vk = exchange_matrix(mf, mol, dm)
    if numpy.ndim(dm) == 3:
        return numpy.array((vhf - vk[0], vhf - vk[1]))
    return vhf - vk * .5
