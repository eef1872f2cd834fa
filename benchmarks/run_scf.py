"""SCF cycles and wall time from every initial guess: how much 'mlsr' saves, on any molecules.

    python benchmarks/run_scf.py --molecules qm9-test --n 50 --xc pbe,b3lyp \\
        --guesses minao,atom,huckel,sap,mlsr --out benchmarks/results/qm9-test

``--molecules`` is a folder of .xyz files (the comment line may carry ``charge=N spin=M``, spin =
2S as in PySCF; open shells run unrestricted) or a built-in set: ``qm9-test`` (the held-out QM9
test split of the training data, in its fixed order; needs the ``train`` extra) or ``drugs``
(larger drug-like molecules, ``benchmarks/molecules/drugs``).

For every molecule, functional and basis, a minao run at the requested tolerance is the
reference (kept in ``results.json``: a resumed run with new guesses does not repeat it); then
every guess runs on a fresh SCF object.  Each run records its cycles, whether it
converged, its energy and |dE| against the minao run, the guess and SCF wall times (the guess split
into grid / model / projection for mlsr), the number of basis functions and the NMAE of the guess
density against the converged one on PySCF's integration grid (the run's own when it reached the
reference energy, else the minao run's).  Results go to ``results.json``
after every finished molecule, so an interrupted run resumes; ``results.md`` (also printed) and
the plots are rebuilt from it at the end.  Molecules run as independent Dask tasks (a local
cluster of ``--workers`` single-threaded processes, or ``--scheduler ADDRESS``); ``--workers 0``
runs them one by one in this process.  Timings from a parallel run are labelled as such.

``--density-fit`` runs every SCF with density fitting (PySCF's ``mf.density_fit()`` and its
default auxiliary basis), the usual choice for molecules of several hundred basis functions.
A results folder holds one set of settings that change the numbers (``--conv-tol``,
``--max-cycle``, ``--density-fit``, ``--weights``): resuming it with other ones is refused.
"""

import argparse
import glob
import json
import os
import pathlib
import statistics
import sys
import time
import traceback

import numpy

HERE = pathlib.Path(__file__).resolve().parent
BUILTIN = {'qm9-test': None, 'drugs': HERE / 'molecules' / 'drugs'}
DEFAULT_GUESSES = 'minao,atom,huckel,mod_huckel,sap,vsap,1e,mlsr'
ENERGY_TOL = 1e-6      # Ha: a run that lands further from the minao energy is a failure
# settings that change the results (not only the timings), with their values in files that
# predate them; one results folder holds one set
SETTINGS = {'conv_tol': None, 'max_cycle': None, 'density_fit': False, 'weights': None}


# --------------------------------------------------------------------------------- molecules

def load_molecules(spec, n=None):
    """[(name, entry)] where entry is a dict (atom, charge, spin) or an error message."""
    if spec in BUILTIN and BUILTIN[spec] is None:
        from pyscf_mlguess.data import qm9
        samples = qm9.select('test', n or 50, perturb_fraction=0.0)
        return [(s.key, {'atom': s.atom, 'charge': 0, 'spin': 0}) for s in samples]
    folder = BUILTIN.get(spec) or pathlib.Path(spec)
    paths = sorted(glob.glob(os.path.join(folder, '*.xyz')))
    if not paths:
        raise SystemExit(f'--molecules {spec}: no .xyz files there (built-in sets: '
                         f'{", ".join(BUILTIN)})')
    from pyscf_mlguess.train.finetune import read_xyz
    out = []
    for path in paths[:n]:
        name = pathlib.Path(path).stem
        try:
            s = read_xyz(path)
            out.append((name, {'atom': s.atom, 'charge': s.charge, 'spin': s.spin}))
        except Exception as err:                      # reported per molecule, the run goes on
            out.append((name, f'unreadable: {err}'))
    return out


# ------------------------------------------------------------------------------- one molecule

