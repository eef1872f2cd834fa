"""SCF cycles and wall time from every initial guess: how much 'mlsr' saves, on any molecules.

    python benchmarks/run_scf.py --molecules qm9-test --n 50 --xc pbe,b3lyp \\
        --guesses minao,atom,huckel,sap,mlsr --out benchmarks/results/qm9-test

``--molecules`` is a folder of .xyz files (the comment line may carry ``charge=N spin=M``, spin =
2S as in PySCF; open shells run unrestricted) or a built-in set: ``qm9-test`` (the held-out QM9
test split of the training data, in its fixed order), ``derived-test`` (the test split of the
molecules derived from QM9 with S, Cl, Br, P, Si and ions), ``drugs`` (larger drug-like molecules),
``ions`` (closed-shell anions and cations), ``main_group`` (closed shells with elements QM9
lacks) or ``open_shell`` (radicals and triplets), all under ``benchmarks/molecules/`` and made by
``benchmarks/make_molecules.py``.  The runs, the records and the report are
:mod:`pyscf_mlguess.benchmark`'s; ``results.md`` (also printed) leads with what a user waits:
mlsr against minao in total wall time and effective cycles, side by side.  ``--density-fit``
runs every SCF with density fitting (PySCF's ``mf.density_fit()`` and its default auxiliary
basis).  A results folder holds one set of the settings that change the numbers
(``--conv-tol``, ``--max-cycle``, ``--density-fit``, ``--weights``, ``--exchange``,
``--outside-domain``, ``--level-shift``, ``--diis-start-cycle``): resuming
it with other ones is refused.
"""

import argparse
import importlib.util
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
FOLDERS = {name: HERE / 'molecules' / name
           for name in ('drugs', 'ions', 'main_group', 'open_shell')}
DEFAULT_GUESSES = 'minao,atom,huckel,mod_huckel,sap,vsap,1e,mlsr'


def _require_bench_extra(report_only=False, plots=True):
    """Name the install command instead of failing on a bare ModuleNotFoundError."""
    needed = ([] if report_only else ['tqdm', 'dask.distributed']) + (['matplotlib'] if plots
                                                                       else [])
    missing = []
    for name in needed:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name.split('.')[0])
    if missing:
        raise SystemExit(f"The benchmark needs {', '.join(missing)}, which this installation "
                         "lacks: pip install 'pyscf-mlguess[bench]'")


def _integer(text, option):
    try:
        return int(text)
    except ValueError:
        raise ValueError(f'{option}: not an integer charge: {text.strip()}') from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--molecules', required=True,
                        help=f'folder of .xyz files or a built-in set (qm9-test, derived-test, '
                        f'{", ".join(FOLDERS)})')
    parser.add_argument('--n', type=int, help='first N molecules only')
    parser.add_argument('--elements',
                        help='comma-separated symbols: only the molecules made of these '
                        '(e.g. H,C,N,O,F, the QM9 elements)')
    parser.add_argument('--containing',
                        help='comma-separated symbols: only the molecules with at least one of '
                        'these (e.g. S,Cl)')
    parser.add_argument('--charges',
                        help='comma-separated: only the molecules of these charges '
                        '(e.g. --charges=-1,1)')
    parser.add_argument('--xc', default='pbe', help='comma-separated; hf allowed')
    parser.add_argument('--basis', default='def2-svp', help='comma-separated')
    parser.add_argument('--guesses', default=DEFAULT_GUESSES, help='comma-separated')
    parser.add_argument('--out', required=True, help='results folder')
    parser.add_argument('--scheduler', help='address of a running Dask scheduler')
    parser.add_argument('--workers', type=int, default=1,
                        help='local worker processes (0: one by one in this process)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], help='where the mlsr model runs')
    parser.add_argument('--weights', help='mlsr weights file or folder (default: the shipped '
                        'ones, or $PYSCF_MLGUESS_WEIGHTS)')
    parser.add_argument('--conv-tol', type=float)
    parser.add_argument('--max-cycle', type=int)
    parser.add_argument('--density-fit', action='store_true',
                        help="every SCF with density fitting (PySCF's default auxiliary basis)")
    parser.add_argument('--level-shift', type=float, metavar='HARTREE',
                        help="every SCF with PySCF's level shift (mf.level_shift) of this size")
    parser.add_argument('--diis-start-cycle', type=int, metavar='N',
                        help="every SCF with PySCF's mf.diis_start_cycle = N (0: the guess's own "
                             "Fock matrix joins DIIS; PySCF's default is 1)")
    parser.add_argument('--exchange', choices=['sad_k', 'lda_x', 'k_refresh'],
                        help="the mlsr guess's exact-exchange treatment (default: the package's)")
    parser.add_argument('--outside-domain', choices=['minao', 'model'],
                        help="what the mlsr guess does for molecules outside the weights' domain "
                             "(default: the package's, minao)")
    parser.add_argument('--no-plots', action='store_true')
    parser.add_argument('--report-only', action='store_true',
                        help='rebuild results.md and the plots from results.json, run nothing')
    args = parser.parse_args(argv)
    _require_bench_extra(args.report_only, not args.no_plots)
    split = [s.strip() for s in args.guesses.split(',') if s.strip()]
    guesses = ['minao'] + [g for g in split if g != 'minao']
    xcs = [s.strip().lower() for s in args.xc.split(',') if s.strip()]
    bases = [s.strip() for s in args.basis.split(',') if s.strip()]
    from pyscf_mlguess.benchmark import load_molecules, plot, run, summarize
    from pyscf_mlguess.benchmark.runner import SettingsMismatch, load_results
    try:
        elements, containing = ([e.strip().capitalize() for e in (option or '').split(',')
                                 if e.strip()] for option in (args.elements, args.containing))
        charges = [_integer(c, '--charges') for c in (args.charges or '').split(',')
                   if c.strip()]
        molecules = load_molecules(args.molecules, args.n, FOLDERS, elements=elements,
                                   containing=containing, charges=charges)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if args.report_only:
        records = [r for r in load_results(pathlib.Path(args.out) / 'results.json')['records']
                   if r['guess'] in guesses]
    else:
        try:
            records = run(molecules, xcs, bases, guesses, args.out, workers=args.workers,
                          scheduler=args.scheduler, conv_tol=args.conv_tol,
                          max_cycle=args.max_cycle, device=args.device, weights=args.weights,
                          density_fit=args.density_fit, exchange=args.exchange,
                          outside_domain=args.outside_domain, level_shift=args.level_shift,
                          diis_start_cycle=args.diis_start_cycle)
        except SettingsMismatch as err:
            raise SystemExit(f'run_scf.py: {err}') from None
    wanted = {(name, xc, b) for name, _ in molecules for xc in xcs for b in bases}
    records = [r for r in records if (r['molecule'], r['xc'], r['basis']) in wanted]
    parallel = any(r.get('parallel') for r in records)
    text = summarize(records, guesses, parallel)
    (pathlib.Path(args.out) / 'results.md').write_text(text + '\n')
    print(text)
    if not args.no_plots:
        plot(records, guesses, args.out)
    return records


if __name__ == '__main__':
    main()
