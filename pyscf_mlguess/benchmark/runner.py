"""The benchmark runs: every guess on a fresh SCF object per molecule, resumable, on Dask.

For every molecule, functional and basis, a minao run at the requested tolerance is the
reference (kept in ``results.json``: a resumed run with new guesses does not repeat it); then
every guess runs on a fresh SCF object. Each run records its cycles, whether it converged, its
energy and |dE| against the minao run, the guess and SCF wall times (the guess split into grid
/ model / projection for mlsr), the number of basis functions and the NMAE of the guess density
against the converged one on PySCF's integration grid (the run's own when it reached the
reference energy, else the minao run's); mlsr runs also name the weights they used (file and
SHA-256), and a folder takes no mlsr runs made with other weights. Results go to
``results.json`` after every finished molecule, so an interrupted run resumes; its ``pending``
counts the molecule runs the last invocation still had to do (0: the folder is complete, for the
molecules that invocation asked for). Molecules run as
independent Dask tasks (a local cluster of single-threaded processes, or a scheduler's
address); ``workers=0`` runs them one by one in this process. One results folder holds one set
of the settings that change the numbers (:data:`SETTINGS`).
"""

import gc
import json
import os
import pathlib
import sys
import time
import traceback

ENERGY_TOL = 1e-6      # Ha: a run that lands further from the minao energy is a failure
# settings that change the results (not only the timings), with their values in files that
# predate them; one results folder holds one set
SETTINGS = {'conv_tol': None, 'max_cycle': None, 'density_fit': False, 'weights': None,
            'exchange': None, 'outside_domain': None, 'level_shift': None,
            'diis_start_cycle': None}


def _make_scf(mol, xc):
    from pyscf import dft, scf
    if xc == 'hf':
        return scf.RHF(mol) if mol.spin == 0 else scf.UHF(mol)
    return dft.RKS(mol, xc=xc) if mol.spin == 0 else dft.UKS(mol, xc=xc)


def _has_guess(mf, guess):
    key = {'hcore': '1e'}.get(guess, guess)
    return guess == 'mlsr' or hasattr(mf, f'init_guess_by_{key}')


def run_molecule(name, entry, xc, basis, guesses, conv_tol=None, max_cycle=None, device=None,
                 weights=None, reference=None, density_fit=False, exchange=None,
                 outside_domain=None, level_shift=None, diis_start_cycle=None):
    """Records (dicts) of every guess for one molecule, functional and basis.

    ``reference`` is the minao record of an earlier run (resuming with new guesses): its energy
    is then the reference and the minao SCF is not repeated.  A guess's density NMAE is measured
    against its own converged density when the run reached the reference energy, else against
    the minao run's (which is then computed).
    """
    base = {'molecule': name, 'xc': xc, 'basis': basis, 'density_fit': bool(density_fit)}
    if level_shift:
        base['level_shift'] = level_shift
    if diis_start_cycle is not None:
        base['diis_start_cycle'] = diis_start_cycle
    if isinstance(entry, str):
        return [dict(base, guess=g, error=entry) for g in guesses]
    from pyscf import gto
    import pyscf_mlguess  # noqa: F401  (registers 'mlsr')
    from pyscf_mlguess.metrics import density_nmae
    from pyscf_mlguess.project import exchange_fractions
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
        if level_shift is not None:
            mf.level_shift = level_shift
        if diis_start_cycle is not None:
            mf.diis_start_cycle = diis_start_cycle
        return mf

    def one(guess):
        _collect()
        mf = fresh()
        if not _has_guess(mf, guess):
            return dict(base, guess=guess, error=f'PySCF has no {guess!r} initial guess'), None
        if guess == 'mlsr' and exchange is not None:
            mf.mlsr_exchange = exchange
        if guess == 'mlsr' and outside_domain is not None:
            mf.mlsr_outside_domain = outside_domain
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
                   e_tot=float(mf.e_tot), guess_s=t1 - t0, scf_s=t2 - t1, total_s=t2 - t0,
                   diis_start_cycle_used=int(mf.diis_start_cycle))   # the guess may set it
        if guess == 'mlsr' and any(exchange_fractions(mf)[1:]):
            rec['exchange'] = mf.mlsr_exchange      # only where there is exact exchange
        if guess == 'mlsr':
            rec['weights'] = _weights_used(mf, weights)
        if guess == 'mlsr' and mf.mlsr_timings:
            rec.update({f'{k}_s': v for k, v in mf.mlsr_timings.items() if k != 'total'})
            if 'minao' in mf.mlsr_timings:
                rec['handed_over_to'] = 'minao'     # outside the weights' domain
        # What the density errors need, not the SCF object: its integrals (in-core ERIs, DF
        # tensors) must be gone before the next run (see _collect).
        return rec, (dm0, mf.make_rdm1(), getattr(mf, 'grids', None))

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
        return ref_state[1]

    out = []
    for guess in guesses:
        rec, state = (reference, ref_state) if guess == 'minao' else one(guess)
        if state is not None:
            dm0, dm_final, grids = state
            rec['delta_e'] = abs(rec['e_tot'] - reference['e_tot'])
            same_state = rec['converged'] and rec['delta_e'] <= ENERGY_TOL
            dm_conv = dm_final if same_state else reference_dm()
            rec['guess_nmae'] = density_nmae(mol, dm0, dm_conv, grids)
            rec['reference_converged'] = reference['converged']
        out.append(rec)
    return out