def _make_scf(mol, xc):
    from pyscf import dft, scf
    if xc == 'hf':
        return scf.RHF(mol) if mol.spin == 0 else scf.UHF(mol)
    return dft.RKS(mol, xc=xc) if mol.spin == 0 else dft.UKS(mol, xc=xc)


def _has_guess(mf, guess):
    key = {'hcore': '1e'}.get(guess, guess)
    return guess == 'mlsr' or hasattr(mf, f'init_guess_by_{key}')


def run_molecule(name, entry, xc, basis, guesses, conv_tol=None, max_cycle=None, device=None,
                 weights=None, reference=None, density_fit=False):
    """Records (dicts) of every guess for one molecule, functional and basis.

    ``reference`` is the minao record of an earlier run (resuming with new guesses): its energy
    is then the reference and the minao SCF is not repeated.  A guess's density NMAE is measured
    against its own converged density when the run reached the reference energy, else against
    the minao run's (which is then computed).
    """
    base = {'molecule': name, 'xc': xc, 'basis': basis, 'density_fit': bool(density_fit)}
    if isinstance(entry, str):
        return [dict(base, guess=g, error=entry) for g in guesses]
    from pyscf import gto
    import pyscf_mlguess  # noqa: F401  (registers 'mlsr')
    from pyscf_mlguess.metrics import density_nmae
    try:
        mol = gto.M(atom=entry['atom'], basis=basis, charge=entry['charge'],
                    spin=entry['spin'], verbose=0)
        if basis.lower().startswith('def2') and max(mol.atom_charges()) > 36:
            mol = gto.M(atom=entry['atom'], basis=basis, ecp=basis, charge=entry['charge'],
                        spin=entry['spin'], verbose=0)   # def2 heavy elements carry ECPs
    except Exception as err:
        return [dict(base, guess=g, error=f'molecule: {err}') for g in guesses]
    base['nao'] = mol.nao

    def fresh():
        mf = _make_scf(mol, xc)
        if density_fit:
            mf = mf.density_fit()
        if conv_tol is not None:
            mf.conv_tol = conv_tol
        if max_cycle is not None:
            mf.max_cycle = max_cycle
        return mf

    def one(guess):
        mf = fresh()
        if not _has_guess(mf, guess):
            return dict(base, guess=guess, error=f'PySCF has no {guess!r} initial guess'), None
        if guess == 'mlsr' and (device is not None or weights is not None):
            from pyscf_mlguess.model import load_predictor
            mf.mlsr_predictor = load_predictor(mf, weights, device=device)
        t0 = time.perf_counter()
        try:
            dm0 = mf.get_init_guess(key=guess)
        except Exception as err:
            return dict(base, guess=guess, error=f'guess: {type(err).__name__}: {err}'), None
        t1 = time.perf_counter()
        mf.kernel(dm0=dm0)
        t2 = time.perf_counter()
        rec = dict(base, guess=guess, cycles=int(mf.cycles), converged=bool(mf.converged),
                   e_tot=float(mf.e_tot), guess_s=t1 - t0, scf_s=t2 - t1, total_s=t2 - t0)
        if guess == 'mlsr' and mf.mlsr_timings:
            rec.update({f'{k}_s': v for k, v in mf.mlsr_timings.items() if k != 'total'})
        return rec, (mf, dm0)

    ref_state = None
    if reference is None or 'minao' in guesses:
        reference, ref_state = one('minao')
        if 'error' in reference:
            return [dict(base, guess=g, error=f'minao reference: {reference["error"]}')
                    for g in guesses]

    def reference_dm():
        nonlocal ref_state
        if ref_state is None:
            ref_state = one('minao')[1]
        return ref_state[0].make_rdm1()

    out = []
    for guess in guesses:
        rec, state = (reference, ref_state) if guess == 'minao' else one(guess)
        if state is not None:
            mf, dm0 = state
            rec['delta_e'] = abs(rec['e_tot'] - reference['e_tot'])
            same_state = rec['converged'] and rec['delta_e'] <= ENERGY_TOL
            dm_conv = mf.make_rdm1() if same_state else reference_dm()
            rec['guess_nmae'] = density_nmae(mol, dm0, dm_conv, getattr(mf, 'grids', None))
            rec['reference_converged'] = reference['converged']
        out.append(rec)
    return out


