"""Training data: split rule, compact storage round trip, resumable generation end to end."""

import os

import numpy
import pytest
from pyscf import dft, gto

from pyscf_mlguess.data import generate, qm9, store
from pyscf_mlguess.metrics import density_nmae

from conftest import WATER, water_sample


def test_split_is_a_fixed_function_of_the_index():
    splits = [qm9.split_of(i) for i in range(1, 20001)]
    assert splits == [qm9.split_of(i) for i in range(1, 20001)]
    for name, frac in qm9.SPLIT_FRACTIONS.items():
        assert splits.count(name) / len(splits) == pytest.approx(frac, abs=0.01)


def test_perturbed_copy_is_recorded_and_reproducible():
    s = qm9.Sample(7, 'O', ('O', 'H', 'H'), numpy.zeros((3, 3)))
    a, b = qm9.perturbed_copy(s), qm9.perturbed_copy(s)
    numpy.testing.assert_array_equal(a.coords_angstrom, b.coords_angstrom)
    assert a.conformer == 1 and a.key == 'qm9-000007-c1' and a.perturb_seed >= 0
    assert 0.01 < numpy.std(a.coords_angstrom) < 0.05


def test_stored_density_reproduces_energy_and_density(water_record, tmp_path):
    writer = store.ShardWriter(str(tmp_path), shard_size=10)
    writer.add(water_record)
    writer.flush()
    (rec,) = list(store.iter_records(str(tmp_path)))
    assert rec['key'] == 'qm9-000003-c0' and rec['converged'] and rec['xc'] == 'pbe'
    mol = gto.M(atom=list(zip(rec['elements'], rec['coords_bohr'])), unit='Bohr',
                basis=rec['basis'], verbose=0)
    mf = dft.RKS(mol, xc=rec['xc'])
    mf.conv_tol = 1e-10
    mf.kernel()
    dm = store.density_matrix_from_orbitals(rec['mo_occ_coeff'], mol.intor('int1e_ovlp'))
    assert abs(mf.energy_tot(dm) - rec['e_tot']) < 1e-6
    assert abs(mf.e_tot - rec['e_tot']) < 1e-8
    ao = dft.numint.eval_ao(mol, mf.grids.coords)
    rho_ref = dft.numint.eval_rho(mol, ao, mf.make_rdm1())
    rho = dft.numint.eval_rho(mol, ao, dm)
    w = mf.grids.weights
    assert numpy.sum(w * abs(rho - rho_ref)) / numpy.sum(w * rho_ref) < 1e-4
    # the minao baseline: cycles at this and at PySCF's default tolerance, trace per cycle
    assert rec['minao_cycles'] == len(rec['scf_trace']) >= rec['minao_cycles_default_tol'] > 0


def test_density_fitted_reference_is_recorded_and_close(water_record):
    fitted = generate.reference_calculation(water_sample(), 'pbe', threads=0, density_fit=True)
    assert fitted['density_fit'] and fitted['auxbasis'] and fitted['converged']
    assert not water_record['density_fit'] and water_record['auxbasis'] is None
    # another method: a small energy shift, a density within 1e-4 NMAE of the exact one
    assert 1e-7 < abs(fitted['e_tot'] - water_record['e_tot']) < 1e-3
    mol = gto.M(atom=WATER, basis='def2-svp', verbose=0)
    s = mol.intor('int1e_ovlp')
    dms = [store.density_matrix_from_orbitals(r['mo_occ_coeff'] * store.ORBITAL_QUANTUM, s)
           for r in (fitted, water_record)]
    assert density_nmae(mol, *dms) < 1e-4


