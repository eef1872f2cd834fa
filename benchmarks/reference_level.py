"""Cheaper reference calculations for the training data: how far do they move the density?

    python benchmarks/reference_level.py --start 0 --n 30
    python benchmarks/reference_level.py --start 0 --n 30 --grid-levels 1,2,3
    python benchmarks/reference_level.py --data data/b3lyp_def2svp/train --n 30 --grid-levels 1
    python benchmarks/reference_level.py --data data/pbe_def2svp_derived/train --conv-tol 1e-9
    python benchmarks/reference_level.py --data data/pbe_def2svp/train --start 600 --n 10 --df-j
    python benchmarks/reference_level.py --n 30 --init-guess
    python benchmarks/reference_level.py --data data/pbe_def2svp/train --n 12 --ao-cache

For stored samples with exact-integral references (by default PBE validation, conv_tol 1e-10),
recompute the reference with density fitting (PySCF's default auxiliary basis; for a hybrid
such as B3LYP exchange is fitted too, RI-JK) at conv_tol 1e-10, and for the first ``--timed``
of them also at 1e-9 and the exact reference again for timing, all on one thread.  Appends one
JSON line per molecule to ``benchmarks/results/reference_level/<xc>_<split>.jsonl`` (split: the
data folder's name): wall seconds, cycles, the density NMAE against the stored reference (on
PySCF's default grid) and the energy difference.  A cheaper
level is adopted only if its NMAE stays <= 2e-4 (0.02 %), far below the model's error.

With ``--grid-levels`` it instead recomputes each reference density-fitted on PySCF's
integration grids of those levels (the stored references use level 3) and appends to
``<xc>_<split>_grids.jsonl``: CPU seconds (one thread, so robust to a busy machine), cycles, and
the NMAE of each density against the stored exact reference and against the level-3 fitted one.

With ``--conv-tol`` it recomputes each reference with its own stored settings (density
fitting, grid level) at that convergence threshold and appends to
``<dataset>_<split>_tol<conv_tol>.jsonl``: cycles against the stored run's, CPU seconds, and the
NMAE of the density against the stored one (on a level-3 grid).

With ``--df-j`` it recomputes density-fitted references with their stored settings twice each
way, alternating: J fitted integral-direct (PySCF's default without exact exchange) and from the
3-index tensor built before the SCF (the generator since 2026-12-02), and appends to
``<dataset>_<split>_dfj.jsonl``: wall and CPU seconds, cycles, and the NMAE of the two densities
against each other and against the stored one (level-3 grid).

With ``--init-guess`` it runs the generator itself (``reference_calculation``, density-fitted on
a level-1 grid, the stored conv_tol) from minao and from mlsr (the shipped weights; validation
molecules, so unseen by them), once each in alternating order, and appends to
``<dataset>_<split>_guess.jsonl``: CPU seconds (guess included), cycles, and the NMAE of the two
densities against each other and of each against the stored reference (level-3 grid).

With ``--ao-cache`` it runs the generator (``reference_calculation`` with the record's own
settings) with AO values kept across cycles and without, twice each, alternating, and appends
to ``<dataset>_<split>_aocache.jsonl``: CPU seconds, cycles, and whether the two energies and
orbitals are identical.
"""

import argparse
import json
import pathlib
import time

from pyscf import dft, lib

from pyscf_mlguess.data import qm9, store
from pyscf_mlguess.data.generate import reference_calculation
from pyscf_mlguess.metrics import density_nmae
from pyscf_mlguess.train.release import molecule_of

