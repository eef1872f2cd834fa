"""Stage 3 of the guess: a density -> an idempotent AO density matrix for this SCF object.

The density is the SAD density matrix plus a correction on a uniform box (a
:class:`~pyscf_mlguess.field.DensityField`, the model's ``delta_rho``).  The projection builds the
Kohn-Sham/Fock matrix that density defines and diagonalises it once:

    F = hcore + J[rho] + Vxc[rho] (- exchange, see below)

It is one Fock build for a guess, so it is built for cost: J and Vxc come from one quadrature
pass on the projection's own coarse Becke grid (:func:`projection_grids`), with no two-electron
integrals and nothing the SCF then builds again.

* ``J[rho]``: the Hartree potential of the SAD atoms (each spherical, so a radial integral) plus
  that of the field (free-space FFT on its box), integrated against the AO pairs.
* ``Vxc[rho]`` with the calculation's own functional of ``rho = rho[D_SAD] + field`` (the field
  and its fourth-order finite-difference gradient by cubic splines).  Meta-GGAs need a
  kinetic-energy density that a density cannot provide: PBE stands in for them (logged); VV10 is
  left out (logged).
* Exact exchange (hybrids, HF) needs a density matrix, which no density gives.  Three treatments:
  ``'sad_k'`` K from the SAD density matrix; ``'lda_x'`` the exact-exchange share replaced by LDA
  (Slater) exchange of ``rho``; ``'k_refresh'`` ``'lda_x'`` followed by one K build (the SCF
  object's own ``get_k``) from the diagonalised density matrix and a second diagonalisation.
  The default (:data:`pyscf_mlguess.config.EXCHANGE`) was chosen by total wall time, K build
  included (docs/design.md).

The Fock matrix goes through the SCF object's own ``get_fock``/``eig``/``get_occ``/``make_rdm1``,
so RHF/RKS get D with D S D = 2 D, UHF/UKS an (alpha, beta) pair and ROHF/ROKS its Roothaan form,
all with exactly the molecule's electron count and spin (aufbau occupations).  The density is
spin-summed; open-shell molecules get the same Fock matrix for both spins.
"""

import numpy
from pyscf import dft, lib
from pyscf.dft import numint
from pyscf.lib import logger

from pyscf_mlguess import config
from pyscf_mlguess.grid import RadialSAD, sad_density_matrix

EXCHANGE_TREATMENTS = ('sad_k', 'lda_x', 'k_refresh')

#: Most MB of AO values (and derivatives) per quadrature block.  PySCF's own budget
#: (``max_memory`` less what is in use) gives blocks of up to ~67,000 points, which made the
#: projection's quadrature up to about twice slower than blocks of a few thousand
#: (``benchmarks/projection_blocks.py``).
BLOCK_MEMORY = 200


def exchange_treatment(exchange):
    """``exchange`` (any case; None: ``config.EXCHANGE``) as one of
    :data:`EXCHANGE_TREATMENTS`, or ``ValueError`` naming the choices."""
    name = config.EXCHANGE if exchange is None else exchange
    if not isinstance(name, str) or name.lower() not in EXCHANGE_TREATMENTS:
        raise ValueError(f'Unknown mlsr exchange treatment {exchange!r} (mlsr_exchange); '
                         f'choose from {", ".join(EXCHANGE_TREATMENTS)}.')
    return name.lower()


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