def is_failure(rec):
    return 'error' in rec or not rec['converged'] or rec['delta_e'] > ENERGY_TOL


# -------------------------------------------------------------------------------- the driver

def _key(rec):
    return rec['molecule'], rec['xc'], rec['basis'], rec['guess']


def _load(path):
    """A results file's content (no records if it does not exist yet)."""
    return json.loads(path.read_text()) if path.exists() else {'records': []}


def _check_settings(stored, wanted, path):
    """Refuse to mix runs made with different result-changing settings in one folder."""
    if not stored['records']:
        return
    clash = {k: (stored.get(k, default), wanted[k]) for k, default in SETTINGS.items()
             if stored.get(k, default) != wanted[k]}
    if clash:
        said = ', '.join(f'{k}={a!r} there, {b!r} now' for k, (a, b) in clash.items())
        raise ValueError(f'{path} holds runs made with other settings ({said}); '
                         'use another --out, or the settings it was made with')


def _save(path, info, records):
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(dict(info, records=records), indent=1))
    os.replace(tmp, path)


def run(molecules, xcs, bases, guesses, out, workers=1, scheduler=None, conv_tol=None,
        max_cycle=None, device=None, weights=None, density_fit=False, progress=True):
    """Run what ``out/results.json`` does not hold yet; returns all its records."""
    from tqdm import tqdm
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / 'results.json'
    settings = {'conv_tol': conv_tol, 'max_cycle': max_cycle,
                'density_fit': bool(density_fit), 'weights': weights}
    stored = _load(path)
    _check_settings(stored, settings, path)
    records = stored['records']
    done = {_key(r) for r in records}
    minao = {_key(r)[:3]: r for r in records if r['guess'] == 'minao' and 'error' not in r}
    tasks = [(name, entry, xc, basis, [g for g in guesses if (name, xc, basis, g) not in done],
              minao.get((name, xc, basis)))
             for name, entry in molecules for xc in xcs for basis in bases]
    tasks = [t for t in tasks if t[4]]
    parallel = scheduler is not None or workers > 1
    info = {'python': sys.version.split()[0], 'cpu_count': os.cpu_count(),
            'parallel': parallel, 'workers': None if scheduler else workers,
            'scheduler': scheduler, 'device': device, **settings}
    bar = tqdm(total=len(tasks), unit='task', disable=not progress)
    run_id = time.strftime('%Y-%m-%dT%H:%M:%S%z')   # wall times compare only within one run

    def finish(recs):
        for rec in recs:
            rec['parallel'] = parallel
            rec['run'] = run_id
        records.extend(recs)
        _save(path, info, records)
        bar.update()
        bar.set_postfix_str(recs[0]['molecule'])

    kwargs = dict(settings, device=device)
    if not parallel:
        for task in tasks:
            finish(_guarded(*task, **kwargs))
    else:
        from dask.distributed import Client, LocalCluster, as_completed
        cluster = None
        if scheduler is None:
            env = {v: '1' for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')}
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, env=env)
        with Client(scheduler or cluster) as client:
            futures = [client.submit(_guarded, *t, pure=False, **kwargs) for t in tasks]
            for fut in as_completed(futures):
                finish(fut.result())
        if cluster is not None:
            cluster.close()
    bar.close()
    if not tasks:
        _save(path, info, records)
    return records


def _guarded(name, entry, xc, basis, guesses, reference, **kwargs):
    try:
        return run_molecule(name, entry, xc, basis, guesses, reference=reference, **kwargs)
    except Exception as err:                          # one molecule never stops the run
        msg = f'{type(err).__name__}: {err}'
        traceback.print_exc()
        return [{'molecule': name, 'xc': xc, 'basis': basis, 'guess': g, 'error': msg}
                for g in guesses]


# ------------------------------------------------------------------------------- the summary

