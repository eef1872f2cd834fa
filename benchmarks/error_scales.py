"""Which length scales of the network's error reach the guess through the projection?

    python benchmarks/error_scales.py --n 12 --cycles 6

The projection removes most of the network's density error (model NMAE about 2.2 %, guess
about 0.6 %); what it lets through is shared by every orientation of the box and by every
fine-tune so far (docs/training.md).  Whether that surviving part is long-range charge
displacement (which J sees and a Coulomb-weighted loss targets) or short-range structure
(which only capacity fixes) decides what to train next.  This splits the network's error by
length scale and puts each part alone through the projection.

The base is the representation's floor without the network: the exact smooth rest on the 0.3
Bohr box plus each element's mean near-nucleus profile (``near_nucleus.py --train N
--neutral``, guess NMAE about 0.14 %).  The network's error e (its output less the exact delta_rho
at 0.3 Bohr) is kept beyond ``--rc`` of every nucleus, where the SCF sees it (near the nuclei
its error changes the cycles little; docs/training.md, "Near-nucleus terms").  With G_s a
Gaussian of width s (Bohr) on the box, variants:

* ``floor``: the base alone;
* ``far``: the base + e (today's network error away from the nuclei);
* ``low_<s>``: the base + G_s * e (the error's scales above about s);
* ``high_<s>``: the base + (e - G_s * e) (the scales below about s).

low_s + high_s = far for every s, but the projection is not linear in the density, so the two
guess errors need not add.  Guess NMAE (PySCF's grid, all-electron); with ``--cycles M`` SCF
cycles from minao and every variant on the first M validation samples per folder.  Validation
samples only; the profiles are fitted on training samples.  Writes
``results/error_scales/<weights>.{jsonl,md}``; resumable per sample.
"""

import argparse
import pathlib

import near_nucleus

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / 'results' / 'error_scales'
SIGMAS = (0.5, 1.0, 2.0)


def split_scales(values, spacing, sigma):
    """(G_sigma * values, values - G_sigma * values) on a box of ``spacing`` (Bohr); zero
    outside the box, so the low-pass keeps the box's charge up to what spills over its faces."""
    from scipy.ndimage import gaussian_filter
    low = gaussian_filter(values, sigma / spacing, mode='constant', cval=0.0)
    return low, values - low


def variants(mol, dm_ref, delta_dm, base, fit, rc, sigmas):
    """The fields of the module docstring's variants for one molecule."""
    fields = near_nucleus.variants_fit(mol, dm_ref, delta_dm, base, fit, rc, neutral=True)
    floor, far = fields['smooth_mean'], fields['smooth_neterr_far_mean']
    error = far.values - floor.values
    out = {'floor': floor, 'far': far}
    for s in sigmas:
        low, high = split_scales(error, floor.grid.spacing, s)
        out[f'low_{s:g}'] = near_nucleus.with_terms(floor.values + low, floor.grid, floor.atoms)
        out[f'high_{s:g}'] = near_nucleus.with_terms(floor.values + high, floor.grid,
                                                     floor.atoms)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    near_nucleus.common_arguments(parser)
    parser.add_argument('--train', type=int, default=40,
                        help='training samples per folder for the mean profiles')
    parser.add_argument('--rc', type=float, default=0.8, help='near-nucleus radius (Bohr)')
    parser.add_argument('--sigmas', default=','.join(f'{s:g}' for s in SIGMAS),
                        help='Gaussian widths (Bohr), comma-separated')
    args = parser.parse_args(argv)
    from pyscf import lib
    lib.num_threads(1)
    sigmas = [float(s) for s in args.sigmas.split(',')]
    network = near_nucleus.load_network(args.weights)
    records = near_nucleus.training_records(args.train_folders, args.train)
    fit = near_nucleus.fit_profiles(records, network, args.rc / 2, args.rc, neutral=True)
    name = pathlib.Path(args.weights).name.removesuffix('.pt')

    def make(mol, dm_ref, delta_dm, base):
        return variants(mol, dm_ref, delta_dm, base, fit, args.rc, sigmas)

    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = near_nucleus.measure_folders(args.valid, args.n, args.cycles, network, make,
                                        RESULTS / f'{name}.jsonl')
    notes = [f'`{name}`; the base: the exact smooth rest + mean near-nucleus profiles from '
             f'{len(records)} training samples (rc = {args.rc:g} Bohr, terms without charge); '
             f'the network\'s error kept beyond rc. `low_s` / `high_s`: its scales above / '
             'below a Gaussian of width s Bohr (`benchmarks/error_scales.py`).', '']
    text = near_nucleus.markdown('Length scales of the network\'s error in the guess', rows,
                                 notes)
    (RESULTS / f'{name}.md').write_text(text)
    print(text)


if __name__ == '__main__':
    main()
