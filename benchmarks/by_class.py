"""The guess by class of molecule: one table from several benchmark results folders.

    python benchmarks/by_class.py

For every class (a results folder of ``run_scf.py``, or the molecules of one made by some of the
derivation rules of :mod:`pyscf_mlguess.data.derived`, which end each name, or those of a
benchmark set with or without some elements) and functional:
the molecules whose mlsr and minao runs were timed side by side, the median per-molecule ratios
mlsr / minao of SCF cycles, effective cycles and total wall time, the summed cycles of both, the
cycle each guess's SCF started DIIS from (``mf.diis_start_cycle``; the mlsr guess sets 0), the
mlsr guess's wall time in SCF cycles of the minao run (median), how many mlsr runs ended
elsewhere (not converged, or |dE| > 1e-6 Ha against minao) and how many handed over to minao
(outside the weights' domain).  A folder whose run is still going (``pending`` in its
``results.json``) is marked in the class column with the molecule runs it has to go, so a
partial row is never read as a finished one.  Writes ``benchmarks/results/by_class.md``.
"""

import argparse
import functools
import pathlib
import statistics

from pyscf_mlguess.benchmark import is_failure, side_by_side
from pyscf_mlguess.benchmark.molecules import load_molecules
from pyscf_mlguess.benchmark.runner import load_results, progress_label

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / 'results'

#: Rules of the derived molecules (the end of each name) by class.
DERIVED_COMPOUNDS = ('o2s', 'h2cl', 'h2br', 'n2p', 'c2si')
DERIVED_IONS = ('anion', 'cation')


@functools.cache
def _names_containing(molecule_set, symbols):
    return frozenset(name for name, _ in load_molecules(str(HERE / 'molecules' / molecule_set),
                                                        containing=symbols))


def set_with(molecule_set, symbols, present=True):
    """A filter on molecule names: those of ``benchmarks/molecules/<molecule_set>`` with at
    least one of the element ``symbols`` (``present=False``: with none of them)."""
    def keep(name):
        return (name in _names_containing(molecule_set, tuple(symbols))) == present
    return keep


#: (class, results folder[, the molecules kept: derivation rules, or a filter on names])
CLASSES = [
    ('QM9 organics (in domain)', 'qm9-test-0.4-guess-diis'),
    ('QM9 organics (in domain)', 'qm9-test-b3lyp-0.3-guess-diis'),
    ('QM9 organics (in domain)', 'qm9-test-0.4'),
    ('QM9 organics (in domain)', 'qm9-test-b3lyp-0.3'),
    ('QM9 organics (in domain)', 'qm9-test-0.3'),
    ('QM9 organics (in domain)', 'qm9-test-0.2'),
    ('QM9 organics (in domain)', 'qm9-test'),
    ('drug-like with S or Cl, density fitting (in domain)', 'drugs-df-0.4-guess-diis',
     set_with('drugs', ('S', 'Cl'))),
    ('drug-like, density fitting (in domain)', 'drugs-df-0.4-guess-diis',
     set_with('drugs', ('S', 'Cl'), present=False)),
    ('drug-like, density fitting (in domain)', 'drugs-df-b3lyp-0.3-guess-diis'),
    ('drug-like with S or Cl, density fitting (in domain)', 'drugs-df-0.4'),
    ('drug-like, density fitting (in domain)', 'drugs-df'),
    ('closed shells with Si, P, S, Cl, B, Al, Li, Na, ...', 'by_class/main_group'),
    ('closed-shell ions', 'by_class/ions'),
    ('radicals and triplets (UKS)', 'by_class/open_shell'),
    ('QM9 organics, def2-TZVP (weights trained on def2-SVP)', 'by_class/tzvp_qm9'),
    ('oracle molecules (4 of 6 with S, Cl or P; network used), def2-TZVP',
     'by_class/tzvp_oracle'),
    *[row for folder in ('derived-test-0.4-guess-diis', 'derived-test-0.4',
                         'derived-test-b3lyp-0.3', 'derived-test')
      for row in [
          ('held-out derived: S, Cl, Br, P or Si put into QM9 molecules', folder,
           DERIVED_COMPOUNDS),
          *[(f'held-out derived: {label} only', folder, (rule,)) for rule, label in
            (('o2s', 'O to S'), ('h2cl', 'H to Cl'), ('h2br', 'H to Br'), ('n2p', 'N to P'),
             ('c2si', 'C to Si'))],
          ('held-out derived: QM9 ions (protonated, deprotonated)', folder, DERIVED_IONS)]],
]


