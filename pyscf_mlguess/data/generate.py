"""Reference KS-DFT calculations for the training set, run over many molecules with Dask.

``generate`` is resumable: every finished sample is on disk before the next is awaited (see
:class:`~pyscf_mlguess.data.store.ShardWriter`), a restarted run skips every key already on disk,
and shards are written atomically.  Workers are Dask processes with one BLAS thread each: a
``LocalCluster`` by default, or any cluster through its scheduler address.
"""

import os
import platform
import signal
import time

import numpy as np
from pyscf.dft import numint
from pyscf.lib import param

from pyscf_mlguess import __version__
from pyscf_mlguess.data import qm9, store

#: Reference level: restricted KS with PySCF's defaults apart from a tight convergence.
BASIS = 'def2-svp'
CONV_TOL = 1e-10
MAX_CYCLE = 100
#: PySCF's default SCF tolerance, used to also report the cycles an ordinary user would see.
DEFAULT_CONV_TOL = 1e-9
#: Most MB of AO values (with their gradients) a reference keeps on its grid across SCF cycles.
AO_CACHE_MB = 2000


class CachedAONumInt(numint.NumInt):
    """PySCF's numerical integrator, keeping the AO values on the grid across SCF cycles.

    Each cycle evaluates the same AOs on the same grid again, a large share of a reference's
    CPU time at grid level 1 (docs/training.md).  The first pass's blocks are kept, read-only, and
    handed out again while the molecule, the grid and the derivative order are the same objects
    and the values fit in ``max_mb``; otherwise this is PySCF's loop as it is.  The blocks are
    PySCF's own, so the results are the same to the last bit.  One instance per SCF object.
    """

    def __init__(self, max_mb=AO_CACHE_MB):
        super().__init__()
        self.max_mb = max_mb
        self._key = self._blocks = None

    def block_loop(self, mol, grids, nao=None, deriv=0, max_memory=2000, non0tab=None,
                   blksize=None, buf=None):
        nao = mol.nao if nao is None else nao
        key = (mol, grids, grids.coords, deriv, nao)
        if self._key is not None and all(a is b for a, b in zip(key, self._key)):
            yield from self._blocks
            return
        comp = (deriv + 1) * (deriv + 2) * (deriv + 3) // 6
        fits = (grids.coords is not None and non0tab is None
                and comp * nao * len(grids.coords) * 8e-6 <= self.max_mb)
        loop = super().block_loop(mol, grids, nao, deriv, max_memory, non0tab, blksize,
                                  None if fits else buf)
        if not fits:
            yield from loop
            return
        blocks = []
        for ao, mask, weight, coords in loop:
            ao = ao.copy(order='K')             # PySCF reuses one buffer for every block
            ao.setflags(write=False)
            blocks.append((ao, mask, weight, coords))
            yield blocks[-1]
        self._key, self._blocks = key, blocks


def _default_cycles(trace, conv_tol=DEFAULT_CONV_TOL):
    """Cycles PySCF would report at its default ``conv_tol`` (same test as hf.kernel)."""
    tol_grad = np.sqrt(conv_tol)
    for cycle, (_, de, gnorm) in enumerate(trace):
        if abs(de) < conv_tol and gnorm < tol_grad:
            return cycle + 1
    return -1


