"""Oracle proof of the projection: how many SCF cycles a *perfect* predicted density needs.

For each molecule and functional: converge tightly (the reference density), then count PySCF's
default SCF cycles from minao, from 'atom', and from 'mlsr' with the oracle predictor (the exact
delta_rho on the box) for several grid spacings, projection grid levels and, for hybrids, each
exact-exchange treatment.  'k_refresh' costs one extra exchange build, counted in its "total"
column.

    python benchmarks/oracle.py --out benchmarks/results/oracle          # all, resumable
    python benchmarks/oracle.py --molecules benchmarks/molecules/oracle --xc pbe --spacings 0.2
    python benchmarks/oracle.py --spacings 0.15 --grid-levels 1,2 --exchange lda_x,k_refresh
    python benchmarks/oracle.py --molecules qm9-test --n 12 --xc pbe --spacings 0.15,0.3 \
        --out benchmarks/results/oracle/qm9-test

``--molecules`` is a folder of .xyz files or a built-in set of ``run_scf.py`` (``qm9-test``,
``derived-test``); closed shells only.

Writes ``results.json`` (one record per molecule, functional, guess) and ``oracle.md``.
"""

import argparse
import itertools
import json
import pathlib
import time

import numpy
from pyscf import dft, gto, scf

import pyscf_mlguess  # noqa: F401  (registers 'mlsr')
from pyscf_mlguess import ZeroPredictor, config
from pyscf_mlguess.benchmark.molecules import load_molecules
from pyscf_mlguess.metrics import default_grids, density_nmae
from pyscf_mlguess.oracle import OraclePredictor
from pyscf_mlguess.project import EXCHANGE_TREATMENTS

HERE = pathlib.Path(__file__).parent


def make_scf(mol, xc):
    return scf.RHF(mol) if xc == 'hf' else dft.RKS(mol, xc=xc)


def run(mol, xc, init_guess, **attrs):
    mf = make_scf(mol, xc)
    mf.init_guess = init_guess
    for key, value in attrs.items():
        setattr(mf, key, value)
    t0 = time.perf_counter()
    mf.dm0 = mf.get_init_guess(mol, mf.init_guess)   # kept for its density error; kernel()'s start
    mf.kernel(mf.dm0)
    return mf, time.perf_counter() - t0


def oracle_rows(name, entry, xc, basis, spacings, margin, grid_levels, treatments):
    mol = gto.M(atom=entry['atom'], charge=entry['charge'], spin=entry['spin'], basis=basis,
                verbose=0)
    if mol.spin:
        raise ValueError(f'{name}: open shell (spin {mol.spin}); the oracle runs closed shells')
    ref = make_scf(mol, xc)
    ref.conv_tol = 1e-11
    ref.kernel()
    dm_ref = ref.make_rdm1()
    grids = default_grids(mol, getattr(ref, 'grids', None))
    rows = []

    def record(guess, mf, seconds, spacing=None, exchange=None, extra=0, level=None):
        rows.append(dict(molecule=name, xc=xc, basis=basis, nao=mol.nao, guess=guess,
                         spacing=spacing, margin=margin if spacing else None, exchange=exchange,
                         grid_level=level,
                         cycles=mf.cycles, extra_builds=extra, total=mf.cycles + extra,
                         converged=bool(mf.converged), e_tot=mf.e_tot, seconds=seconds,
                         guess_nmae=density_nmae(mol, mf.dm0, dm_ref, grids)))

    mf_minao, t = run(mol, xc, 'minao')
    record('minao', mf_minao, t)
    record('atom', *run(mol, xc, 'atom'))
    hybrid = xc == 'hf' or bool(make_scf(mol, xc)._numint.rsh_and_hybrid_coeff(xc)[2])
    default_level = config.PROJECTION_GRID_LEVEL
    try:
        for level, exchange in itertools.product(grid_levels, treatments if hybrid else (None,)):
            # read at call time by project.projection_grids
            config.PROJECTION_GRID_LEVEL = level
            extra = 1 if exchange == 'k_refresh' else 0
            # delta_rho = 0: the SAD density matrix itself is projected, no box involved
            mf, t = run(mol, xc, 'mlsr', mlsr_predictor=ZeroPredictor(),
                        mlsr_exchange=exchange or config.EXCHANGE)
            record('sad-projected', mf, t, None, exchange, extra, level)
            for spacing in spacings:
                mf, t = run(mol, xc, 'mlsr', mlsr_exchange=exchange or config.EXCHANGE,
                            mlsr_predictor=OraclePredictor(dm_ref, spacing, margin))
                record('oracle', mf, t, spacing, exchange, extra, level)
    finally:
        config.PROJECTION_GRID_LEVEL = default_level
    for row in rows:
        row['delta_e'] = row['e_tot'] - mf_minao.e_tot
    return rows


