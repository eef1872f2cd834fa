"""Stage 1 of the guess: the SAD density of a molecule on a uniform box.

The box is aligned with the molecule's principal axes of inertia (:func:`principal_axes`, with a
deterministic order and sign), so a rotated or translated copy of a molecule gets the same image
and the box is as small as a box can be made without knowing more; it encloses every nucleus with
``margin`` Bohr to spare and has a ``spacing`` in Bohr that is recorded with it
(:class:`UniformGrid`).  Values live at the points ``origin + spacing * (i, j, k) @ orientation``.

The SAD density is PySCF's own atomic guess (:func:`pyscf.scf.hf.init_guess_by_atom`): a sum of
spherically averaged atomic HF densities.  Because each atomic density is spherical, it is
tabulated once per element on a fine radial grid and summed onto the box atom by atom, each atom
touching only the sub-box inside its cutoff radius.  Memory stays bounded by one atom's sub-box and
a QM9-size molecule takes a fraction of a second.
"""

import dataclasses

import numpy
from pyscf import lib
from pyscf.dft import numint
from pyscf.lib import logger
from pyscf.scf import hf
from scipy import integrate

from pyscf_mlguess import config


_IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


@dataclasses.dataclass(frozen=True)
class UniformGrid:
    """A uniform grid: point ``(i, j, k)`` sits at ``origin + spacing * (i, j, k) @ orientation``.

    ``orientation`` holds the box's three axes as rows (orthonormal, right-handed; default the
    Cartesian axes).  *Box-frame* coordinates of a point ``x`` are ``x @ orientation.T``
    (:meth:`to_frame`).  ``margin`` records the distance (Bohr) kept between the outermost
    nucleus and the box face.
    """
    origin: tuple
    spacing: float
    shape: tuple
    margin: float = 0.0
    orientation: tuple = _IDENTITY

    @property
    def rotation(self):
        """``orientation`` as a (3, 3) array."""
        return numpy.asarray(self.orientation, dtype=float)

    def to_frame(self, coords):
        """Box-frame coordinates of Cartesian points (n, 3) (Bohr)."""
        return numpy.asarray(coords, dtype=float) @ self.rotation.T

    def vectors_to_lab(self, vectors):
        """Cartesian components (3, n) of vectors given by their box-frame components (3, n)."""
        return self.rotation.T @ vectors

    @property
    def size(self):
        return int(numpy.prod(self.shape))

    @property
    def voxel_volume(self):
        return self.spacing ** 3

    def axes(self):
        """The three 1D box-frame coordinate arrays of the points (Bohr)."""
        origin = self.to_frame(self.origin)
        return [o + self.spacing * numpy.arange(n) for o, n in zip(origin, self.shape)]

    def coords(self, start=0, stop=None):
        """Cartesian coordinates (Bohr) of the points ``start:stop`` in C order, shape (n, 3)."""
        stop = self.size if stop is None else stop
        idx = numpy.unravel_index(numpy.arange(start, stop), self.shape)
        return numpy.asarray(self.origin) + self.spacing * numpy.stack(idx, axis=1) @ self.rotation

    def sample(self, func, block=200_000):
        """``func(coords)`` (a value per point of an (n, 3) array) on every point, shape
        ``self.shape``; evaluated ``block`` points at a time."""
        out = numpy.empty(self.size, dtype=float)
        for start in range(0, self.size, block):
            stop = min(start + block, self.size)
            out[start:stop] = func(self.coords(start, stop))
        return out.reshape(self.shape)

    def fractional_index(self, coords):
        """Continuous (i, j, k) index of Cartesian points, shape (3, n), for interpolation."""
        return (self.to_frame(numpy.asarray(coords) - numpy.asarray(self.origin))
                / self.spacing).T

    def refine(self, factor):
        """The grid ``factor`` times finer that covers the same voxels.

        Each voxel of this grid, centred on its point, is split into ``factor**3`` sub-voxels
        (the layout a 3D pixel shuffle produces).
        """
        factor = int(factor)
        spacing = self.spacing / factor
        shift = 0.5 * (self.spacing - spacing) * self.rotation.sum(axis=0)
        return UniformGrid(tuple((numpy.asarray(self.origin) - shift).tolist()), spacing,
                           tuple(n * factor for n in self.shape), self.margin, self.orientation)


