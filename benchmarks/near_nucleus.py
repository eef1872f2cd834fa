"""Would atom-centred radial terms recover what the 0.3 Bohr output loses at the nuclei?

    python benchmarks/near_nucleus.py --radii 0.2:0.5,0.4:0.8,0.7:1.4 --n 12 --cycles 6
    python benchmarks/near_nucleus.py --train 40 --n 12 --cycles 6

The exact delta_rho sampled at 0.3 Bohr projects to a guess about three times further from the
converged density than sampled at 0.15 Bohr, and takes more SCF cycles (docs/training.md): a
uniform grid misses the sharp structure within a few tenths of a Bohr of each nucleus
(docs/design.md, the near-nucleus spike).  Per atom A, from the exact delta_rho,

    f_A(r) = w(r) [s_A(r) - s_A(r1)],   w = 1 below r1, a cos^2 taper to 0 at rc,

where s_A is the spherical average of delta_rho about A (Lebedev shells): the spherical part
within rc of the nucleus, less its value at r1.  The *smooth rest* is the exact delta_rho less
sum_A f_A, sampled on the network's 0.3 Bohr box.  Atom terms enter the projection through
radial tables (density, slope, Hartree potential), as the SAD atoms do.

``--radii``: which r1, rc?  Variants ``exact`` (the exact delta_rho at the output resolution:
today's floor), ``exact_fine`` (at half that spacing) and ``sph_<r1>_<rc>`` (smooth rest + the
exact terms) for each pair.  Writes ``<weights>-radii.{jsonl,md}``.

``--train N``: can the terms be had without the exact density?  From the first N training
samples of each folder (``--train-folders``), the f_A profiles of their atoms give per element
a mean profile, and a ridge fit of their leading principal components on the spherical averages
of a field about the atom (at ``FEATURE_RADII``, and the molecule's charge).  Variants, at
``--rc`` (r1 = rc / 2):

* ``model``: the network's output as shipped;
* ``exact``: the exact delta_rho at 0.3 Bohr;
* ``smooth_exact``: the exact smooth rest + the exact terms (the floor of this representation);
* ``smooth_fit``: the exact smooth rest + terms fitted from the smooth rest's own averages;
* ``smooth_mean``: the exact smooth rest + each element's mean profile (no fit at all);
* ``smooth_neterr_mean``: ``smooth_mean`` plus the network's error as it is today (network minus
  exact at 0.3 Bohr; today's network learnt the sharp samples, so this is pessimistic for a
  network trained on the smooth rest);
* ``smooth_neterr_far_mean``: the same with the network's error kept only beyond rc of every
  nucleus (optimistic: as if such a network made no error within rc of a nucleus).

Guess NMAE (PySCF's grid, all-electron); with ``--cycles M`` PySCF's SCF cycles from minao and
from every variant on the first M validation samples per folder.  Validation samples only are
measured; training samples only are fitted.  Writes ``<weights>-train<N>.{jsonl,md}``;
resumable per sample.
"""

import argparse
import dataclasses
import json
import pathlib

import numpy

import resolution_floor

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / 'results' / 'near_nucleus'
DATA = HERE.parent / 'data'
#: Radii (Bohr) of the spherical averages a fit reads about each atom.
FEATURE_RADII = (0.0, 0.15, 0.3, 0.45, 0.6, 0.9, 1.2, 1.6)
COMPONENTS = 4
RIDGE = 1e-2
#: Fewest atoms of an element for a fit; fewer: its mean profile.
MIN_ATOMS = 20


def spherical_profiles(mol, delta_dm, r1, rc, neutral=False):
    """(r, f_A) of every atom (:func:`pyscf_mlguess.train.near_nucleus.spherical_profiles`)."""
    from pyscf_mlguess.train import near_nucleus
    return near_nucleus.spherical_profiles(mol, delta_dm, r1, rc, neutral)


def radial_terms(mol, r, profiles):
    """The atoms' own profiles as radial tables (:class:`~pyscf_mlguess.grid.RadialAtoms`)."""
    from pyscf_mlguess.grid import RadialAtoms
    return RadialAtoms(mol.atom_coords(), range(mol.natm), r, dict(enumerate(profiles)))


def with_terms(values, grid, terms):
    """A field of grid ``values`` with atom ``terms`` added analytically."""
    from pyscf_mlguess.field import DensityField
    return DensityField(values, grid, atoms=terms)