def test_density_fitted_reference_fits_j_from_the_stored_tensor(monkeypatch):
    from pyscf.df import df_jk
    direct = dft.RKS(gto.M(atom=WATER, basis='def2-svp', verbose=0), xc='pbe').density_fit()
    direct.conv_tol = 1e-10
    direct.kernel()                                  # PySCF's integral-direct DF-J
    calls, original = [], df_jk.get_j
    monkeypatch.setattr(df_jk, 'get_j', lambda *a, **k: calls.append(a) or original(*a, **k))
    fitted = generate.reference_calculation(water_sample(), 'pbe', threads=0, density_fit=True)
    assert not calls                                 # J came from the 3-index tensor
    assert abs(fitted['e_tot'] - direct.e_tot) < 1e-9


def test_writer_resumes_and_never_keeps_half_files(water_record, tmp_path):
    folder = str(tmp_path)
    writer = store.ShardWriter(folder, shard_size=2)
    writer.add(water_record)
    assert writer.done_keys() == {water_record['key']} and not writer.shards()
    open(os.path.join(folder, 'junk.tmp'), 'w').close()        # a write killed half-way
    writer = store.ShardWriter(folder, shard_size=2)            # a new run picks up
    assert not os.path.exists(os.path.join(folder, 'junk.tmp'))
    assert writer.done_keys() == {water_record['key']}
    other = dict(water_record, key='qm9-000003-c1', conformer=1)
    writer.add(other)                                           # second sample fills a shard
    assert len(writer.shards()) == 1 and not writer.pending_files()
    assert sorted(store.keys_in_file(writer.shards()[0])) == ['qm9-000003-c0', 'qm9-000003-c1']
    s = store.stats(os.path.dirname(os.path.dirname(folder)))
    assert sum(v['samples'] for lv in s.values() for v in lv.values()) >= 2


def test_generate_two_qm9_molecules_end_to_end(tmp_path):
    from dask.distributed import LocalCluster
    root = str(tmp_path)
    # first molecule with the default local worker processes
    first = generate.generate(root, 'pbe', 'valid', 1, workers=1, perturb_fraction=0.0,
                              progress=False)
    assert first['samples'] == 1
    # the second through an existing Dask cluster, given by its scheduler address; the first
    # is found on disk and not recomputed
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=':0') as cluster:
        result = generate.generate(root, 'pbe', 'valid', 2, scheduler=cluster.scheduler_address,
                                   perturb_fraction=0.0, progress=False)
    assert result['samples'] == 2 and result['failed'] == 0 and result['pending'] == 0
    assert result['shards'] == 2
    assert set(result['elements']) <= {'H', 'C', 'N', 'O', 'F'}
    folder = os.path.join(root, generate.level_name('pbe'), 'valid')
    records = list(store.iter_records(folder))
    expected = [s.key for s in qm9.select('valid', 2, perturb_fraction=0.0)]
    assert sorted(r['key'] for r in records) == sorted(expected)
    for rec in records:
        assert qm9.split_of(rec['qm9_index']) == 'valid'
        nao, nocc = rec['mo_occ_coeff'].shape
        assert nocc * 2 == sum(gto.charge(e) for e in rec['elements'])
    # a third run finds everything done and computes nothing
    again = generate.generate(root, 'pbe', 'valid', 2, workers=1, perturb_fraction=0.0,
                              progress=False)
    assert again == result


def test_local_cluster_workers_do_not_profile():
    """The local cluster's worker runs without Dask's 10 ms profiler, the setting scoped to the
    cluster (the caller's Dask config is left as it was)."""
    import dask
    import dask.distributed                           # noqa: F401  (its config defaults)
    before = dask.config.get('distributed.worker.profile.enabled')
    client, cluster = generate._client(None, 1)
    try:
        seen = client.run(lambda: dask.config.get('distributed.worker.profile.enabled'))
        assert list(seen.values()) == [False]
        assert client.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler._tick_interval) == 1.0
    finally:
        client.close()
        cluster.close()
    assert dask.config.get('distributed.worker.profile.enabled') == before