def rule_of(name):
    """The derivation rule that ends a derived molecule's name ('qm9-000123-o2s' -> 'o2s')."""
    return name.rsplit('-', 1)[-1]


def weights_of(records):
    """The weights the mlsr runs used ('pbe-0.3'), or '0.1' for runs from before the benchmark
    recorded them (every such run used the 0.1 weights)."""
    used = sorted({r['weights'].split()[0].removesuffix('.pt') for r in records
                   if r.get('weights')})
    return ', '.join(used) if used else '0.1'


def diis_start_of(records):
    """The ``mf.diis_start_cycle`` the SCF runs used ('0', or '0, 1' if mixed): recorded per run
    since the mlsr guess sets its own, else the folder's setting, else PySCF's default (1)."""
    used = {r.get('diis_start_cycle_used', r.get('diis_start_cycle', 1)) for r in records}
    return ', '.join(map(str, sorted(used)))


def rows_of(label, folder, keep=None, results=RESULTS):
    """Table rows of one class: ``folder``'s molecules; if ``keep`` is given, only those made by
    its derivation rules (a tuple) or those it passes (a filter on names)."""
    data = load_results(results / folder / 'results.json')
    policy = data.get('outside_domain') or '–'
    if progress_label(data):
        label = f'{label} ({progress_label(data)})'
    if keep is not None and not callable(keep):
        rules = keep
        keep = lambda name: rule_of(name) in rules          # noqa: E731
    records = [r for r in data['records'] if keep is None or keep(r['molecule'])]
    out = []
    for xc, basis in sorted({(r['xc'], r['basis']) for r in records}):
        recs = [r for r in records if (r['xc'], r['basis']) == (xc, basis)]
        ml = {r['molecule']: r for r in recs if r['guess'] == 'mlsr'}
        minao = {r['molecule']: r for r in recs if r['guess'] == 'minao'}
        pairs = side_by_side(ml, minao)
        if not pairs:
            continue
        med = {k: statistics.median(p[k][0] / p[k][1] for p in pairs.values())
               for k in ('cycles', 'effective', 'total_s')}
        guess_cost = statistics.median(p['guess_s'][0] / p['cycle_s'] for p in pairs.values())
        elsewhere = sum(is_failure(r) for r in ml.values())
        handed = sum(r.get('handed_over_to') == 'minao' for r in ml.values())
        out.append(f"| {label} | {xc.upper()} / {basis} | {weights_of(ml.values())} | "
                   f"{diis_start_of(minao.values())} / {diis_start_of(ml.values())} | "
                   f"{len(pairs)} | {med['cycles']:.2f} | "
                   f"{sum(p['cycles'][0] for p in pairs.values())} / "
                   f"{sum(p['cycles'][1] for p in pairs.values())} | {med['effective']:.2f} | "
                   f"{med['total_s']:.2f} | {guess_cost:.2f} | {elsewhere} | {handed} | "
                   f"{policy} | "
                   f"[{folder}]({folder}/results.md) |")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default=str(RESULTS / 'by_class.md'))
    args = parser.parse_args()
    lines = ['| class | functional / basis | weights | DIIS from cycle, minao / mlsr | molecules '
             '| cycles mlsr / minao (median) | '
             'cycles, sum mlsr / minao | effective cycles (median) | total wall time (median) '
             '| mlsr guess, SCF cycles (median) | mlsr runs elsewhere | handed over to minao '
             '| mlsr outside the domain | results |',
             '|' + '---|' * 14]
    for label, folder, *keep in CLASSES:
        lines += rows_of(label, folder, *keep)
    text = '\n'.join(lines) + '\n'
    pathlib.Path(args.out).write_text(text)
    print(text)


if __name__ == '__main__':
    main()