HERE = pathlib.Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', default=str(HERE.parent / 'data' / 'pbe_def2svp' / 'valid'))
    parser.add_argument('--start', type=int, default=0)
    parser.add_argument('--n', type=int, default=30)
    parser.add_argument('--timed', type=int, default=0, help='molecules also run exactly')
    parser.add_argument('--grid-levels', default=None,
                        help='comma-separated integration-grid levels (density-fitted)')
    parser.add_argument('--conv-tol', type=float, default=None,
                        help='recompute at this threshold with the stored settings')
    parser.add_argument('--df-j', action='store_true',
                        help='time fitted J integral-direct against the stored 3-index tensor')
    parser.add_argument('--init-guess', action='store_true',
                        help='the generator from minao against from mlsr')
    parser.add_argument('--ao-cache', action='store_true',
                        help='the generator with AO values kept across cycles against without')
    parser.add_argument('--out', default=str(HERE / 'results' / 'reference_level'))
    args = parser.parse_args()
    lib.num_threads(1)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = list(store.iter_records(args.data))[args.start:args.start + args.n]
    split = pathlib.Path(args.data).name
    if args.conv_tol is not None:
        path = out / f'{pathlib.Path(args.data).parent.name}_{split}_tol{args.conv_tol:g}.jsonl'
        for rec in records:
            _threshold(rec, args.conv_tol, path)
        return
    if args.df_j:
        path = out / f'{pathlib.Path(args.data).parent.name}_{split}_dfj.jsonl'
        for rec in records:
            if rec.get('density_fit'):
                _df_j(rec, path)
        return
    if args.ao_cache:
        path = out / f'{pathlib.Path(args.data).parent.name}_{split}_aocache.jsonl'
        for rec in records:
            _ao_cache(rec, path)
        return
    if args.init_guess:
        path = out / f'{pathlib.Path(args.data).parent.name}_{split}_guess.jsonl'
        _load_mlsr(records[0])
        for i, rec in enumerate(records):
            _init_guess(rec, path, ('minao', 'mlsr') if i % 2 == 0 else ('mlsr', 'minao'))
        return
    if args.grid_levels:
        levels = [int(x) for x in args.grid_levels.split(',')]
        for rec in records:
            _grid_levels(rec, levels, out / f"{rec['xc']}_{split}_grids.jsonl")
        return
    for i, rec in enumerate(records):
        mol, dm_ref = _stored(rec)
        row = {'key': rec['key'], 'nao': mol.nao,
               'stored_exact_wall': round(rec['minao_wall_s'], 1)}
        variants = [('df', True, 1e-10)]
        if i < args.timed:
            variants += [('df_tol1e-9', True, 1e-9), ('exact', False, 1e-10)]
        for name, fitted, tol in variants:
            mf = dft.RKS(mol, xc=rec['xc'])
            if fitted:
                mf = mf.density_fit()
            mf.conv_tol = tol
            t = time.perf_counter()
            mf.kernel()
            row[name] = {'wall': round(time.perf_counter() - t, 2), 'cycles': mf.cycles,
                         'nmae': density_nmae(mol, mf.make_rdm1(), dm_ref, mf.grids),
                         'dE': mf.e_tot - rec['e_tot']}
        with open(out / f"{rec['xc']}_{split}.jsonl", 'a') as f:
            print(json.dumps(row), file=f)
        print(json.dumps(row), flush=True)


def _stored(rec):
    """(molecule, stored reference density matrix) of a record."""
    mol = molecule_of(rec)
    return mol, store.density_matrix_from_orbitals(rec['mo_occ_coeff'], mol.intor('int1e_ovlp'))


def _level3_grid(mol):
    """PySCF's default integration grid, on which densities are compared."""
    grids = dft.gen_grid.Grids(mol)
    grids.level = 3
    return grids.build(with_non0tab=False)


def _threshold(rec, conv_tol, path):
    """One molecule: its reference again at ``conv_tol``, with the stored level otherwise."""
    mol, dm_ref = _stored(rec)
    mf = dft.RKS(mol, xc=rec['xc'])
    if rec.get('density_fit'):
        mf = mf.density_fit()
    mf.grids.level = rec['grid_level']
    mf.conv_tol = conv_tol
    cycles = []
    mf.callback = cycles.append             # counted as the generator counts them
    t = time.process_time()
    mf.kernel()
    fine = _level3_grid(mol)
    row = {'key': rec['key'], 'nao': mol.nao, 'density_fit': bool(rec.get('density_fit')),
           'grid_level': rec['grid_level'], 'stored_conv_tol': rec['conv_tol'],
           'stored_cycles': rec['minao_cycles'], 'conv_tol': conv_tol, 'cycles': len(cycles),
           'converged': bool(mf.converged), 'cpu': round(time.process_time() - t, 2),
           'nmae_stored': density_nmae(mol, mf.make_rdm1(), dm_ref, fine),
           'dE_stored': mf.e_tot - rec['e_tot']}
    with open(path, 'a') as f:
        print(json.dumps(row), file=f)
    print(json.dumps(row), flush=True)


def _df_j(rec, path):
    """One density-fitted molecule: fitted J integral-direct against the stored 3-index tensor,
    twice each, alternating."""
    mol, dm_ref = _stored(rec)
    row = {'key': rec['key'], 'nao': mol.nao, 'grid_level': rec['grid_level'],
           'conv_tol': rec['conv_tol'], 'stored_cycles': rec['minao_cycles']}
    dms = {}
    for j in ('direct', 'tensor', 'direct', 'tensor'):
        mf = dft.RKS(mol, xc=rec['xc']).density_fit()
        mf.grids.level = rec['grid_level']
        mf.conv_tol = rec['conv_tol']
        t, c = time.perf_counter(), time.process_time()
        if j == 'tensor':
            mf.with_df.build()
        mf.kernel()
        run = row.setdefault(j, {'wall': [], 'cpu': [], 'cycles': mf.cycles})
        run['wall'].append(round(time.perf_counter() - t, 2))
        run['cpu'].append(round(time.process_time() - c, 2))
        dms[j] = mf.make_rdm1()
    fine = _level3_grid(mol)
    row['nmae_direct_tensor'] = density_nmae(mol, dms['tensor'], dms['direct'], fine)
    row['nmae_tensor_stored'] = density_nmae(mol, dms['tensor'], dm_ref, fine)
    with open(path, 'a') as f:
        print(json.dumps(row), file=f)
    print(json.dumps(row), flush=True)