def projection_grids(mol, level=None, orientation=None, verbose=None, stdout=None):
    """The guess's own Becke integration grid (level ``config.PROJECTION_GRID_LEVEL``, PySCF's
    default pruning), its atomic (Lebedev) grids aligned with ``orientation`` (rows: axes;
    default the Cartesian axes).

    Aligned with the box's axes (the molecule's principal axes), the quadrature turns with the
    molecule, so a rotated copy of a molecule gets the same guess, rotated (PySCF builds its
    atomic grids along the Cartesian axes): the grid is built for the molecule in its box frame
    and its points are turned back.

    It is coarser than an SCF's: the projection is one Fock build for a guess, and a coarse grid
    gives the same guess and the same SCF cycles at a fraction of the cost (measured in
    docs/design.md).  The SCF's own grid is left alone; the SCF builds it as it would from any
    other guess.
    """
    rotation = None if orientation is None else numpy.asarray(orientation, dtype=float)
    if rotation is not None and numpy.allclose(rotation, numpy.eye(3), rtol=0, atol=1e-14):
        rotation = None
    frame_mol = mol
    if rotation is not None:
        frame_mol = mol.copy()
        frame_mol.symmetry = False
        frame_mol.set_geom_(mol.atom_coords() @ rotation.T, unit='Bohr')
    grids = dft.gen_grid.Grids(frame_mol)
    grids.level = config.PROJECTION_GRID_LEVEL if level is None else level
    if verbose is not None:
        grids.verbose = verbose
    if stdout is not None:
        grids.stdout = stdout
    if rotation is None:
        return grids.build(with_non0tab=True)
    grids.build(with_non0tab=False)
    grids.coords = grids.coords @ rotation
    grids.mol = mol
    grids.non0tab = grids.screen_index = grids.make_mask(mol, grids.coords)
    return grids


def potential_matrices(mf, mol, dm_sad, field, grids, lda_x=0.0, split_lda_x=False,
                       block_memory=BLOCK_MEMORY):
    """J[rho] + Vxc[rho] (+ ``lda_x`` times the Slater-exchange potential of rho, the ``'lda_x'``
    stand-in for exact exchange) for rho = rho[D_SAD] + ``field``, by quadrature on ``grids``.

    The SAD density and its Hartree potential come from the atoms' radial tables
    (:class:`~pyscf_mlguess.grid.RadialSAD`: no AO contraction and no two-electron integrals),
    the field's from its box (splines, FFT); the exchange-correlation potential is the
    functional's (:func:`_semilocal_xc`) of the sum.  All go into one ``numint.eval_mat`` per
    block.  With ``split_lda_x`` the Slater-exchange potential matrix (unscaled) is also
    returned on its own, else None.  Also returns the electrons of rho on ``grids``.
    ``block_memory``: MB per block at most (None: PySCF's whole budget).
    """
    xc = _semilocal_xc(mf)
    ni = mf._numint if isinstance(mf, dft.rks.KohnShamDFT) else numint.NumInt()
    xctype = 'LDA' if xc is None else ni._xc_type(xc)
    deriv = 1 if xctype == 'GGA' else 0
    sad = RadialSAD(mol, dm_sad)
    nao = mol.nao
    vmat = numpy.zeros((nao, nao))
    vx_lda = numpy.zeros((nao, nao)) if split_lda_x else None
    nelec = 0.0
    # The field's Hartree FFT first, before its splines exist: its padded buffers are the
    # guess's largest (field.BYTES_PER_POINT).
    field.hartree_potential
    # PySCF's budget for its blocks: what max_memory leaves (at least one small block), capped
    max_memory = max(100, mf.max_memory - lib.current_memory()[0])
    if block_memory is not None:
        max_memory = min(max_memory, block_memory)
    for ao, mask, weight, coords in ni.block_loop(mol, grids, nao, deriv, max_memory):
        rho, vh = sad.evaluate(coords, deriv, with_potential=True)
        rho += field.evaluate(coords, deriv)
        vh += field.potential(coords)
        rho0 = rho[0] if deriv else rho
        nelec += rho0 @ weight
        vrho, vsigma = vh, None
        if xc is not None:
            vxc = ni.eval_xc(xc, rho, spin=0, deriv=1)[1]
            vrho, vsigma = vxc[0] + vh, vxc[1]
        if lda_x or split_lda_x:
            vx = ni.eval_xc('LDA,', rho0, spin=0, deriv=1)[1][0]
            vrho = vrho + lda_x * vx
            if split_lda_x:
                ao0 = ao[0] if deriv else ao
                vx_lda += numint.eval_mat(mol, ao0, weight, rho0, (vx,), mask, 'LDA')
        vmat += numint.eval_mat(mol, ao, weight, rho, (vrho, vsigma), mask, xctype)
    return vmat, vx_lda, nelec