def reference_calculation(sample, xc, basis=BASIS, conv_tol=CONV_TOL, max_cycle=MAX_CYCLE,
                          threads=1, density_fit=False, grid_level=None, init_guess='minao',
                          cache_ao=True):
    """Converge restricted KS for one sample from ``init_guess`` (PySCF's default, minao).

    With ``density_fit`` the Coulomb (and exact-exchange) integrals are density-fitted with
    PySCF's default auxiliary basis (``mf.density_fit()``, its 3-index tensor built before the
    SCF), which moves the converged density far less than the model's error (measured in
    docs/training.md) at a fraction of the cost; the record says which.  ``grid_level`` sets the
    integration grid's level (PySCF's default, 3, when None); every record stores the level it
    was computed on.  ``init_guess='mlsr'`` starts from this package's own guess (the shipped
    weights of ``xc``'s family): the same density in fewer cycles, but at the generator's cheap
    level no less CPU time, so ``data generate`` keeps minao (measured in docs/training.md).
    ``cache_ao`` keeps the AO values on the grid across cycles (:class:`CachedAONumInt`; the
    same numbers, less time).

    Returns a record for :mod:`store`: geometry, level, the occupied orbitals (quantised, see
    :func:`store.quantize_orbitals`), the energy and the SCF's cost from ``init_guess``
    (``<init_guess>_cycles`` at this and at PySCF's default tolerance, ``<init_guess>_wall_s``,
    the per-cycle trace of energy change and orbital gradient): a minao record doubles as the
    minao baseline of its molecule.
    An SCF that does not converge gives a record with ``converged=False`` and no orbitals, so a
    resumed run does not retry it.
    """
    import pyscf
    from pyscf import dft, gto, lib
    if threads:
        lib.num_threads(threads)
    if init_guess not in ('minao', 'mlsr'):
        raise ValueError(f"init_guess {init_guess!r}: 'minao' (PySCF's default) or 'mlsr'")
    if sample.spin != 0:
        raise ValueError(f'{sample.key}: open-shell references (spin={sample.spin}) are not '
                         f'supported; the dataset stores restricted closed-shell densities.')
    mol = gto.M(atom=sample.atom, basis=basis, charge=sample.charge, spin=0, unit='Angstrom',
                verbose=0)
    mf = dft.RKS(mol, xc=xc)
    if cache_ao:
        mf._numint = CachedAONumInt()
    if density_fit:
        mf = mf.density_fit()
    if grid_level is not None:
        mf.grids.level = grid_level
    mf.conv_tol = conv_tol
    mf.max_cycle = max_cycle
    if init_guess == 'mlsr':
        from pyscf_mlguess.guess import install
        install()                       # registers init_guess='mlsr' (idempotent)
    mf.init_guess = init_guess
    trace = []

    def record_cycle(envs):
        trace.append((float(envs['e_tot']), float(envs['e_tot'] - envs['last_hf_e']),
                      float(envs['norm_gorb'])))
    mf.callback = record_cycle
    t0 = time.perf_counter()
    if density_fit:
        # The 3-index tensor once, up front: without it PySCF fits J integral-direct for a
        # functional without exact exchange, recomputing the 3-centre integrals every cycle.
        # Same density, a fraction of the time (measured in docs/training.md).
        mf.with_df.build()
    mf.kernel()
    wall = time.perf_counter() - t0
    rec = {
        'key': sample.key, 'qm9_index': sample.qm9_index, 'smiles': sample.smiles,
        'conformer': sample.conformer, 'perturb_seed': sample.perturb_seed,
        'perturb_sigma_angstrom': sample.perturb_sigma,
        'elements': list(sample.elements), 'coords_bohr': mol.atom_coords(),
        'charge': sample.charge, 'spin': 0, 'basis': basis, 'xc': xc, 'method': 'RKS',
        'grid_level': int(mf.grids.level), 'conv_tol': conv_tol, 'nao': mol.nao,
        'density_fit': bool(density_fit),
        'auxbasis': str(mf.with_df.auxbasis) if density_fit else None,
        'converged': bool(mf.converged), 'e_tot': float(mf.e_tot), 'init_guess': init_guess,
        f'{init_guess}_cycles': len(trace),
        f'{init_guess}_cycles_default_tol': _default_cycles(trace),
        f'{init_guess}_wall_s': wall, 'scf_trace': trace,
        'code_version': __version__, 'pyscf_version': pyscf.__version__,
        'host': platform.node(),
    }
    if sample.recipe:
        rec['recipe'] = sample.recipe
    if init_guess == 'mlsr':
        from pyscf_mlguess.model import resolve_weights, weights_family, weights_id
        rec['weights'] = weights_id(resolve_weights(weights_family(mf))[0])
    if mf.converged:
        nocc = mol.nelectron // 2
        rec['mo_occ_coeff'] = store.quantize_orbitals(mf.mo_coeff[:, :nocc])
    return rec


def failure_record(sample, xc, basis, err):
    """The record of a sample whose calculation raised: kept, so a resumed run skips it and the
    stats count it, with the reason."""
    return {'key': sample.key, 'qm9_index': sample.qm9_index, 'smiles': sample.smiles,
            'conformer': sample.conformer, 'elements': list(sample.elements),
            'coords_bohr': np.asarray(sample.coords_angstrom) / param.BOHR,
            'charge': sample.charge, 'spin': sample.spin, 'basis': basis, 'xc': xc,
            'converged': False, 'error': f'{type(err).__name__}: {err}', 'minao_cycles': 0,
            'minao_wall_s': 0.0, 'code_version': __version__,
            **({'recipe': sample.recipe} if sample.recipe else {})}


#: Molecule sources: QM9 itself, and molecules derived from it with other elements and charges.
SOURCES = ('qm9', 'derived')