def _collect():
    """Free the SCF objects of earlier runs before the next one starts.

    PySCF chooses how to build J and K from the memory in use when an SCF starts
    (``lib.current_memory()``): in-core ERIs only if ``nao**4 / 1e6`` MB fit beside it, in-core DF
    tensors likewise.  An earlier run's integrals still held in this process would send the
    next run to direct SCF or out-of-core DF, and since minao always runs first, that timed
    against every other guess (docs/benchmarks.md)."""
    gc.collect()


def _weights_used(mf, weights):
    from pyscf_mlguess.model import resolve_weights, weights_family, weights_id
    return weights_id(resolve_weights(weights_family(mf), weights)[0])


def _check_weights(records, tasks, weights, path):
    """Refuse to add mlsr runs made with other weights than the folder's mlsr runs of the same
    functional (the shipped default moves with each release)."""
    from pyscf_mlguess.model import resolve_weights, weights_id, xc_family
    for xc in sorted({t[2] for t in tasks if 'mlsr' in t[4]}):
        stored = {r.get('weights') for r in records
                  if r['guess'] == 'mlsr' and r['xc'] == xc and 'error' not in r}
        if not stored:
            continue
        now = weights_id(resolve_weights(xc_family(xc), weights)[0])
        if stored != {now}:
            made = ', '.join(sorted(w or 'unrecorded weights' for w in stored))
            raise SettingsMismatch(f'{path} holds {xc} mlsr runs made with {made}; they would '
                                   f'now use {now}. Use another --out, or --weights with the '
                                   'file they were made with.')


def is_failure(rec):
    return 'error' in rec or not rec['converged'] or rec['delta_e'] > ENERGY_TOL


def _key(rec):
    return rec['molecule'], rec['xc'], rec['basis'], rec['guess']


def load_results(path):
    """A results file's content (no records if it does not exist yet)."""
    return json.loads(path.read_text()) if path.exists() else {'records': []}


def progress_label(data):
    """``'in progress: N to go'`` for a results file whose run is still going (its ``pending``
    molecule runs), else ``''``: how a report citing a folder marks it as unfinished."""
    return f"in progress: {data['pending']} to go" if data.get('pending') else ''


class SettingsMismatch(ValueError):
    """A results folder holds runs made with other result-changing settings."""