def summarize(records, guesses, parallel=False):
    """results.md text: per functional and basis, cycles per guess and mlsr against the rest."""
    lines = []
    if parallel:
        lines += ['*Timings from a parallel run (several molecules at once on one machine).*', '']
    groups = sorted({(r['xc'], r['basis']) for r in records})
    for xc, basis in groups:
        recs = [r for r in records if (r['xc'], r['basis']) == (xc, basis)]
        by = {g: {r['molecule']: r for r in recs if r['guess'] == g} for g in guesses}
        mols = sorted({r['molecule'] for r in recs})
        df = ' (density fitting)' if any(r.get('density_fit') for r in recs) else ''
        lines += [f'## {xc.upper()} / {basis}{df}: {len(mols)} molecules', '']
        if 'mlsr' in by and 'minao' in by:
            lines += _headline_lines(by['mlsr'], by['minao'])
        lines += ['| guess | runs | median cycles | mean cycles | mean guess s | mean SCF s / cycle '
                  '| total s | failures |', '|---|---|---|---|---|---|---|---|']
        for g in guesses:
            ok = [r for r in by[g].values() if not is_failure(r)]
            cyc = [r['cycles'] for r in ok]
            fails = len(by[g]) - len(ok)
            if not cyc:
                lines.append(f'| {g} | {len(by[g])} | – | – | – | – | – | {fails} |')
                continue
            lines.append(f'| {g} | {len(by[g])} | {statistics.median(cyc):g} | '
                         f'{statistics.mean(cyc):.2f} | '
                         f'{statistics.mean(r["guess_s"] for r in ok):.2f} | '
                         f'{statistics.mean(r["scf_s"] / r["cycles"] for r in ok):.2f} | '
                         f'{sum(r["total_s"] for r in ok):.1f} | {fails} |')
        lines.append('')
        if 'mlsr' in guesses:
            lines += _mlsr_lines(by, guesses)
        failures = sorted({(r['molecule'], r['guess']) for r in recs if is_failure(r)})
        if failures:
            lines.append('Failures (error, not converged, or |dE| > 1e-6 Ha against minao):')
            for m, g in failures:
                r = by[g].get(m) or {}
                why = r.get('error') or ('not converged' if not r.get('converged')
                                         else f"|dE| = {r['delta_e']:.1e} Ha")
                lines.append(f'- {m} / {g}: {why}')
            lines.append('')
    return '\n'.join(lines)


def _mlsr_lines(by, guesses):
    lines = []
    ml = by['mlsr']
    others = [g for g in guesses if g != 'mlsr']
    rows = []
    for g in others:
        common = [m for m in ml if m in by[g] and not is_failure(ml[m])
                  and not is_failure(by[g][m])]
        if not common:
            continue
        a = [ml[m]['cycles'] for m in common]
        b = [by[g][m]['cycles'] for m in common]
        wins = sum(x < y for x, y in zip(a, b))
        ties = sum(x == y for x, y in zip(a, b))
        same = [m for m in common if ml[m].get('run') == by[g][m].get('run')]
        if same:
            ratio = (sum(ml[m]['total_s'] for m in same)
                     / sum(by[g][m]['total_s'] for m in same))
            time_ratio = f'{ratio:.2f}' + ('' if len(same) == len(common)
                                           else f' ({len(same)} molecules)')
        else:
            time_ratio = 'not side by side'
        rows.append(f'| {g} | {len(common)} | {statistics.median(a) / statistics.median(b):.2f} '
                    f'| {statistics.median(x / y for x, y in zip(a, b)):.2f} | '
                    f'{wins}/{ties}/{len(common) - wins - ties} | {time_ratio} |')
    if rows:
        lines += ['mlsr against each guess (molecules where both succeeded):', '',
                  '| against | molecules | median cycles ratio | median per-molecule ratio '
                  '| wins/ties/losses | total wall-time ratio |', '|---|---|---|---|---|---|']
        lines += rows
        lines += ['', 'Wall-time ratios use only molecules whose two runs were timed in the same '
                  'invocation of this script (side by side, same machine load); "not side by '
                  'side" where there are none.']
        best = {}
        for m in ml:
            cands = [by[g][m]['cycles'] for g in others if m in by[g]
                     and not is_failure(by[g][m])]
            if cands and not is_failure(ml[m]):
                best[m] = ml[m]['cycles'] / min(cands)
        if best:
            lines += ['', f'Median per-molecule ratio mlsr / best other guess: '
                      f'{statistics.median(best.values()):.2f} ({len(best)} molecules).']
        lines.append('')
    return lines