def smooth_rest(field, terms):
    """``field``'s values less the terms on its points."""
    return field.values - terms.on_grid(field.grid)


def sphere_features(mol, values, grid):
    """Per atom: spherical averages of the field ``values`` at FEATURE_RADII, and the charge."""
    from pyscf.dft import LebedevGrid
    from pyscf_mlguess.field import DensityField
    field = DensityField(values, grid)
    shell = LebedevGrid.MakeAngularGrid(26)
    return numpy.array([[field.evaluate(c + rad * shell[:, :3]) @ shell[:, 3]
                         for rad in FEATURE_RADII] + [mol.charge] for c in mol.atom_coords()])


class ProfileFit:
    """Per element: the mean profile, and a ridge fit of the leading principal components of
    the profiles on standardised features (elements with fewer than MIN_ATOMS: the mean)."""

    def __init__(self, features, profiles, elements, components=COMPONENTS, alpha=RIDGE):
        self.size = profiles.shape[1]
        self.models, self.explained = {}, {}
        for el in sorted(set(elements)):
            sel = elements == el
            x, y = features[sel], profiles[sel]
            mean = y.mean(0)
            if sel.sum() < MIN_ATOMS:
                self.models[el] = (mean, None)
                continue
            comps = numpy.linalg.svd(y - mean, full_matrices=False)[2][:components]
            mu, sd = x.mean(0), x.std(0) + 1e-12
            xs = numpy.hstack([(x - mu) / sd, numpy.ones((len(x), 1))])
            w = numpy.linalg.solve(xs.T @ xs + alpha * len(x) * numpy.eye(xs.shape[1]),
                                   xs.T @ ((y - mean) @ comps.T))
            self.models[el] = (mean, (comps, mu, sd, w))
            resid = y - mean - xs @ w @ comps
            self.explained[el] = (int(sel.sum()),
                                  float(1 - (resid**2).sum() / ((y - mean)**2).sum()))

    def mean(self, elements):
        return numpy.array([self.models.get(el, (numpy.zeros(self.size),))[0]
                            for el in elements])

    def predict(self, features, elements):
        out = self.mean(elements)
        for i, (x, el) in enumerate(zip(features, elements)):
            fit = self.models.get(el, (None, None))[1]
            if fit is not None:
                comps, mu, sd, w = fit
                out[i] += numpy.append((x - mu) / sd, 1) @ w @ comps
        return out


def _reference(record):
    from pyscf_mlguess.data import store
    from pyscf_mlguess.data.dataset import molecule_of
    from pyscf_mlguess.grid import sad_density_matrix
    mol = molecule_of(record)
    dm_ref = store.density_matrix_from_orbitals(record['mo_occ_coeff'], mol.intor('int1e_ovlp'))
    return mol, dm_ref, dm_ref - sad_density_matrix(mol)[0]


def fit_profiles(records, network, r1, rc, neutral=False):
    """A :class:`ProfileFit` from training ``records``, features from their exact smooth rests."""
    from pyscf import dft
    from pyscf_mlguess.guess import predict_density
    from pyscf_mlguess.oracle import OraclePredictor
    feats, profiles, elements = [], [], []
    for record in records:
        mol, dm_ref, delta_dm = _reference(record)
        r, prof = spherical_profiles(mol, delta_dm, r1, rc, neutral)
        grid = predict_density(dft.RKS(mol, xc=record['xc']), predictor=network).field.grid
        exact = OraclePredictor(dm_ref)(mol, grid, None)
        feats.append(sphere_features(mol, smooth_rest(exact, radial_terms(mol, r, prof)),
                                     grid))
        profiles.append(prof)
        elements += [mol.atom_pure_symbol(i) for i in range(mol.natm)]
    return ProfileFit(numpy.concatenate(feats), numpy.concatenate(profiles),
                      numpy.array(elements))


def variants_radii(mol, dm_ref, delta_dm, base, network, radii):
    from pyscf_mlguess.oracle import OraclePredictor
    grid = base.field.grid
    exact = OraclePredictor(dm_ref)(mol, grid, None)
    out = {'exact': exact,
           'exact_fine': OraclePredictor(dm_ref, refine=2)(mol, grid, None)}
    for r1, rc in radii:
        terms = radial_terms(mol, *spherical_profiles(mol, delta_dm, r1, rc))
        out[f'sph_{r1:g}_{rc:g}'] = with_terms(smooth_rest(exact, terms), grid, terms)
    return out