def level_name(xc, basis=BASIS, source='qm9'):
    """Dataset folder name of a level (and a source other than QM9): ``pbe_def2svp``,
    ``pbe_def2svp_derived``."""
    if source not in SOURCES:
        raise ValueError(f'unknown molecule source {source!r}; choose from {", ".join(SOURCES)}')
    return f'{xc.lower()}_{basis.lower().replace("-", "")}' + ('' if source == 'qm9' else
                                                               f'_{source}')


#: Dask settings of the local cluster: a reference calculation runs for seconds to minutes, so
#: the worker's statistical profiler (a 10 ms sampler) and the 20 ms ticks measure nothing worth
#: their cost, about 8 % of a core per worker process and its scheduler together (measured on
#: an idle task, 2026-12-02); with these, under 1 %.
LOCAL_CLUSTER_CONFIG = {'distributed.worker.profile.enabled': False,
                        'distributed.admin.tick.interval': '1s',
                        'distributed.admin.system-monitor.interval': '5s',
                        'distributed.worker.memory.monitor-interval': '1s'}


def _client(scheduler, workers):
    import dask
    from dask.distributed import Client, LocalCluster
    if scheduler:
        return Client(scheduler), None
    # One BLAS thread per worker process: workers are the parallelism, and timings stay honest.
    for var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ[var] = '1'
    with dask.config.set(LOCAL_CLUSTER_CONFIG):     # the nanny hands it to its worker
        cluster = LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1,
                               processes=True, dashboard_address=':0')
    return Client(cluster), cluster


def generate(root, xc, split, n, basis=BASIS, workers=None, scheduler=None, shard_size=100,
             perturb_fraction=None, conv_tol=CONV_TOL, progress=True,
             density_fit=False, grid_level=None, source='qm9'):
    """Compute the first ``n`` molecules of ``split`` at ``xc``: QM9 molecules (plus perturbed
    copies, ``perturb_fraction`` of them, :data:`.qm9.PERTURB_FRACTION` when None), or with
    ``source='derived'`` the molecules of :mod:`.derived` (other elements and ions; no perturbed
    copies) into their own folder.

    Samples already on disk are skipped; pending samples are packed into a shard at the end,
    also when the run is interrupted (Ctrl-C or SIGTERM).  Returns the folder's stats.
    """
    level = level_name(xc, basis, source)
    if source == 'derived':
        if perturb_fraction:
            raise ValueError('derived molecules have no perturbed copies; '
                             'perturb_fraction applies to QM9 only')
        from pyscf_mlguess.data import derived
        samples = derived.select(split, n)
    else:
        samples = qm9.select(split, n, perturb_fraction=qm9.PERTURB_FRACTION
                             if perturb_fraction is None else perturb_fraction)
    generate_samples(os.path.join(root, level, split), samples, xc, basis, workers, scheduler,
                     shard_size, conv_tol, progress, density_fit=density_fit,
                     grid_level=grid_level, desc=f'{level}/{split}')
    return store.stats(root)[level][split]


def generate_samples(folder, samples, xc, basis=BASIS, workers=None, scheduler=None,
                     shard_size=100, conv_tol=CONV_TOL, progress=True, desc=None,
                     density_fit=False, grid_level=None):
    """Reference calculations for ``samples`` into the dataset ``folder`` (resumable)."""
    from dask.distributed import as_completed
    from tqdm import tqdm
    writer = store.ShardWriter(folder, shard_size=shard_size)
    done = writer.done_keys()
    todo = [s for s in samples if s.key not in done]
    bar = tqdm(total=len(samples), initial=len(samples) - len(todo), unit='mol',
               desc=desc or folder, disable=not progress)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    client = cluster = None
    try:
        if todo:
            client, cluster = _client(scheduler, workers)
            futures = client.map(reference_calculation, todo, xc=xc, basis=basis,
                                 conv_tol=conv_tol, density_fit=density_fit,
                                 grid_level=grid_level, pure=False)
            by_key = {f.key: s for f, s in zip(futures, todo)}
            for fut in as_completed(futures):
                try:
                    rec = fut.result()
                except Exception as err:          # one molecule failing stops nothing else
                    rec = failure_record(by_key[fut.key], xc, basis, err)
                    bar.write(f"{rec['key']}: failed ({rec['error']})")
                writer.add(rec)
                fut.release()
                bar.set_postfix_str(f"{rec['key']} {rec['minao_cycles']} cyc "
                                    f"{rec['minao_wall_s']:.0f}s")
                bar.update()
    finally:
        writer.flush()
        bar.close()
        signal.signal(signal.SIGTERM, previous)
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')