def side_by_side(ml, minao):
    """Per molecule whose mlsr and minao runs both succeeded in one invocation (same machine
    load): cycles, guess, SCF and total wall seconds of both, and effective cycles = cycles +
    guess wall / the minao run's mean SCF-cycle wall (so the guess is paid for in cycles)."""
    rows = {}
    for m in sorted(ml):
        a, b = ml[m], minao.get(m)
        if b is None or is_failure(a) or is_failure(b) or a.get('run') != b.get('run'):
            continue
        cycle_s = b['scf_s'] / b['cycles']
        rows[m] = {'nao': a.get('nao'), 'cycle_s': cycle_s,
                   'cycles': (a['cycles'], b['cycles']),
                   'guess_s': (a['guess_s'], b['guess_s']),
                   'scf_s': (a['scf_s'], b['scf_s']),
                   'total_s': (a['total_s'], b['total_s']),
                   'effective': (a['cycles'] + a['guess_s'] / cycle_s,
                                 b['cycles'] + b['guess_s'] / cycle_s)}
    return rows


def _ratio_stats(pairs):
    """(median ratio a/b, wins a < b, ties, losses) over (a, b) pairs."""
    ratios = [a / b for a, b in pairs]
    wins = sum(a < b for a, b in pairs)
    ties = sum(a == b for a, b in pairs)
    return statistics.median(ratios), wins, ties, len(pairs) - wins - ties


def _headline_lines(ml, minao):
    """What a user waits: mlsr against minao, side by side, in wall time and effective
    cycles, then per molecule."""
    rows = side_by_side(ml, minao)
    if not rows:
        return ['mlsr against minao: no molecule has both runs in one invocation, so no wall-time '
                'comparison.', '']
    lines = [f'**mlsr against minao, side by side ({len(rows)} molecules; median of the '
             'per-molecule ratios, wins/ties/losses for mlsr):**', '',
             '| measure | median ratio mlsr / minao | wins / ties / losses |', '|---|---|---|']
    total = sum(r['total_s'][0] for r in rows.values()) / sum(r['total_s'][1]
                                                              for r in rows.values())
    for label, key in (('total wall time (guess + SCF)', 'total_s'),
                       ('effective cycles (cycles + guess / SCF cycle)', 'effective'),
                       ('SCF cycles', 'cycles')):
        med, w, t, lo = _ratio_stats([r[key] for r in rows.values()])
        lines.append(f'| {label} | {med:.2f} | {w} / {t} / {lo} |')
    cost = [r['guess_s'][0] / r['cycle_s'] for r in rows.values()]
    lines += ['', f'Summed wall time of all mlsr runs over all minao runs: {total:.2f}. The mlsr '
              f'guess costs {statistics.median(cost):.2f} SCF cycles (median; '
              f'{min(cost):.2f}–{max(cost):.2f}), one SCF cycle being the minao run\'s SCF wall '
              'time over its cycles.', '',
              '<details><summary>Per molecule</summary>', '',
              '| molecule | nao | cycles mlsr / minao | guess s mlsr / minao | SCF s mlsr / minao '
              '| total s mlsr / minao | effective cycles mlsr / minao |', '|---|---|---|---|---|---|---|']
    for m, r in rows.items():
        lines.append(f"| {m} | {r['nao']} | {r['cycles'][0]} / {r['cycles'][1]} | "
                     f"{r['guess_s'][0]:.2f} / {r['guess_s'][1]:.2f} | "
                     f"{r['scf_s'][0]:.1f} / {r['scf_s'][1]:.1f} | "
                     f"{r['total_s'][0]:.1f} / {r['total_s'][1]:.1f} | "
                     f"{r['effective'][0]:.2f} / {r['effective'][1]:.2f} |")
    lines += ['', '</details>', '']
    return lines