def variants_fit(mol, dm_ref, delta_dm, base, fit, rc, neutral=False):
    from pyscf_mlguess.oracle import OraclePredictor
    grid = base.field.grid
    exact = OraclePredictor(dm_ref)(mol, grid, None)
    r, prof = spherical_profiles(mol, delta_dm, rc / 2, rc, neutral)
    smooth = smooth_rest(exact, radial_terms(mol, r, prof))
    elements = [mol.atom_pure_symbol(i) for i in range(mol.natm)]
    fitted = fit.predict(sphere_features(mol, smooth, grid), elements)
    mean = radial_terms(mol, r, fit.mean(elements))
    error = base.field.values - exact.values
    def near(coords):
        d = coords[:, None] - mol.atom_coords()[None]
        return (numpy.einsum('gai,gai->ga', d, d) < rc**2).any(axis=1)
    far_error = numpy.where(grid.sample(near) > 0, 0.0, error)
    return {'model': base.field, 'exact': exact,
            'smooth_exact': with_terms(smooth, grid, radial_terms(mol, r, prof)),
            'smooth_fit': with_terms(smooth, grid, radial_terms(mol, r, fitted)),
            'smooth_mean': with_terms(smooth, grid, mean),
            'smooth_neterr_mean': with_terms(smooth + error, grid, mean),
            'smooth_neterr_far_mean': with_terms(smooth + far_error, grid, mean)}


def measure(record, network, cycles, make_variants):
    """Guess (and model) NMAE of every variant for one validation sample; SCF cycles if
    ``cycles``."""
    from pyscf import dft
    from pyscf_mlguess.guess import predict_density
    from pyscf_mlguess.metrics import default_grids
    mol, dm_ref, delta_dm = _reference(record)
    row = {'key': record['key'], 'nao': mol.nao}
    grids = default_grids(mol, dft.RKS(mol, xc=record['xc']).grids)
    if cycles:
        row['minao'] = resolution_floor.minao_run(mol, record['xc'])
    base = predict_density(dft.RKS(mol, xc=record['xc']), predictor=network)
    for name, field in make_variants(mol, dm_ref, delta_dm, base).items():
        row[name] = resolution_floor.score(mol, record['xc'],
                                           dataclasses.replace(base, field=field), dm_ref,
                                           grids, row.get('minao'))
    return row


def markdown(title, rows, notes=()):
    variants = list(dict.fromkeys(k for r in rows for k, v in r.items()
                                  if isinstance(v, dict) and k != 'minao'))
    lines = [f'# {title}', '', *notes,
             'Median guess NMAE (model NMAE in brackets) over the validation molecules; SCF '
             'cycles (PySCF defaults, DIIS from the guess) summed over those run.', '',
             '| folder | molecules | ' + ' | '.join(f'`{v}`' for v in variants) + ' |',
             '|---' * (len(variants) + 2) + '|']
    for folder in dict.fromkeys(r['folder'] for r in rows):
        rs = [r for r in rows if r['folder'] == folder]
        cells = [f"{numpy.median([r[v]['guess'] for r in rs if v in r]):.3%} "
                 f"({numpy.median([r[v]['model'] for r in rs if v in r]):.2%})"
                 for v in variants]
        lines.append(f'| {folder} | {len(rs)} | ' + ' | '.join(cells) + ' |')
        timed = [r for r in rs if 'minao' in r]
        if timed:
            cells = [str(sum(r[v]['cycles'] for r in timed if v in r)) for v in variants]
            minao = sum(r['minao']['cycles'] for r in timed)
            lines.append(f'| {folder}: SCF cycles (minao {minao}) | {len(timed)} | '
                         + ' | '.join(cells) + ' |')
    timed = [r for r in rows if 'minao' in r]
    if timed:
        worst = max(abs(r[v]['delta_e']) for r in timed for v in variants if v in r)
        unconverged = sum(not r[v]['converged'] for r in timed for v in variants if v in r)
        lines += ['', f'Every SCF run: {unconverged} not converged; largest energy difference '
                  f'to minao {worst:.1e} Ha.']
    return '\n'.join(lines) + '\n'