def principal_axes(mol, tol=1e-6):
    """The molecule's principal axes of inertia as the rows of a rotation matrix, with a
    deterministic order and sign, so that rotated copies of a molecule get co-rotated axes.

    * Order: by increasing moment of inertia (the longest extent first).
    * Degenerate moments (symmetric and spherical tops): within their plane or space, the first
      axis points to the first atom (in input order) off the already fixed axes, the next to the
      next such atom (made orthogonal); linear molecules keep any perpendicular pair, which the
      molecule's own symmetry makes equivalent.
    * Sign: the first two axes point to where the mass-weighted third moment is positive, or,
      where it vanishes (a symmetric arrangement), to the first atom off the axis' plane; the
      third completes a right-handed frame (a rotation, never a reflection).

    Atoms count by their masses, ghost atoms not at all; a molecule with one real atom gets the
    Cartesian axes.  ``tol`` is relative (moments, lengths).
    """
    coords = mol.atom_coords()
    mass = mol.atom_mass_list(isotope_avg=True)
    if numpy.count_nonzero(mass) < 2:
        return numpy.eye(3)
    x = coords - mass @ coords / mass.sum()
    inertia = numpy.einsum('i,ij,ik->jk', mass, x, x)
    inertia = numpy.eye(3) * numpy.trace(inertia) - inertia
    moments, vectors = numpy.linalg.eigh(inertia)
    axes = vectors.T.copy()
    length = numpy.abs(x[mass > 0]).max()
    small = tol * max(length, 1.0)
    # degenerate groups: axes from atom directions (deterministic, co-rotating)
    scale = max(abs(moments).max(), 1e-12)
    groups, start = [], 0
    for i in range(1, 4):
        if i == 3 or moments[i] - moments[start] > tol * scale:
            groups.append(list(range(start, i)))
            start = i
    for group in groups:
        if len(group) < 2:
            continue
        basis = axes[group]
        chosen = []
        for ia in numpy.flatnonzero(mass > 0):
            v = basis.T @ (basis @ x[ia])
            for c in chosen:
                v = v - (v @ c) * c
            if numpy.linalg.norm(v) > small:
                chosen.append(v / numpy.linalg.norm(v))
                if len(chosen) == len(group) - 1:
                    break
        if len(chosen) == len(group) - 1:
            if len(group) == 3:
                chosen.append(numpy.cross(chosen[0], chosen[1]))
            else:   # the last one: orthogonal to the chosen one inside the plane
                rest = basis.T @ (basis @ numpy.cross(axes[[a for a in range(3)
                                                             if a not in group][0]], chosen[0]))
                chosen.append(rest / numpy.linalg.norm(rest))
            axes[group] = chosen
    for a in range(2):
        u = x @ axes[a]
        third = mass @ u**3
        if abs(third) > tol * (mass.sum() * length**3):
            sign = numpy.sign(third)
        else:
            off = numpy.flatnonzero((abs(u) > small) & (mass > 0))
            sign = numpy.sign(u[off[0]]) if off.size else 1.0
        axes[a] *= sign
    axes[2] = numpy.cross(axes[0], axes[1])
    return axes