def _check_settings(stored, wanted, path):
    """Refuse to mix runs made with different result-changing settings in one folder."""
    if not stored['records']:
        return
    clash = {k: (stored.get(k, default), wanted[k]) for k, default in SETTINGS.items()
             if stored.get(k, default) != wanted[k]}
    if clash:
        said = ', '.join(f'{k}={a!r} there, {b!r} now' for k, (a, b) in clash.items())
        raise SettingsMismatch(f'{path} holds runs made with other settings ({said}); '
                         'use another --out, or the settings it was made with')


def write_json(path, data):
    """Write `data` to `path` as indented JSON through a temporary file and ``os.replace``, so
    that a run stopped mid-write leaves the previous file whole."""
    path = pathlib.Path(path)
    tmp = path.with_suffix(path.suffix + '.tmp')
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def run(molecules, xcs, bases, guesses, out, workers=1, scheduler=None, conv_tol=None,
        max_cycle=None, device=None, weights=None, density_fit=False, exchange=None,
        outside_domain=None, level_shift=None, diis_start_cycle=None, progress=True):
    """Run what ``out/results.json`` does not hold yet; returns all its records.

    ``exchange`` sets the mlsr guess's exact-exchange treatment (``mlsr_exchange``) and
    ``outside_domain`` what it does outside the weights' domain (``mlsr_outside_domain``); None
    keeps the package's default.  ``level_shift`` (Hartree) is PySCF's ``mf.level_shift`` and
    ``diis_start_cycle`` its ``mf.diis_start_cycle`` (0: the guess's own Fock matrix joins the
    DIIS subspace; PySCF's default 1 leaves it out) for every guess's SCF.  Like ``conv_tol``,
    ``max_cycle``, ``weights`` and ``density_fit`` they change the results, so one folder holds
    one value."""
    from tqdm import tqdm
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / 'results.json'
    settings = {'conv_tol': conv_tol, 'max_cycle': max_cycle,
                'density_fit': bool(density_fit), 'weights': weights, 'exchange': exchange,
                'outside_domain': outside_domain, 'level_shift': level_shift,
                'diis_start_cycle': diis_start_cycle}
    stored = load_results(path)
    _check_settings(stored, settings, path)
    records = stored['records']
    done = {_key(r) for r in records}
    minao = {_key(r)[:3]: r for r in records if r['guess'] == 'minao' and 'error' not in r}
    tasks = [(name, entry, xc, basis, [g for g in guesses if (name, xc, basis, g) not in done],
              minao.get((name, xc, basis)))
             for name, entry in molecules for xc in xcs for basis in bases]
    tasks = [t for t in tasks if t[4]]
    _check_weights(records, tasks, weights, path)
    parallel = scheduler is not None or workers > 1
    info = {'python': sys.version.split()[0], 'cpu_count': os.cpu_count(),
            'parallel': parallel, 'workers': None if scheduler else workers,
            'scheduler': scheduler, 'device': device, **settings,
            'pending': len(tasks)}     # molecule runs still to do: 0 once the folder is complete
    bar = tqdm(total=len(tasks), unit='task', disable=not progress)
    run_id = time.strftime('%Y-%m-%dT%H:%M:%S%z')   # wall times compare only within one run

    def finish(recs):
        for rec in recs:
            rec['parallel'] = parallel
            rec['run'] = run_id
        records.extend(recs)
        info['pending'] -= 1
        write_json(path, dict(info, records=records))
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
        write_json(path, dict(info, records=records))
    return records


def _guarded(name, entry, xc, basis, guesses, reference, **kwargs):
    try:
        return run_molecule(name, entry, xc, basis, guesses, reference=reference, **kwargs)
    except Exception as err:                          # one molecule never stops the run
        msg = f'{type(err).__name__}: {err}'
        traceback.print_exc()
        return [{'molecule': name, 'xc': xc, 'basis': basis, 'guess': g, 'error': msg}
                for g in guesses]
