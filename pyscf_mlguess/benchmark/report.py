"""The benchmark's report: ``results.md`` (what a user waits, mlsr against minao side by side,
then every guess) and the plots."""

import pathlib
import statistics

from pyscf_mlguess.benchmark.runner import is_failure

#: Every PySCF guess, in the order of the tables and plots (one colour each).
ALL_GUESSES = ('minao', 'atom', 'huckel', 'mod_huckel', 'sap', 'vsap', '1e', 'mlsr')


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
        shifts = sorted({r['level_shift'] for r in recs if r.get('level_shift')})
        if shifts:
            df += f' (level shift {", ".join(f"{v:g}" for v in shifts)} Ha)'
        starts = sorted({r['diis_start_cycle'] for r in recs if 'diis_start_cycle' in r})
        if starts:
            df += f' (DIIS from cycle {", ".join(map(str, starts))})'
        lines += [f'## {xc.upper()} / {basis}{df}: {len(mols)} molecules', '']
        used = sorted({r['weights'] for r in recs if r['guess'] == 'mlsr' and 'weights' in r})
        if used:
            lines += [f'mlsr weights: {", ".join(used)}', '']
        lines += _diis_start_lines(recs)
        if 'mlsr' in by and 'minao' in by:
            lines += _headline_lines(by['mlsr'], by['minao'])
        lines += ['| guess | runs | median cycles | mean cycles | mean guess s '
                  '| mean SCF s / cycle | total s | failures |',
                  '|---|---|---|---|---|---|---|---|']
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
                                 b['cycles'] + b['guess_s'] / cycle_s),
                   'stages': {k: a[f'{k}_s'] / cycle_s for k in GUESS_STAGES
                              if a.get(f'{k}_s') is not None},
                   'guess_nmae': a.get('guess_nmae')}
    return rows


#: Fewest molecules for the fitted relation between the guess error and the ratios.
MIN_FIT = 10


def error_relation(rows):
    """How the per-molecule ratios mlsr / minao (SCF cycles, total wall time) go with the mlsr
    guess's density error: {key: (intercept, slope, Spearman rho)} of ratio = intercept + slope
    * log10(NMAE), by least squares over the molecules (None with fewer than :data:`MIN_FIT`
    that have an NMAE above zero).  Across molecules, so it mixes the error's effect with how
    hard each molecule is; it says roughly what a smaller error would be worth."""
    import numpy
    from scipy.stats import spearmanr
    pts = [r for r in rows.values() if r.get('guess_nmae')]
    if len(pts) < MIN_FIT:
        return None
    x = numpy.log10([r['guess_nmae'] for r in pts])
    out = {}
    for key in ('cycles', 'total_s'):
        y = numpy.array([r[key][0] / r[key][1] for r in pts])
        slope, intercept = numpy.polyfit(x, y, 1)
        out[key] = (float(intercept), float(slope), float(spearmanr(x, y)[0]))
    return out


def _relation_line(rows):
    fit = error_relation(rows)
    if fit is None:
        return []
    parts = []
    for key, label, goal in (('cycles', 'SCF cycles', 0.8), ('total_s', 'total wall time', 0.9)):
        a, b, rho = fit[key]
        at = (f'; the fit reaches {goal:.2f} at {100 * 10 ** ((goal - a) / b):.2g} %'
              if b > 0 else '')
        parts.append(f'{label} {a:.2f} {b:+.2f} log10(NMAE) (Spearman {rho:.2f}{at})')
    n = sum(1 for r in rows.values() if r.get('guess_nmae'))
    return [f'Ratio mlsr / minao against the mlsr guess\'s density error, fitted across the {n} '
            f'molecules: {"; ".join(parts)}. Across molecules, so hard molecules and large '
            'errors are mixed in it; a rough price of a smaller error, not a prediction.', '']


#: Fewest cycles saved for a molecule's SCF time to be split into set-up and cycles.
MIN_SAVED = 2