def _sample(rec, mol):
    """The generator's input for a stored record."""
    return qm9.Sample(qm9_index=rec['qm9_index'], smiles=rec['smiles'],
                      elements=tuple(rec['elements']),
                      coords_angstrom=mol.atom_coords(unit='Angstrom'),
                      conformer=rec['conformer'], charge=rec['charge'],
                      name=rec['key'] if rec.get('recipe') else '')


def _ao_cache(rec, path):
    """One molecule: the generator with and without the AO cache, twice each, alternating."""
    mol = molecule_of(rec)
    row = {'key': rec['key'], 'nao': mol.nao, 'xc': rec['xc'],
           'density_fit': bool(rec.get('density_fit')), 'grid_level': rec['grid_level']}
    new = {}
    for cached in (False, True, False, True):
        t = time.process_time()
        new[cached] = reference_calculation(
            _sample(rec, mol), rec['xc'], conv_tol=rec['conv_tol'],
            density_fit=bool(rec.get('density_fit')), grid_level=rec['grid_level'],
            cache_ao=cached)
        run = row.setdefault('cached' if cached else 'plain',
                             {'cpu': [], 'cycles': new[cached]['minao_cycles']})
        run['cpu'].append(round(time.process_time() - t, 2))
    row['same_energy'] = new[True]['e_tot'] == new[False]['e_tot']
    row['same_orbitals'] = bool((new[True]['mo_occ_coeff'] == new[False]['mo_occ_coeff']).all())
    with open(path, 'a') as f:
        print(json.dumps(row), file=f)
    print(json.dumps(row), flush=True)


def _load_mlsr(rec):
    """Load the network once, untimed, as a long generator run has it loaded."""
    from pyscf_mlguess import get_init_guess
    mol = molecule_of(rec)
    get_init_guess(dft.RKS(mol, xc=rec['xc']))


def _init_guess(rec, path, order):
    """One molecule: the generator's reference from each guess in ``order``."""
    mol, dm_ref = _stored(rec)
    sample = _sample(rec, mol)
    row = {'key': rec['key'], 'nao': mol.nao, 'conv_tol': rec['conv_tol'], 'order': order}
    s, dms = mol.intor('int1e_ovlp'), {}
    for guess in order:
        t = time.process_time()
        new = reference_calculation(sample, rec['xc'], conv_tol=rec['conv_tol'], density_fit=True,
                                    grid_level=1, init_guess=guess)
        row[guess] = {'cpu': round(time.process_time() - t, 2),
                      'cycles': new[f'{guess}_cycles'],
                      'cycles_default_tol': new[f'{guess}_cycles_default_tol'],
                      'converged': new['converged'], 'e_tot': new['e_tot']}
        dms[guess] = store.density_matrix_from_orbitals(
            new['mo_occ_coeff'] * store.ORBITAL_QUANTUM, s)   # as stored: quantised int32
    fine = _level3_grid(mol)
    row['nmae_mlsr_minao'] = density_nmae(mol, dms['mlsr'], dms['minao'], fine)
    row['dE_mlsr_minao'] = row['mlsr']['e_tot'] - row['minao']['e_tot']
    for guess in order:
        row[guess]['nmae_stored'] = density_nmae(mol, dms[guess], dm_ref, fine)
    with open(path, 'a') as f:
        print(json.dumps(row), file=f)
    print(json.dumps(row), flush=True)


def _grid_levels(rec, levels, path):
    """One molecule: the density-fitted reference on each integration-grid level, compared on
    the finest of them with the stored reference and with the fitted level-3 density."""
    mol, dm_ref = _stored(rec)
    row = {'key': rec['key'], 'nao': mol.nao, 'stored_density_fit': rec.get('density_fit', False)}
    dms = {}
    for level in sorted(set(levels) | {3}):
        mf = dft.RKS(mol, xc=rec['xc']).density_fit()
        mf.grids.level = level
        mf.conv_tol = rec['conv_tol']
        t = time.process_time()
        mf.kernel()
        dms[level] = mf.make_rdm1()
        row[f'grid{level}'] = {'cpu': round(time.process_time() - t, 2), 'cycles': mf.cycles,
                               'converged': bool(mf.converged), 'e_tot': mf.e_tot}
    fine = _level3_grid(mol)
    for level, dm in dms.items():
        row[f'grid{level}']['nmae_stored'] = density_nmae(mol, dm, dm_ref, fine)
        row[f'grid{level}']['nmae_grid3'] = density_nmae(mol, dm, dms[3], fine)
        row[f'grid{level}']['dE_grid3'] = row[f'grid{level}']['e_tot'] - row['grid3']['e_tot']
    with open(path, 'a') as f:
        print(json.dumps(row), file=f)
    print(json.dumps(row), flush=True)


if __name__ == '__main__':
    main()
