"""Near-nucleus terms: the sharp, spherical part of delta_rho at each nucleus, per element.

Sampled a few tenths of a Bohr apart, delta_rho loses the structure within a few tenths of a
Bohr of each nucleus (valence s-population changes seen through the core-penetrating parts of
the basis; docs/design.md), and the projected guess loses most of its accuracy with it.  Per
atom A the spherical average s_A(r) of delta_rho, less a constant, tapered to zero between r1
and rc,

    f_A(r) = w(r) [s_A(r) - c_A],   w = 1 below r1, cos^2 down to 0 at rc,

with c_A the w r^2-weighted mean of s_A (so f_A holds no charge and the grid keeps the
molecule's), carries it as a radial table (docs/training.md, "Near-nucleus terms").  Per
element, f_A hardly depends on the molecule: the mean over training atoms is the term the
weights ship (``meta['near_nucleus']``); the network learns delta_rho less these terms on its
box, and :class:`~pyscf_mlguess.field.DensityField` adds them back as radial tables.
"""

import numpy
from scipy.integrate import trapezoid

#: Radial grid of the tables: points, and the smallest radius (Bohr).
RADIAL_POINTS = 300
RADIAL_RMIN = 1e-5
#: Lebedev points per shell of the spherical average.
SHELL_POINTS = 50


def spherical_profiles(mol, delta_dm, r1, rc, neutral=True, radial_points=RADIAL_POINTS):
    """(r, f): the radial grid (r[-1] = rc) and f_A(r) of every atom (natm x r.size) for the
    density of ``delta_dm`` (module docstring).  ``neutral=False`` subtracts s_A(r1) instead
    of the constant that leaves f_A without charge (the first oracle's form,
    ``benchmarks/near_nucleus.py``)."""
    from pyscf.dft import LebedevGrid, numint
    if not 0 < r1 < rc:
        raise ValueError(f'near-nucleus radii need 0 < r1 < rc; got r1={r1}, rc={rc} (Bohr)')
    r = numpy.geomspace(RADIAL_RMIN, rc, radial_points)
    shell = LebedevGrid.MakeAngularGrid(SHELL_POINTS)
    units, weights = shell[:, :3], shell[:, 3]
    taper = numpy.where(r <= r1, 1.0, numpy.cos(0.5 * numpy.pi * (r - r1) / (rc - r1))**2)
    profiles = numpy.empty((mol.natm, r.size))
    for ia, centre in enumerate(mol.atom_coords()):
        s = numpy.empty(r.size)
        for i0 in range(0, r.size, 100):
            rr = r[i0:i0 + 100]
            coords = (centre + rr[:, None, None] * units[None]).reshape(-1, 3)
            ao = numint.eval_ao(mol, coords)
            s[i0:i0 + rr.size] = numint.eval_rho(mol, ao, delta_dm).reshape(rr.size, -1) @ weights
        if neutral:
            level = trapezoid(taper * s * r**2, r) / trapezoid(taper * r**2, r)
        else:
            level = numpy.interp(r1, r, s)
        profiles[ia] = taper * (s - level)
    profiles[:, -1] = 0.0
    return r, profiles


def mean_profiles(records, r1, rc):
    """The ``near_nucleus`` table of weights: each element's mean f_A over the atoms of the
    stored samples ``records`` (their converged densities against SAD), JSON-serialisable:
    ``{'r1', 'rc', 'r', 'profiles': {element: list}, 'atoms': {element: count}}``."""
    from pyscf_mlguess.data import store
    from pyscf_mlguess.data.dataset import molecule_of
    from pyscf_mlguess.grid import sad_density_matrix
    sums, counts, r = {}, {}, None
    for record in records:
        mol = molecule_of(record)
        dm = store.density_matrix_from_orbitals(record['mo_occ_coeff'], mol.intor('int1e_ovlp'))
        r, profiles = spherical_profiles(mol, dm - sad_density_matrix(mol)[0], r1, rc)
        for ia, f in enumerate(profiles):
            el = mol.atom_pure_symbol(ia)
            sums[el] = sums.get(el, 0.0) + f
            counts[el] = counts.get(el, 0) + 1
    if r is None:
        raise ValueError('near-nucleus terms need at least one converged training sample')
    return {'r1': float(r1), 'rc': float(rc), 'r': r.tolist(),
            'profiles': {el: (sums[el] / counts[el]).tolist() for el in sorted(sums)},
            'atoms': {el: counts[el] for el in sorted(counts)}}