def test_stats_command_prints_json(tmp_path, capsys, water_record):
    import json
    from pyscf_mlguess.cli import main
    folder = tmp_path / 'pbe_def2svp' / 'train'
    writer = store.ShardWriter(str(folder))
    writer.add(water_record)
    writer.flush()
    assert main(['data', 'stats', '--json', '--root', str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    entry = out['pbe_def2svp']['train']
    assert entry['samples'] == 1 and entry['elements'] == ['H', 'O'] and entry['charges'] == [0]
    assert entry['bytes'] == os.path.getsize(writer.shards()[0])


def test_stats_command_names_a_missing_or_empty_folder(tmp_path, capsys):
    from pyscf_mlguess.cli import main
    with pytest.raises(SystemExit, match=r"no dataset folder .*nowhere.*--root"):
        main(['data', 'stats', '--root', str(tmp_path / 'nowhere')])
    assert main(['data', 'stats', '--root', str(tmp_path)]) == 0
    assert 'no datasets' in capsys.readouterr().out


def test_version_and_the_training_rate_default(capsys):
    from pyscf_mlguess import __version__
    from pyscf_mlguess.cli import build_parser, main
    with pytest.raises(SystemExit) as done:
        main(['--version'])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f'pyscf-mlguess {__version__}'
    args = build_parser().parse_args(['train', '--train', 'x', '--out', 'y'])
    assert args.lr == 1e-3


@pytest.fixture(scope='module')
def water_folder(water_record, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('data') / 'pbe_def2svp' / 'train')
    writer = store.ShardWriter(folder)
    writer.add(water_record)
    writer.flush()
    return folder


def test_dataset_item_is_sad_and_exact_correction(water_folder, tmp_path):
    from pyscf_mlguess.data.dataset import DensityDataset
    ds = DensityDataset(water_folder, spacing=0.15, margin=4.0, cache_dir=str(tmp_path))
    item = ds[0]
    sad, delta = item['sad'], item['delta_rho']
    assert sad.dtype == delta.dtype == torch_float32()
    assert tuple(delta.shape[1:]) == tuple(2 * n for n in sad.shape[1:])
    # the SAD carries water's 10 electrons (point samples at 0.3 Bohr miss part of the O core
    # cusp); the correction moves charge and adds none
    assert 9.0 < float(sad.sum()) * 0.3**3 < 10.2
    assert abs(float(delta.sum()) * item['voxel_volume']) < 0.02
    assert float(delta.abs().sum()) * item['voxel_volume'] > 0.1
    again = ds[0]                                              # second read: from the cache
    assert len(os.listdir(tmp_path)) == 1
    assert (again['delta_rho'] == delta).all()


def test_augmentation_is_the_molecule_rotated(water_folder):
    import torch
    from pyscf_mlguess.data.dataset import DensityDataset, apply_cube_symmetry, molecule_of
    from pyscf_mlguess.grid import make_grid, principal_axes, sad_density_on_grid
    ds = DensityDataset(water_folder, spacing=0.2, margin=3.0, upsample=1)
    sad = ds[0]['sad'][0].numpy()
    mol = molecule_of(ds.records[0])
    perm, flips = [2, 0, 1], [1]
    # the box is aligned with the principal axes: the symmetry acts on box-frame coordinates
    xyz = (mol.atom_coords() @ principal_axes(mol).T)[:, perm]
    xyz[:, 1] *= -1
    rotated = mol.set_geom_(xyz, unit='Bohr', inplace=False)
    expected = sad_density_on_grid(rotated, make_grid(rotated, 0.2, 3.0,
                                                      orientation=numpy.eye(3)))
    numpy.testing.assert_allclose(apply_cube_symmetry(sad, perm, flips), expected, atol=2e-5)
    g = torch.Generator().manual_seed(0)
    aug = DensityDataset(water_folder, spacing=0.2, margin=3.0, upsample=1, augment=True,
                         generator=g)
    shapes = {tuple(aug[0]['sad'].shape) for _ in range(12)}
    assert len(shapes) > 1                                    # axes really get permuted


def torch_float32():
    import torch
    return torch.float32


def test_a_failing_molecule_is_recorded_and_the_run_goes_on(tmp_path):
    from pyscf import gto
    mol = gto.M(atom=WATER, verbose=0)
    good = qm9.Sample(-1, '', tuple(mol.elements), mol.atom_coords(unit='Angstrom'),
                      name='water')
    bad = qm9.Sample(-1, '', ('N', 'H', 'H'), mol.atom_coords(unit='Angstrom'), spin=1,
                     name='nh2-radical')
    folder = str(tmp_path / 'pbe_def2svp' / 'train')
    generate.generate_samples(folder, [bad, good], 'pbe', workers=1, progress=False)
    records = {r['key']: r for r in store.iter_records(folder, include_failed=True)}
    assert records['water']['converged']
    assert not records['nh2-radical']['converged']
    assert 'open-shell' in records['nh2-radical']['error']
    s = store.stats(str(tmp_path))['pbe_def2svp']['train']
    assert s['samples'] == 1 and s['failed'] == 1


def test_grid_level_is_applied_and_recorded(water_record):
    coarse = generate.reference_calculation(water_sample(), 'pbe', threads=0, grid_level=1)
    assert water_record['grid_level'] == 3 and coarse['grid_level'] == 1 and coarse['converged']
    # a coarser quadrature: a different energy (by more than the convergence), a close density
    assert 1e-8 < abs(coarse['e_tot'] - water_record['e_tot']) < 1e-3
    mol = gto.M(atom=WATER, basis='def2-svp', verbose=0)
    s = mol.intor('int1e_ovlp')
    dms = [store.density_matrix_from_orbitals(r['mo_occ_coeff'] * store.ORBITAL_QUANTUM, s)
           for r in (coarse, water_record)]
    assert density_nmae(mol, *dms) < 1e-3


def test_reference_from_the_mlsr_guess_is_the_same_density(water_record):
    started = generate.reference_calculation(water_sample(), 'pbe', threads=0, init_guess='mlsr')
    assert started['converged'] and started['init_guess'] == 'mlsr'
    assert water_record['init_guess'] == 'minao' and 'mlsr_cycles' not in water_record
    assert 'minao_cycles' not in started              # not a minao baseline
    assert 0 < started['mlsr_cycles'] < water_record['minao_cycles']
    assert started['weights'].startswith('pbe-')     # the shipped PBE weights, with their hash
    mol = gto.M(atom=WATER, basis='def2-svp', verbose=0)
    s = mol.intor('int1e_ovlp')
    dms = [store.density_matrix_from_orbitals(r['mo_occ_coeff'] * store.ORBITAL_QUANTUM, s)
           for r in (started, water_record)]
    assert density_nmae(mol, *dms) < 2e-5
    assert abs(started['e_tot'] - water_record['e_tot']) < 1e-8


def test_reference_guess_is_checked():
    with pytest.raises(ValueError, match="'minao'"):
        generate.reference_calculation(water_sample(), 'pbe', init_guess='huckel')


@pytest.mark.parametrize('max_mb', [generate.AO_CACHE_MB, 0])
def test_kept_ao_values_give_pyscf_s_numbers_exactly(max_mb):
    mol = gto.M(atom=WATER, basis='def2-svp', verbose=0)
    results = []
    for ni in (None, generate.CachedAONumInt(max_mb=max_mb)):
        mf = dft.RKS(mol, xc='pbe')
        mf.grids.level = 1
        if ni is not None:
            evaluated = []
            ni.eval_ao = lambda *a, _eval=ni.eval_ao, **k: evaluated.append(1) or _eval(*a, **k)
            mf._numint = ni
        mf.kernel()
        results.append((mf.e_tot, mf.make_rdm1(), mf.cycles))
    (e0, dm0, cycles), (e1, dm1, _) = results
    assert e1 == e0 and numpy.array_equal(dm1, dm0)
    if max_mb:                 # one pass over the grid, then the kept blocks every cycle
        assert 0 < len(evaluated) < cycles / 2
    else:                      # too large to keep: PySCF's loop, every cycle
        assert len(evaluated) >= cycles