def setup_share(rows):
    """(median, lower quartile, upper quartile, molecules) of the share of minao's SCF wall
    time that does not scale with the cycles (integrals, the integration grid, the first Fock
    build), or None.  Per molecule that mlsr saves at least :data:`MIN_SAVED` cycles on, the two
    runs give two equations scf_s = set-up + cycles * per-cycle; noisy one by one (the two runs
    share the machine's load, not its noise), so only the median is meant.  It bounds what fewer
    cycles can do: with share s and a guess costing g of minao's total time, the total wall-time
    ratio is W = s + (1 - s) R + g at an SCF-cycle ratio R."""
    import numpy
    shares = []
    for r in rows.values():
        (c_ml, c_mi), (s_ml, s_mi) = r['cycles'], r['scf_s']
        if c_mi - c_ml >= MIN_SAVED:
            per_cycle = (s_mi - s_ml) / (c_mi - c_ml)
            shares.append((s_mi - c_mi * per_cycle) / s_mi)
    if len(shares) < MIN_FIT:
        return None
    q1, med, q3 = numpy.percentile(shares, [25, 50, 75])
    return float(med), float(q1), float(q3), len(shares)


def _setup_line(rows):
    share = setup_share(rows)
    if share is None:
        return []
    s, q1, q3, n = share
    g = statistics.median(r['guess_s'][0] / r['total_s'][1] for r in rows.values())
    r_now = statistics.median(r['cycles'][0] / r['cycles'][1] for r in rows.values())
    w_now = statistics.median(r['total_s'][0] / r['total_s'][1] for r in rows.values())
    return [f'Set-up share s of minao\'s SCF time (integrals, grid: what fewer cycles do not '
            f'shorten), from the {n} molecules where mlsr saves {MIN_SAVED} or more cycles: '
            f'{s:.2f} (median; quartiles {q1:.2f}–{q3:.2f}); the mlsr guess costs g = {g:.3f} of '
            f'minao\'s total time (median). Total wall-time ratio W = s + (1 - s) R + g at an '
            f'SCF-cycle ratio R: {s + (1 - s) * r_now + g:.2f} at today\'s {r_now:.2f} '
            f'(measured {w_now:.2f}); W = 0.90 needs R = {(0.9 - s - g) / (1 - s):.2f}.', '']


#: The mlsr guess's stages as its records time them (``mf.mlsr_timings``), with their labels.
GUESS_STAGES = {'grid': 'SAD box', 'model': 'network', 'projection': 'projection'}


def _stage_costs(rows):
    """'SAD box 0.08, network 0.31, projection 0.62' (median SCF cycles per stage), or ''."""
    parts = []
    for key, label in GUESS_STAGES.items():
        costs = [r['stages'][key] for r in rows.values() if key in r['stages']]
        if costs:
            parts.append(f'{label} {statistics.median(costs):.2f}')
    return ', '.join(parts)


def _ratio_stats(pairs):
    """(median ratio a/b, wins a < b, ties, losses) over (a, b) pairs."""
    ratios = [a / b for a, b in pairs]
    wins = sum(a < b for a, b in pairs)
    ties = sum(a == b for a, b in pairs)
    return statistics.median(ratios), wins, ties, len(pairs) - wins - ties


def _diis_start_lines(recs):
    """A line when the guesses ran with different ``mf.diis_start_cycle`` (the mlsr guess sets
    its own, ``mlsr_diis_start_cycle``, on an SCF object at PySCF's default)."""
    used = {}
    for r in recs:
        if 'diis_start_cycle_used' in r:
            used.setdefault(r['guess'], set()).add(r['diis_start_cycle_used'])
    if len({frozenset(v) for v in used.values()}) < 2:
        return []
    said = '; '.join(f'{g} from cycle {", ".join(map(str, sorted(v)))}'
                     for g, v in sorted(used.items()))
    return [f'DIIS (mf.diis_start_cycle): {said}.', '']


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
    stages = _stage_costs(rows)
    lines += ['', f'Summed wall time of all mlsr runs over all minao runs: {total:.2f}. The mlsr '
              f'guess costs {statistics.median(cost):.2f} SCF cycles (median; '
              f'{min(cost):.2f}–{max(cost):.2f}), one SCF cycle being the minao run\'s SCF wall '
              'time over its cycles.'
              + (f' By stage (median SCF cycles): {stages}.' if stages else ''), '',
              *_relation_line(rows),
              *_setup_line(rows),
              '<details><summary>Per molecule</summary>', '',
              '| molecule | nao | cycles mlsr / minao | guess s mlsr / minao | SCF s mlsr / minao '
              '| total s mlsr / minao | effective cycles mlsr / minao |',
              '|---|---|---|---|---|---|---|']
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
    known = list(ALL_GUESSES)          # one colour per guess in every panel and plot
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