def load_network(weights):
    """The predictor of ``weights`` with its own box (input spacing, margin, output
    resolution), for a PBE calculation."""
    from pyscf import dft, gto
    from pyscf_mlguess.model import load_predictor
    return load_predictor(dft.RKS(gto.M(atom='H 0 0 0; H 0 0 0.74', verbose=0), xc='pbe'),
                          weights)


def training_records(folders, n):
    """The first ``n`` records of each training folder."""
    from pyscf_mlguess.data import store
    return [r for folder in folders for r in list(store.iter_records(folder))[:n]]


def measure_folders(folders, n, cycles, network, make_variants, path):
    """:func:`measure` on the first ``n`` samples of each validation folder (SCF cycles on
    the first ``cycles``), each row appended to the JSON-lines file ``path`` and printed; rows
    already there are kept, not measured again.  Returns all rows."""
    from pyscf_mlguess.data import store
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    done = {(r['folder'], r['key']) for r in rows}
    for folder in folders:
        label = pathlib.Path(folder).parent.name
        for i, record in enumerate(list(store.iter_records(folder))[:n]):
            if (label, record['key']) in done:
                continue
            row = dict(measure(record, network, i < cycles, make_variants), folder=label)
            rows.append(row)
            with open(path, 'a') as f:
                print(json.dumps(row), file=f)
            print(json.dumps(row), flush=True)
    return rows


def common_arguments(parser):
    """The weights, the validation and training folders, and how many samples are measured
    (also ``error_scales.py``'s)."""
    parser.add_argument('--weights', default='pbe-0.4')
    parser.add_argument('--valid', nargs='+', default=[str(DATA / 'pbe_def2svp' / 'valid'),
                                                       str(DATA / 'pbe_def2svp_derived' /
                                                           'valid')])
    parser.add_argument('--train-folders', nargs='+',
                        default=[str(DATA / 'pbe_def2svp' / 'train'),
                                 str(DATA / 'pbe_def2svp_derived' / 'train')])
    parser.add_argument('--n', type=int, default=12, help='validation samples per folder')
    parser.add_argument('--cycles', type=int, default=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common_arguments(parser)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument('--radii', help='r1:rc pairs (Bohr) of exact terms, comma-separated')
    mode.add_argument('--train', type=int, help='training samples per folder for the fits')
    parser.add_argument('--rc', type=float, default=0.8, help='rc (Bohr) with --train')
    parser.add_argument('--neutral', action='store_true',
                        help='with --train: terms without charge (spherical_profiles)')
    args = parser.parse_args(argv)
    from pyscf import lib
    lib.num_threads(1)
    network = load_network(args.weights)
    name = pathlib.Path(args.weights).name.removesuffix('.pt')
    if args.radii:
        radii = [tuple(float(x) for x in pair.split(':')) for pair in args.radii.split(',')]
        stem, notes = f'{name}-radii', ['`sph_r1_rc`: the exact smooth rest on the 0.3 Bohr '
                                        'grid and the exact terms within rc of each nucleus.', '']

        def make(mol, dm_ref, delta_dm, base):
            return variants_radii(mol, dm_ref, delta_dm, base, network, radii)
    else:
        records = training_records(args.train_folders, args.train)
        fit = fit_profiles(records, network, args.rc / 2, args.rc, args.neutral)
        stem = f'{name}-train{args.train}' + ('-neutral' if args.neutral else '')
        charge = ', terms without charge' if args.neutral else ''
        explained = ', '.join(f'{el} {n} {v:.2f}' for el, (n, v) in fit.explained.items())
        notes = [f'rc = {args.rc:g} Bohr, r1 = rc / 2{charge}. Fitted on {len(records)} '
                 "training samples; per element (atoms, share of the profiles' variance the "
                 f'fit explains on them): {explained}.', '']

        def make(mol, dm_ref, delta_dm, base):
            return variants_fit(mol, dm_ref, delta_dm, base, fit, args.rc, args.neutral)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = measure_folders(args.valid, args.n, args.cycles, network, make,
                           RESULTS / f'{stem}.jsonl')
    text = markdown(f'Near-nucleus atom terms ({name})', rows, notes)
    (RESULTS / f'{stem}.md').write_text(text)
    print(text)


if __name__ == '__main__':
    main()