def _is_spin_separated(mf):
    """True for UHF/UKS and ROHF/ROKS, whose Fock matrices come per spin."""
    return mf.istype('UHF') or mf.istype('ROHF')


def _diagonalise(mf, h1e, s1e, vhf, dm):
    fock = mf.get_fock(h1e, s1e, vhf, dm, cycle=-1, diis=None)
    mo_energy, mo_coeff = mf.eig(fock, s1e)
    mo_occ = mf.get_occ(mo_energy, mo_coeff)
    return lib.tag_array(mf.make_rdm1(mo_coeff, mo_occ), mo_energy=mo_energy)


def project_density(mf, dm_sad, field, exchange=None, mol=None, s1e=None, grids=None):
    """Density matrix of the density ``rho[D_SAD] + field`` for the SCF object ``mf``.

    Args:
        mf: a molecular SCF object (RHF, UHF, ROHF, RKS, UKS, ROKS and their variants).
        dm_sad: the SAD density matrix (:func:`pyscf_mlguess.grid.sad_density_matrix`), or None
            to compute it.
        field: the correction to the SAD density, a :class:`~pyscf_mlguess.field.DensityField`
            (spin-summed, e/Bohr^3).
        exchange: treatment of exact exchange, one of :data:`EXCHANGE_TREATMENTS` (default
            ``config.EXCHANGE``).
        grids: the integration grid of the projection (default :func:`projection_grids`).

    Returns:
        The density matrix in the form ``mf`` uses (2D for RHF; an (alpha, beta) pair otherwise),
        tagged, as PySCF's ``make_rdm1`` tags it, with the orbitals it fills (``mo_coeff``,
        ``mo_occ``) and their energies in the projection's Fock matrix (``mo_energy``).
    """
    mol = mf.mol if mol is None else mol
    exchange = exchange_treatment(exchange)
    if dm_sad is None:
        dm_sad = sad_density_matrix(mol)[0]
    t0 = (logger.process_clock(), logger.perf_counter())
    h1e = mf.get_hcore(mol)
    s1e = mf.get_ovlp(mol) if s1e is None else s1e
    if grids is None:
        grids = projection_grids(mol, orientation=field.grid.orientation, verbose=mf.verbose,
                                 stdout=mf.stdout)
    t0 = logger.timer(mf, f'mlsr projection grid (level {grids.level}, {grids.weights.size} '
                      'points)', *t0)

    omega, alpha, hyb = exchange_fractions(mf)
    has_exx = bool(hyb or alpha)
    # Slater exchange stands in for the short-range (or global) exact-exchange share.
    lda_x_share = hyb if hyb != 0 else alpha
    # With 'lda_x' the Slater stand-in goes into the same matrix; 'k_refresh' needs J + Vxc
    # without it too, for its second Fock matrix.
    stand_in = lda_x_share if has_exx and exchange != 'sad_k' else 0.0
    vmat, vx_lda, nelec = potential_matrices(mf, mol, dm_sad, field, grids, lda_x=stand_in,
                                             split_lda_x=has_exx and exchange == 'k_refresh')
    logger.debug(mf, 'mlsr projection: %.6f electrons in the density on the integration grid',
                 nelec)
    t0 = logger.timer(mf, 'mlsr potential matrix', *t0)

    spin_separated = _is_spin_separated(mf)
    dm_ref = numpy.array((dm_sad * .5, dm_sad * .5)) if spin_separated else dm_sad
    if has_exx and exchange == 'sad_k':
        vhf = _subtract_exchange(mf, mol, vmat, dm_ref)
    else:
        vhf = numpy.array((vmat, vmat)) if spin_separated else vmat
    dm = _diagonalise(mf, h1e, s1e, vhf, dm_ref)
    if has_exx and exchange == 'k_refresh':
        # The LDA stand-in made a first density matrix; now the real exact exchange from it.
        vmat = vmat - stand_in * vx_lda
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