def make_grid(mol, spacing=None, margin=None, multiple=None, orientation=None):
    """The uniform box around ``mol``'s atoms (ghost atoms included).

    The box is aligned with ``orientation`` (rows: its axes; default the molecule's
    :func:`principal_axes`), extends ``margin`` Bohr beyond the outermost nuclei along each of
    its axes, has points ``spacing`` Bohr apart and a point count per edge rounded up to a
    multiple of ``multiple``; it is centred on the molecule.  (What the guess needs on it is
    checked against ``max_memory`` by :func:`pyscf_mlguess.guess.guess_memory`.)
    """
    spacing = config.GRID_SPACING if spacing is None else float(spacing)
    margin = config.GRID_MARGIN if margin is None else float(margin)
    multiple = config.GRID_MULTIPLE if multiple is None else int(multiple)
    if mol.natm == 0:
        raise ValueError('A uniform grid needs at least one atom; the molecule has none.')
    if not spacing > 0 or margin < 0:
        raise ValueError(f'Grid spacing must be > 0 and margin >= 0 (Bohr); got '
                         f'spacing={spacing}, margin={margin}.')
    rotation = principal_axes(mol) if orientation is None else numpy.asarray(orientation, float)
    xyz = mol.atom_coords() @ rotation.T            # box-frame coordinates of the nuclei
    lo = xyz.min(axis=0) - margin
    hi = xyz.max(axis=0) + margin
    shape = numpy.ceil((hi - lo) / spacing).astype(int) + 1
    shape = -(-shape // multiple) * multiple
    centre = 0.5 * (lo + hi)
    origin = centre - 0.5 * spacing * (shape - 1)
    return UniformGrid(tuple((origin @ rotation).tolist()), spacing, tuple(shape.tolist()),
                       margin, tuple(map(tuple, rotation.tolist())))


def check_atomic_shells(mol):
    """Raise ``ValueError`` for an atom whose basis cannot hold its ground-state shells in
    PySCF's spherically averaged atomic HF (the SAD), naming the atom, the shell and the likely
    cause; PySCF itself stops there with a bare assertion.

    The usual case is an element beyond Kr in a def2 basis without its ECP: the basis is built
    for the valence electrons only.
    """
    from pyscf import gto
    from pyscf.data import elements
    from pyscf.scf import atom_hf
    seen = set()
    for ia in range(mol.natm):
        symb = mol.atom_symbol(ia)
        if symb in seen or mol.atom_charge(ia) == 0:
            continue
        seen.add(symb)
        std = gto.mole._std_symbol(symb)
        core = gto.ecp.core_configuration(mol.atom_nelec_core(ia), atom_symbol=std)
        shells = mol.atom_shell_ids(ia)
        for l, name in enumerate('spdf'):
            occupied = atom_hf.frac_occ(std, l, elements.NRSRHF_CONFIGURATION)[0] - core[l]
            functions = sum(mol.bas_nctr(ib) for ib in shells if mol.bas_angular(ib) == l)
            if occupied > functions:
                ecp = ('' if mol.atom_nelec_core(ia) else
                       f' No ECP is set for {std}; for elements beyond Kr the def2 bases expect '
                       f'one (gto.M(..., ecp={mol.basis!r}) when the basis is a def2 name).')
                raise ValueError(
                    f'Atom {ia} ({symb}): its basis has {functions} contracted {name} '
                    f'function(s) but the atom has {occupied} doubly occupied {name} shell(s) '
                    f'outside its core, so the atomic (SAD) density that init_guess=\'mlsr\' '
                    f'starts from cannot be built.{ecp} Or use init_guess=\'minao\'.')


def sad_density_matrix(mol):
    """PySCF's SAD density matrix (spin-summed) and the electrons each atom carries in it.

    Raises :class:`ValueError` when an atom that has electrons gets none in the SAD (for
    example an element whose basis is missing), because the guess would miss those electrons,
    and when its basis cannot hold its occupied shells (:func:`check_atomic_shells`).
    """
    check_atomic_shells(mol)
    dm = hf.init_guess_by_atom(mol)
    s = mol.intor_symmetric('int1e_ovlp')
    charges = mol.atom_charges()
    nelec_atom = numpy.array([numpy.einsum('ij,ji->', dm[p0:p1], s[:, p0:p1])
                              for _, _, p0, p1 in mol.aoslice_by_atom()])
    for ia in range(mol.natm):
        if charges[ia] > 0 and abs(nelec_atom[ia] - charges[ia]) > 1e-3:
            raise ValueError(
                f'The SAD guess cannot describe atom {ia} ({mol.atom_symbol(ia)}): it carries '
                f'{nelec_atom[ia]:.3f} electrons instead of {charges[ia]} (no basis functions or '
                f'no atomic HF solution for this element).')
    return dm, nelec_atom


def _radial_points():
    """The geometric radial grid (Bohr) of the SAD atoms' tables."""
    return numpy.geomspace(config.SAD_RADIAL_RMIN, config.SAD_RADIAL_RMAX,
                           config.SAD_RADIAL_POINTS)


def sad_radial_profiles(mol, dm_sad):
    """Radial profile of each distinct atom's spherical SAD density: {symbol: (r, rho)}, or
    None for an atom without electrons (a ghost)."""
    r = _radial_points()
    # Sampling along a general direction: the occupation-averaged atomic density is spherical.
    direction = numpy.array([0.48, 0.36, 0.8])
    direction /= numpy.linalg.norm(direction)
    table = {}
    aoslices = mol.aoslice_by_atom()
    for ia in range(mol.natm):
        symb = mol.atom_symbol(ia)
        if symb in table:
            continue
        b0, b1, p0, p1 = aoslices[ia]
        if p1 == p0 or mol.atom_charge(ia) == 0:
            table[symb] = None
            continue
        pts = mol.atom_coord(ia) + r[:, None] * direction
        ao = mol.eval_gto('GTOval', pts, shls_slice=(b0, b1))
        rho = numpy.einsum('gi,ij,gj->g', ao, dm_sad[p0:p1, p0:p1], ao)
        table[symb] = (r, numpy.maximum(rho, 0))
    return table


def sad_density_on_grid(mol, grid, dm_sad=None, elements=None):
    """Spin-summed SAD density (e/Bohr^3) on ``grid``, shape ``grid.shape``.

    With ``elements`` (a sequence of element symbols), the SAD image of a network that takes
    element channels: shape ``(1 + len(elements),) + grid.shape``, the total density and then
    the SAD density of each listed element's atoms (atoms of other elements count in the total
    only).  Both come from the same per-atom tables in one pass."""
    if dm_sad is None:
        dm_sad = sad_density_matrix(mol)[0]
    table = sad_radial_profiles(mol, dm_sad)
    channel = {}
    if elements is not None:
        channel = {e: 1 + i for i, e in enumerate(elements)}
        out = numpy.zeros((1 + len(elements),) + tuple(grid.shape))
        rho = out[0]
    else:
        rho = numpy.zeros(grid.shape)
    axes = grid.axes()
    for ia in range(mol.natm):
        prof = table[mol.atom_symbol(ia)]
        if prof is None:
            continue
        r, rad = prof
        above = numpy.nonzero(rad > config.SAD_DENSITY_CUTOFF)[0]
        rcut = r[above[-1]] if above.size else 0.0
        centre = grid.to_frame(mol.atom_coord(ia))
        sub = []
        for x, c in zip(axes, centre):
            lo, hi = numpy.searchsorted(x, [c - rcut, c + rcut])
            sub.append(slice(lo, hi))
        dx, dy, dz = (x[s] - c for x, s, c in zip(axes, sub, centre))
        dist = numpy.sqrt(dx[:, None, None]**2 + dy[None, :, None]**2 + dz[None, None, :]**2)
        piece = numpy.interp(dist, r, rad, right=0.0)
        rho[tuple(sub)] += piece
        c = channel.get(mol.atom_pure_symbol(ia))
        if c is not None:
            out[(c,) + tuple(sub)] += piece
    return out if elements is not None else rho


def _radial_hartree(r, rho):
    """Electrostatic potential of a spherical density on its radial grid ``r``:
    V(r) = 4 pi [ (1/r) int_0^r rho s^2 ds + int_r^inf rho s ds ], and the total charge."""
    inner = 4 * numpy.pi * integrate.cumulative_trapezoid(rho * r**2, r, initial=0.0)
    outer = 4 * numpy.pi * integrate.cumulative_trapezoid(rho * r, r, initial=0.0)
    return inner / r + (outer[-1] - outer), inner[-1]


class RadialAtoms:
    """Spherical densities on the atoms and their Hartree potential at any points, from radial
    tables.

    Per kind of atom one table on the geometric radial grid ``r`` holds the density, its radial
    slope and the electrostatic potential of that density (a radial integral).  At a point,
    each atom costs one distance and one table lookup.  Beyond ``r[-1]`` an atom's density is
    zero and its potential that of a point charge.

    Args:
        atom_coords: (natm, 3) centres (Bohr).
        atom_keys: the kind of each atom, a key of ``profiles``.
        r: the radial grid (Bohr), geometric.
        profiles: {kind: density on ``r``}; atoms of a kind not in it (or None) carry nothing.
    """

    def __init__(self, atom_coords, atom_keys, r, profiles):
        kinds = [k for k, rho in profiles.items() if rho is not None]
        self.r = numpy.asarray(r, dtype=float)
        # rows per kind: density, d density / dr, Hartree potential
        self.tables = numpy.empty((len(kinds), 3, self.r.size))
        self.charges = numpy.empty(len(kinds))
        for k, kind in enumerate(kinds):
            rho = numpy.asarray(profiles[kind], dtype=float)
            v, self.charges[k] = _radial_hartree(self.r, rho)
            self.tables[k] = rho, numpy.gradient(rho, self.r), v
        index = {kind: k for k, kind in enumerate(kinds)}
        atoms = [ia for ia, key in enumerate(atom_keys) if key in index]
        self.atom_coords = numpy.asarray(atom_coords, dtype=float).reshape(-1, 3)[atoms]
        self.atom_tables = numpy.array([index[atom_keys[ia]] for ia in atoms], dtype=int)

    @property
    def charge(self):
        """Electrons on all the atoms (e)."""
        return float(self.charges[self.atom_tables].sum())

    def evaluate(self, coords, deriv=0, with_potential=False):
        """The atoms' density at ``coords`` (n, 3): shape (n,), or with ``deriv=1`` (4, n) =
        (rho, d/dx, d/dy, d/dz), the layout of PySCF's ``eval_rho``; with ``with_potential``
        also its Hartree potential (Hartree/e), shape (n,)."""
        coords = numpy.asarray(coords, dtype=float)
        rho = numpy.zeros((4 if deriv else 1, len(coords)))
        vh = numpy.zeros(len(coords)) if with_potential else None
        r, last = self.r, self.r.size - 1
        log_step = numpy.log(r[1] / r[0])
        rows = [0, 1] if deriv else [0]
        if with_potential:
            rows.append(2)
        tables = self.tables[:, rows]
        for centre, k in zip(self.atom_coords, self.atom_tables):
            d = coords - centre
            dist = numpy.sqrt(numpy.einsum('gi,gi->g', d, d))
            # linear interpolation on the geometric radial grid: the index is a logarithm
            t = numpy.log(numpy.maximum(dist, r[0]) / r[0]) / log_step
            i = numpy.minimum(t.astype(int), last - 1)
            w = numpy.minimum(t - i, 1.0)
            beyond = dist > r[-1]
            tab = tables[k]
            vals = tab[:, i] * (1 - w) + tab[:, i + 1] * w
            rho[0] += numpy.where(beyond, 0.0, vals[0])
            if deriv:
                # d rho / d x = rho'(r) (x - X) / r; rho' vanishes at the nucleus by symmetry
                slope = numpy.where(beyond, 0.0, vals[1]) / numpy.maximum(dist, r[0])
                rho[1:] += d.T * slope
            if with_potential:
                # beyond the table the atom is a point charge
                vh += numpy.where(beyond, self.charges[k] / numpy.maximum(dist, r[-1]),
                                  vals[-1])
        rho = rho if deriv else rho[0]
        return (rho, vh) if with_potential else rho


    def on_grid(self, grid):
        """The atoms' density on the points of ``grid``, shape ``grid.shape``: each atom on
        the sub-box within its table's reach, interpolated as :meth:`evaluate` does."""
        out = numpy.zeros(grid.shape)
        axes = grid.axes()
        reach = self.r[-1]
        log_r = numpy.log(self.r)
        for centre, k in zip(self.atom_coords, self.atom_tables):
            frame = grid.to_frame(centre)
            sub = tuple(slice(*numpy.searchsorted(x, [c - reach, c + reach]))
                        for x, c in zip(axes, frame))
            dx, dy, dz = (x[s] - c for x, s, c in zip(axes, sub, frame))
            dist = numpy.sqrt(dx[:, None, None]**2 + dy[None, :, None]**2 + dz[None, None, :]**2)
            out[sub] += numpy.where(dist > reach, 0.0, numpy.interp(
                numpy.log(numpy.maximum(dist, self.r[0])), log_r, self.tables[k, 0]))
        return out


def near_nucleus_terms(mol, table):
    """The near-nucleus terms of a weights file (its ``near_nucleus`` table: radial grid ``r``
    and a profile per element) on the atoms of ``mol``, as :class:`RadialAtoms`."""
    return RadialAtoms(mol.atom_coords(), [mol.atom_pure_symbol(ia) for ia in range(mol.natm)],
                       table['r'], table['profiles'])


class RadialSAD(RadialAtoms):
    """The SAD density of a molecule and its Hartree potential at any points, from radial tables.

    Each atomic block of D_SAD is spherical, so per element one radial table (built once, on
    the geometric grid of :func:`sad_radial_profiles`) holds the density, its radial slope and
    the electrostatic potential of that density (a radial integral).  Nothing is an nao x nao
    contraction and nothing needs two-electron integrals.  Equal to evaluating D_SAD through
    the AOs (and J[D_SAD] as a potential) up to the radial tables' accuracy.
    """

    def __init__(self, mol, dm_sad):
        profiles = sad_radial_profiles(mol, dm_sad)
        r = next((prof[0] for prof in profiles.values() if prof is not None), _radial_points())
        super().__init__(mol.atom_coords(), [mol.atom_symbol(ia) for ia in range(mol.natm)], r,
                         {k: None if prof is None else prof[1] for k, prof in profiles.items()})


def signed_factors(dm, rtol=1e-12):
    """``(coeff, sign)`` with ``dm = coeff @ diag(sign) @ coeff.T``, from the eigenvectors of the
    symmetric ``dm`` whose eigenvalues exceed ``rtol`` times the largest in magnitude.

    A converged density matrix has the rank of its occupied orbitals and a SAD one the rank of
    the atoms' occupied shells, so their difference is of low rank too; what is dropped is
    rounding noise (its density is below ``rtol`` of the largest, far below float32)."""
    w, v = numpy.linalg.eigh(dm)
    keep = numpy.abs(w) > rtol * numpy.abs(w).max(initial=0.0)
    return v[:, keep] * numpy.sqrt(numpy.abs(w[keep])), numpy.sign(w[keep])


def density_on_grid(mol, dm, grid, blksize=8000):
    """Spin-summed density of an AO density matrix ``dm`` on ``grid``, shape ``grid.shape``.

    Evaluated by AOs in blocks of points (the way :mod:`pyscf.tools.cubegen` does), with PySCF's
    AO screening; ``dm`` may be a spin pair (alpha, beta).  Where ``dm`` is of low rank (a
    converged density matrix, or its difference from SAD's) the density is summed over its
    eigenvectors (:func:`signed_factors`), which costs ``rank / nao`` of contracting the AOs with
    the full matrix (:func:`pyscf.dft.numint.eval_rho`).
    """
    dm = numpy.asarray(dm)
    if dm.ndim == 3:
        dm = dm[0] + dm[1]
    coeff, sign = signed_factors(dm)
    low_rank = 4 * coeff.shape[1] < 3 * dm.shape[0]
    rho = numpy.empty(grid.size)
    blksize = max(numint.BLKSIZE, blksize // numint.BLKSIZE * numint.BLKSIZE)
    for p0, p1 in lib.prange(0, grid.size, blksize):
        coords = grid.coords(p0, p1)
        mask = numint.make_mask(mol, coords)
        ao = numint.eval_ao(mol, coords, non0tab=mask)
        if low_rank:
            rho[p0:p1] = numpy.square(ao @ coeff) @ sign
        else:
            rho[p0:p1] = numint.eval_rho(mol, ao, dm, non0tab=mask)
    return rho.reshape(grid.shape)


def log_grid(obj, grid):
    logger.info(obj, 'mlsr uniform box: %d x %d x %d points, spacing %.3f Bohr, margin %.2f Bohr',
                *grid.shape, grid.spacing, grid.margin)