def markdown(rows):
    lines = ['| molecule | xc | nao | minao | atom | guess | exchange | projection grid level | '
             'spacing (Bohr) | cycles (+extra) | max abs(dE) vs minao |', '|' + '---|' * 11]
    groups = {}
    for r in rows:
        groups.setdefault((r['molecule'], r['xc']), []).append(r)
    for (mol, xc), rs in groups.items():
        base = {r['guess']: r for r in rs if r['guess'] in ('minao', 'atom')}
        for r in rs:
            if r['guess'] in ('minao', 'atom'):
                continue
            level = r.get('grid_level')
            cyc = f"{r['cycles']}" + (f" (+{r['extra_builds']})" if r['extra_builds'] else '')
            if not r['converged']:
                cyc += ' not converged'
            lines.append(f"| {mol} | {xc} | {r['nao']} | {base['minao']['cycles']} | "
                         f"{base['atom']['cycles']} | {r['guess']} | {r['exchange'] or '-'} | "
                         f"{'-' if level is None else level} | {r['spacing'] or '-'} | {cyc} | "
                         f"{abs(r['delta_e']):.1e} |")
    return summary(rows) + '\n' + '\n'.join(lines) + '\n'


def summary(rows):
    """Cycle sums per functional and setting, over the molecules that have every setting of
    that functional (extra exchange builds counted)."""
    lines = ['| xc | guess | exchange | projection grid level | spacing (Bohr) | molecules | '
             'cycles, sum (+extra) | guess NMAE, median |', '|' + '---|' * 8]
    for xc in dict.fromkeys(r['xc'] for r in rows):
        rs = [r for r in rows if r['xc'] == xc]
        settings = {}
        for r in rs:
            key = (r['guess'], r['exchange'] or '-', r.get('grid_level'), r['spacing'])
            settings.setdefault(key, {})[r['molecule']] = r
        common = set.intersection(*(set(v) for v in settings.values()))
        for (guess, exchange, level, spacing), by_mol in settings.items():
            cycles = sum(by_mol[m]['cycles'] for m in common)
            extra = sum(by_mol[m]['extra_builds'] or 0 for m in common)
            nmae = [by_mol[m].get('guess_nmae') for m in common]
            nmae = (f'{100 * numpy.median(nmae):.2f} %' if nmae and None not in nmae else '–')
            lines.append(f"| {xc} | {guess} | {exchange} | {'-' if level is None else level} | "
                         f"{spacing or '-'} | {len(common)} | {cycles}"
                         + (f' (+{extra})' if extra else '') + f' | {nmae} |')
    return '\n'.join(lines) + '\n'


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--molecules', default=str(HERE / 'molecules' / 'oracle'),
                        help='folder of .xyz files, or qm9-test / derived-test')
    parser.add_argument('--n', type=int, help='first N molecules only')
    parser.add_argument('--xc', default='pbe,b3lyp')
    parser.add_argument('--basis', default='def2-svp')
    parser.add_argument('--spacings', default='0.1,0.15,0.2,0.3')
    parser.add_argument('--margin', type=float, default=config.GRID_MARGIN)
    parser.add_argument('--grid-levels', default=str(config.PROJECTION_GRID_LEVEL),
                        help='projection integration grid levels, comma-separated')
    parser.add_argument('--exchange', default=','.join(EXCHANGE_TREATMENTS),
                        help='exchange treatments for hybrids, comma-separated (of '
                             f'{", ".join(EXCHANGE_TREATMENTS)})')
    parser.add_argument('--out', default=str(HERE / 'results' / 'oracle'))
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / 'results.json'
    rows = json.loads(store.read_text()) if store.exists() else []
    done = {(r['molecule'], r['xc']) for r in rows}
    spacings = [float(s) for s in args.spacings.split(',')]
    levels = [int(s) for s in args.grid_levels.split(',')]
    treatments = args.exchange.split(',')
    unknown = set(treatments) - set(EXCHANGE_TREATMENTS)
    if unknown:
        parser.error(f'--exchange: unknown treatment(s) {sorted(unknown)}; '
                     f'choose from {EXCHANGE_TREATMENTS}')
    entries = load_molecules(args.molecules, n=args.n)
    for xc in args.xc.split(','):
        for name, entry in entries:
            if (name, xc) in done:
                continue
            if isinstance(entry, str):
                raise SystemExit(f'{name}: {entry}')
            t0 = time.perf_counter()
            rows += oracle_rows(name, entry, xc, args.basis, spacings, args.margin, levels,
                                treatments)
            store.write_text(json.dumps(rows, indent=1))
            (out / 'oracle.md').write_text(markdown(rows))
            print(f'{name} {xc}: {time.perf_counter() - t0:.0f} s', flush=True)
    print(markdown(rows))


if __name__ == '__main__':
    main()