def plot(records, guesses, out):
    """cycles per guess, total time against basis size (minao, mlsr), NMAE against cycles."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
    ok = [r for r in records if not is_failure(r)]
    known = DEFAULT_GUESSES.split(',')          # one colour per guess in every panel and plot
    order = known + [g for g in guesses if g not in known]
    colour = {g: f'C{order.index(g) % 10}' for g in guesses}
    for xc, basis in sorted({(r['xc'], r['basis']) for r in ok}):
        recs = [r for r in ok if (r['xc'], r['basis']) == (xc, basis)]
        tag = f'{xc}_{basis}'.replace('/', '-')
        present = [g for g in guesses if any(r['guess'] == g for r in recs)]
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        axes[0].boxplot([[r['cycles'] for r in recs if r['guess'] == g] for g in present])
        axes[0].set_xticks(range(1, len(present) + 1), present, rotation=30)
        axes[0].set_ylabel('SCF cycles')
        axes[0].set_title(f'{xc.upper()}/{basis}: cycles per guess')
        for g in ('minao', 'mlsr'):
            pts = [(r['nao'], r['total_s']) for r in recs if r['guess'] == g]
            if pts:
                axes[1].scatter(*zip(*pts), label=g, s=12, color=colour[g])
        axes[1].set_title('wall time against basis size')
        axes[1].set_xlabel('basis functions')
        axes[1].set_ylabel('guess + SCF wall time (s)')
        axes[1].legend()
        for g in present:
            pts = [(r['guess_nmae'], r['cycles']) for r in recs if r['guess'] == g]
            axes[2].scatter(*zip(*pts), label=g, s=12, color=colour[g])
        axes[2].set_xscale('log')
        axes[2].xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axes[2].xaxis.set_major_formatter(FuncFormatter(lambda x, _: f'{100 * x:g} %'))
        axes[2].xaxis.set_minor_formatter(NullFormatter())
        for ax in (axes[0], axes[2]):
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))   # cycles are whole numbers
        axes[2].set_title('cycles against guess density error')
        axes[2].set_xlabel('guess density NMAE')
        axes[2].set_ylabel('SCF cycles')
        axes[2].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(pathlib.Path(out) / f'{tag}.png', dpi=110)
        plt.close(fig)


def _require_bench_extra(report_only=False, plots=True):
    """Name the install command instead of failing on a bare ModuleNotFoundError."""
    import importlib.util
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--molecules', required=True,
                        help=f'folder of .xyz files or a built-in set ({", ".join(BUILTIN)})')
    parser.add_argument('--n', type=int, help='first N molecules only')
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
    parser.add_argument('--no-plots', action='store_true')
    parser.add_argument('--report-only', action='store_true',
                        help='rebuild results.md and the plots from results.json, run nothing')
    args = parser.parse_args(argv)
    _require_bench_extra(args.report_only, not args.no_plots)
    split = [s.strip() for s in args.guesses.split(',') if s.strip()]
    guesses = ['minao'] + [g for g in split if g != 'minao']
    xcs = [s.strip().lower() for s in args.xc.split(',') if s.strip()]
    bases = [s.strip() for s in args.basis.split(',') if s.strip()]
    molecules = load_molecules(args.molecules, args.n)
    if args.report_only:
        records = [r for r in _load(pathlib.Path(args.out) / 'results.json')['records']
                   if r['guess'] in guesses]
    else:
        records = run(molecules, xcs, bases, guesses, args.out, workers=args.workers,
                      scheduler=args.scheduler, conv_tol=args.conv_tol,
                      max_cycle=args.max_cycle, device=args.device, weights=args.weights,
                      density_fit=args.density_fit)
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
