"""The benchmark (pyscf_mlguess.benchmark and its command line, benchmarks/run_scf.py): two
molecules and two guesses end to end, resume, bad input, the headline, Dask."""

import json
import math
import os
import pathlib

import numpy
import pytest

from pyscf_mlguess.benchmark import runner, summarize
from pyscf_mlguess.benchmark.molecules import load_molecules

from conftest import WATER, load_benchmark

ROOT = pathlib.Path(__file__).resolve().parents[1]
NH2 = 'N 0 0 0; H 0 0.94 0.33; H 0 -0.94 0.33'


@pytest.fixture(scope='module')
def run_scf():
    return load_benchmark('run_scf')


def _xyz(folder, name, atoms, comment=''):
    lines = [a.split() for a in atoms.split(';')]
    text = f'{len(lines)}\n{comment}\n' + '\n'.join(' '.join(a) for a in lines) + '\n'
    (folder / f'{name}.xyz').write_text(text)


@pytest.fixture
def molecules(tmp_path):
    folder = tmp_path / 'molecules'
    folder.mkdir()
    _xyz(folder, 'water', WATER)
    # NH2, not OH: OH's half-filled pi pair is degenerate, and which of the two the SCF fills
    # moves the DFT energy by the grid's anisotropy (measured up to 1e-6 Ha between guesses)
    _xyz(folder, 'nh2_radical', NH2, 'charge=0 spin=1')
    return folder


def test_two_molecules_two_guesses(run_scf, molecules, tmp_path, capsys, monkeypatch):
    out = tmp_path / 'out'
    argv = ['--molecules', str(molecules), '--guesses', 'minao,atom', '--out', str(out),
            '--workers', '0', '--basis', 'sto-3g']
    records = run_scf.main(argv)
    assert len(records) == 4
    for rec in records:
        assert rec['converged'] and rec['delta_e'] < 1e-6 and rec['cycles'] > 0
        assert rec['guess_nmae'] > 0 and rec['total_s'] >= rec['scf_s']
    minao = {r['molecule']: r for r in records if r['guess'] == 'minao'}
    assert minao['water']['delta_e'] == 0 and minao['nh2_radical']['nao'] == 7
    printed = capsys.readouterr().out
    assert printed.strip() == (out / 'results.md').read_text().strip()
    assert '| minao | 2 |' in printed and '| atom | 2 |' in printed
    assert (out / 'pbe_sto-3g.png').exists()
    assert json.loads((out / 'results.json').read_text())['pending'] == 0
    # a second run finds everything done and computes nothing
    monkeypatch.setattr(runner, 'run_molecule', lambda *a, **k: pytest.fail('recomputed'))
    again = run_scf.main(argv + ['--no-plots'])
    assert sorted(map(runner._key, again)) == sorted(map(runner._key, records))


def test_an_interrupted_run_leaves_its_pending_count(molecules, tmp_path, monkeypatch):
    def first_only(name, entry, xc, basis, guesses, **kwargs):
        if name != 'water':
            raise KeyboardInterrupt                    # the session ends mid-run
        return [{'molecule': name, 'xc': xc, 'basis': basis, 'guess': g} for g in guesses]
    monkeypatch.setattr(runner, 'run_molecule', first_only)
    water_first = sorted(load_molecules(str(molecules)), key=lambda e: e[0] != 'water')
    with pytest.raises(KeyboardInterrupt):
        runner.run(water_first, ['pbe'], ['sto-3g'], ['minao'], tmp_path, workers=0,
                   progress=False)
    assert json.loads((tmp_path / 'results.json').read_text())['pending'] == 1


def test_new_guesses_reuse_the_stored_minao_reference(run_scf, molecules, tmp_path,
                                                      monkeypatch):
    from pyscf.scf import hf
    argv = ['--molecules', str(molecules), '--out', str(tmp_path), '--workers', '0',
            '--basis', 'sto-3g', '--no-plots']
    first = run_scf.main(argv + ['--guesses', 'minao'])
    e_minao = {r['molecule']: r['e_tot'] for r in first}

    minao = hf.SCF.init_guess_by_minao

    def no_molecular_minao(mf, mol=None, *args, **kwargs):
        # the atom guess runs minao inside its atomic SCFs: only molecules are refused
        if (mol or mf.mol).natm > 1:
            pytest.fail('the minao reference was run again')
        return minao(mf, mol, *args, **kwargs)
    monkeypatch.setattr(hf.SCF, 'init_guess_by_minao', no_molecular_minao)
    records = run_scf.main(argv + ['--guesses', 'minao,atom'])
    atom = {r['molecule']: r for r in records if r['guess'] == 'atom'}
    assert sorted(atom) == sorted(e_minao)
    for name, rec in atom.items():
        assert rec['delta_e'] == pytest.approx(abs(rec['e_tot'] - e_minao[name]))
        assert rec['delta_e'] < 1e-6 and rec['guess_nmae'] > 0


def test_density_fitting_and_one_set_of_settings_per_folder(run_scf, tmp_path):
    folder = tmp_path / 'molecules'
    folder.mkdir()
    _xyz(folder, 'water', WATER)
    argv = ['--molecules', str(folder), '--guesses', 'minao', '--workers', '0',
            '--basis', 'sto-3g', '--no-plots']
    exact = run_scf.main(argv + ['--out', str(tmp_path / 'exact')])[0]
    fitted = run_scf.main(argv + ['--out', str(tmp_path / 'df'), '--density-fit'])[0]
    assert fitted['density_fit'] and not exact['density_fit'] and fitted['converged']
    # the fitted run really is another method: small but nonzero energy difference
    assert 1e-7 < abs(fitted['e_tot'] - exact['e_tot']) < 1e-3
    assert '(density fitting)' in (tmp_path / 'df' / 'results.md').read_text()
    assert '(density fitting)' not in (tmp_path / 'exact' / 'results.md').read_text()
    shifted = run_scf.main(argv + ['--out', str(tmp_path / 'shift'), '--level-shift', '0.2'])[0]
    assert shifted['level_shift'] == 0.2 and 'level_shift' not in exact
    assert shifted['e_tot'] == pytest.approx(exact['e_tot'], abs=1e-7)      # same minimum
    assert shifted['cycles'] != exact['cycles']                         # another path to it
    assert '(level shift 0.2 Ha)' in (tmp_path / 'shift' / 'results.md').read_text()
    # the core-Hamiltonian guess, whose own Fock matrix in DIIS saves a cycle here
    both = ['--guesses', 'minao,1e']
    early = {r['guess']: r for r in run_scf.main(argv + both + [
        '--out', str(tmp_path / 'diis'), '--diis-start-cycle', '0'])}
    plain = {r['guess']: r for r in run_scf.main(argv + both + ['--out', str(tmp_path / 'exact')])}
    assert early['1e']['diis_start_cycle'] == 0 and 'diis_start_cycle' not in plain['1e']
    assert early['1e']['e_tot'] == pytest.approx(exact['e_tot'], abs=1e-7)
    assert early['1e']['cycles'] < plain['1e']['cycles']
    report = (tmp_path / 'diis' / 'results.md').read_text()
    assert '(DIIS from cycle 0)' in report and 'DIIS (mf.diis_start_cycle):' not in report
    for other in (['--out', str(tmp_path / 'df')],
                  ['--out', str(tmp_path / 'exact'), '--conv-tol', '1e-7'],
                  ['--out', str(tmp_path / 'exact'), '--level-shift', '0.1'],
                  ['--out', str(tmp_path / 'exact'), '--diis-start-cycle', '0'],
                  ['--out', str(tmp_path / 'exact'), '--exchange', 'lda_x']):
        with pytest.raises(SystemExit, match='run_scf.py: .* holds runs made with other '
                           'settings'):
            run_scf.main(argv + other)


def test_bad_input_is_reported_per_molecule(run_scf, molecules, tmp_path):
    (molecules / 'broken.xyz').write_text('not a number\n\n')
    _xyz(molecules, 'unobtainium', 'Xq 0 0 0')
    out = tmp_path / 'out'
    records = run_scf.main(['--molecules', str(molecules), '--guesses', 'minao,nonsense',
                            '--out', str(out), '--workers', '0', '--basis', 'sto-3g',
                            '--no-plots'])
    by = {(r['molecule'], r['guess']): r for r in records}
    assert 'unreadable' in by['broken', 'minao']['error']
    assert 'molecule' in by['unobtainium', 'minao']['error']
    assert "no 'nonsense' initial guess" in by['water', 'nonsense']['error']
    assert by['water', 'minao']['converged']
    text = (out / 'results.md').read_text()
    assert '- broken / minao: unreadable' in text


def test_mlsr_records_its_stages_and_mlsr_table(run_scf, molecules, tmp_path, monkeypatch):
    import torch
    from pyscf_mlguess import config, model
    torch.manual_seed(0)
    net = model.DensitySR(channels=4, blocks=1, up_channels=2)
    meta = {'xc': 'pbe', 'input_spacing': 0.4, 'output_spacing': 0.2, 'margin': 3.0}
    model.save_weights(tmp_path / 'pbe.pt', net, meta)
    monkeypatch.setenv(config.WEIGHTS_ENV, str(tmp_path))
    recs = runner.run_molecule('water', {'atom': WATER, 'charge': 0, 'spin': 0}, 'pbe',
                                'def2-svp', ['minao', 'mlsr'])
    ml = recs[1]
    assert ml['converged'] and ml['delta_e'] < 1e-6
    assert ml['grid_s'] > 0 and ml['model_s'] > 0 and ml['projection_s'] > 0
    assert 'exchange' not in ml                    # PBE has no exact exchange to treat
    assert ml['weights'] == f"pbe.pt sha256:{model.sha256_of(tmp_path / 'pbe.pt')[:12]}"
    model.save_weights(tmp_path / 'b3lyp.pt', net, dict(meta, xc='b3lyp'))
    hf = runner.run_molecule('water', {'atom': WATER, 'charge': 0, 'spin': 0}, 'hf', 'sto-3g',
                             ['minao', 'mlsr'], exchange='sad_k')
    assert hf[1]['exchange'] == 'sad_k' and hf[1]['converged']
    text = summarize(recs, ['minao', 'mlsr'])
    assert 'mlsr against each guess' in text and '| minao | 1 |' in text
    assert '| not side by side |' not in text
    assert f"mlsr weights: {ml['weights']}" in text
    # the guess starts DIIS from its own Fock matrix; minao keeps PySCF's cycle 1, and both say
    assert (recs[0]['diis_start_cycle_used'], ml['diis_start_cycle_used']) == (1, 0)
    assert 'DIIS (mf.diis_start_cycle): minao from cycle 1; mlsr from cycle 0.' in text
    # the headline: wall time and effective cycles against minao, side by side
    minao = recs[0]
    cycle = minao['scf_s'] / minao['cycles']
    effective = ml['cycles'] + ml['guess_s'] / cycle
    assert text.index('mlsr against minao, side by side (1 molecules') < text.index('| guess |')
    ratio = ml['total_s'] / minao['total_s']
    assert f'| total wall time (guess + SCF) | {ratio:.2f} | ' in text
    e_ratio = effective / (minao['cycles'] + minao['guess_s'] / cycle)
    assert f'| effective cycles (cycles + guess / SCF cycle) | {e_ratio:.2f} | ' in text
    assert f'costs {ml["guess_s"] / cycle:.2f} SCF cycles (median;' in text
    assert f'{effective:.2f} / ' in text
    assert (f'By stage (median SCF cycles): SAD box {ml["grid_s"] / cycle:.2f}, network '
            f'{ml["model_s"] / cycle:.2f}, projection {ml["projection_s"] / cycle:.2f}.') in text
    recs[1]['run'] = 'another invocation'          # wall times from two runs are not compared
    text = summarize(recs, ['minao', 'mlsr'])
    assert '| not side by side |' in text and 'SCF cycles (median;' not in text
    assert 'no molecule has both runs in one invocation' in text


@pytest.mark.parametrize('density_fit', [False, True])
def test_each_run_starts_without_the_earlier_runs_integrals(monkeypatch, density_fit):
    """PySCF picks in-core or direct J/K from the memory in use: an earlier run's SCF object
    (its ERIs or DF tensors) alive during the next run would time that run against a handicap."""
    import weakref
    made = []
    make = runner._make_scf

    def tracked(mol, xc):
        alive = [type(ref()).__name__ for ref in made if ref() is not None]
        assert not alive, f'an earlier run is still held: {alive}'
        mf = make(mol, xc)
        if density_fit:
            mf = mf.density_fit()
        made.append(weakref.ref(mf))
        return mf

    monkeypatch.setattr(runner, '_make_scf', tracked)
    recs = runner.run_molecule('water', {'atom': WATER, 'charge': 0, 'spin': 0}, 'pbe',
                               'def2-svp', ['minao', 'atom', 'huckel'])
    assert len(made) == 3 and all(r['converged'] and r['delta_e'] < 1e-6 for r in recs)
    assert recs[0]['guess_nmae'] > 0.01 and all(0 < r['guess_nmae'] < 1 for r in recs)


def test_a_folder_takes_no_mlsr_runs_made_with_other_weights(tmp_path, monkeypatch):
    """The shipped default moves with each release: resuming a folder must not mix versions."""
    import torch
    from pyscf_mlguess import config, model
    meta = {'xc': 'pbe', 'input_spacing': 0.4, 'output_spacing': 0.2, 'margin': 3.0}
    weights = tmp_path / 'weights'
    weights.mkdir()
    arch = dict(channels=4, blocks=1, up_channels=2)
    torch.manual_seed(0)
    model.save_weights(weights / 'pbe.pt', model.DensitySR(**arch), meta)
    monkeypatch.setenv(config.WEIGHTS_ENV, str(weights))
    water = ('water', {'atom': WATER, 'charge': 0, 'spin': 0})
    h2 = ('h2', {'atom': 'H 0 0 0; H 0 0 0.74', 'charge': 0, 'spin': 0})
    out = tmp_path / 'out'
    args = (['pbe'], ['sto-3g'], ['minao', 'mlsr'], out)
    first = runner.run([water], *args, workers=0, progress=False)
    assert {r.get('weights') for r in first if r['guess'] == 'mlsr'} == {
        model.weights_id(weights / 'pbe.pt')}
    model.save_weights(weights / 'pbe.pt', model.DensitySR(**arch), meta)
    with pytest.raises(runner.SettingsMismatch, match='pbe mlsr runs made with pbe.pt sha256:'):
        runner.run([water, h2], *args, workers=0, progress=False)
    # minao alone may still be added; a finished folder still reloads
    runner.run([water, h2], ['pbe'], ['sto-3g'], ['minao'], out, workers=0, progress=False)
    runner.run([water], *args, workers=0, progress=False)
    # runs from before records named their weights are not silently joined either
    stored = json.loads((out / 'results.json').read_text())
    for rec in stored['records']:
        rec.pop('weights', None)
    (out / 'results.json').write_text(json.dumps(stored))
    with pytest.raises(runner.SettingsMismatch, match='unrecorded weights'):
        runner.run([water, h2], *args, workers=0, progress=False)


def test_a_hand_over_to_minao_is_recorded(tmp_path, monkeypatch):
    import torch
    from pyscf_mlguess import config, model
    torch.manual_seed(0)
    net = model.DensitySR(channels=4, blocks=1, up_channels=2)
    meta = {'xc': 'pbe', 'input_spacing': 0.4, 'output_spacing': 0.2, 'margin': 3.0,
            'elements': ['H', 'O'], 'charges': [0], 'spins': [0]}
    model.save_weights(tmp_path / 'pbe.pt', net, meta)
    monkeypatch.setenv(config.WEIGHTS_ENV, str(tmp_path))
    radical = {'atom': NH2, 'charge': 0, 'spin': 1}
    minao, ml = runner.run_molecule('nh2', radical, 'pbe', 'def2-svp', ['minao', 'mlsr'])
    assert ml['handed_over_to'] == 'minao' and ml['minao_s'] > 0 and 'model_s' not in ml
    assert ml['cycles'] == minao['cycles'] and ml['delta_e'] < 1e-6
    ml = runner.run_molecule('nh2', radical, 'pbe', 'def2-svp', ['mlsr'], reference=minao,
                             outside_domain='model')[0]
    assert 'handed_over_to' not in ml and ml['model_s'] > 0 and ml['delta_e'] < 1e-6


def test_a_missing_bench_extra_names_the_install_command(run_scf, molecules, tmp_path,
                                                         monkeypatch):
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'matplotlib' else find_spec(name, *a))
    with pytest.raises(SystemExit, match=r"matplotlib.*pip install 'pyscf-mlguess\[bench\]'"):
        run_scf.main(['--molecules', str(molecules), '--out', str(tmp_path), '--report-only'])


def test_dask_local_cluster(run_scf, molecules, tmp_path):
    records = runner.run(load_molecules(str(molecules)), ['pbe'], ['sto-3g'],
                          ['minao', 'atom'], tmp_path, workers=2, progress=False)
    assert len(records) == 4 and all(r['parallel'] for r in records)
    assert len({r['run'] for r in records}) == 1
    saved = json.loads((tmp_path / 'results.json').read_text())
    assert saved['parallel'] and len(saved['records']) == 4


def test_the_benchmark_does_not_import_training_code():
    import subprocess
    import sys
    code = ('import sys, pyscf_mlguess.benchmark; '
            'print(sorted(m for m in sys.modules if m.startswith("pyscf_mlguess.train")))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '[]'


@pytest.mark.parametrize('name', ['drugs', 'ions', 'main_group', 'open_shell'])
def test_built_in_sets_are_molecules_with_their_charge_and_spin(run_scf, name):
    from pyscf import gto
    entries = load_molecules(name, folders=run_scf.FOLDERS)
    assert len(entries) >= 20
    for mol_name, entry in entries:
        assert isinstance(entry, dict), f'{name}/{mol_name}: {entry}'
        mol = gto.M(atom=entry['atom'], basis='sto-3g', charge=entry['charge'],
                    spin=entry['spin'], verbose=0)   # parity of charge and spin checked here
        elements = {mol.atom_pure_symbol(i) for i in range(mol.natm)}
        if name == 'ions':
            assert entry['charge'] != 0 and entry['spin'] == 0
        elif name == 'open_shell':
            assert entry['charge'] == 0 and entry['spin'] > 0
        elif name == 'main_group':
            assert entry['spin'] == 0 and elements - {'H', 'C', 'N', 'O', 'F'}


def test_an_element_filter_keeps_the_molecules_made_of_those_elements(run_scf, tmp_path):
    full = dict(load_molecules('drugs', folders=run_scf.FOLDERS))
    kept = load_molecules('drugs', folders=run_scf.FOLDERS, elements=['H', 'C', 'N', 'O'])
    dropped = set(full) - {name for name, _ in kept}
    assert {'chlorpromazine', 'omeprazole', 'diclofenac'} <= dropped
    assert {'ibuprofen', 'morphine'} <= {name for name, _ in kept}
    from pyscf_mlguess.benchmark.molecules import elements_of
    assert all(elements_of(entry['atom']) <= {'H', 'C', 'N', 'O'} for _, entry in kept)
    assert all(elements_of(full[name]['atom']) - {'H', 'C', 'N', 'O'} for name in dropped)
    # of a folder, N counts the molecules kept
    assert [n for n, _ in load_molecules('drugs', 3, run_scf.FOLDERS, ['H', 'C', 'N', 'O'])] \
        == [n for n, _ in kept[:3]]
    (tmp_path / 'bad.xyz').write_text('two\n\nH 0 0 0\n')
    assert isinstance(dict(load_molecules(str(tmp_path), elements=['C']))['bad'], str)
    with pytest.raises(SystemExit, match='Xx'):
        run_scf.main(['--molecules', 'drugs', '--elements', 'H,Xx', '--out', str(tmp_path),
                      '--report-only', '--no-plots'])


def test_a_containing_filter_keeps_the_molecules_with_any_of_those_elements(run_scf, tmp_path):
    from pyscf_mlguess.benchmark.molecules import elements_of
    full = dict(load_molecules('drugs', folders=run_scf.FOLDERS))
    kept = load_molecules('drugs', folders=run_scf.FOLDERS, containing=['S', 'Cl'])
    names = [name for name, _ in kept]
    assert {'captopril', 'chloroquine', 'diclofenac', 'omeprazole'} <= set(names)
    assert not {'ibuprofen', 'morphine'} & set(names)
    assert names == sorted(names)
    assert all(elements_of(full[name]['atom']) & {'S', 'Cl'} for name in names)
    assert all(not elements_of(entry['atom']) & {'S', 'Cl'}
               for name, entry in full.items() if name not in names)
    # both filters: made of CHNOS and containing S (so no Cl)
    both = load_molecules('drugs', folders=run_scf.FOLDERS, elements=list('CHNOS'),
                          containing=['S'])
    chnos = {n for n in names if elements_of(full[n]['atom']) <= set('CHNOS')}
    assert {n for n, _ in both} == chnos
    assert 'captopril' in {n for n, _ in both} and 'clopidogrel' not in {n for n, _ in both}
    assert [n for n, _ in load_molecules('drugs', 2, run_scf.FOLDERS, containing=['Cl'])] \
        == [n for n in names if 'Cl' in elements_of(full[n]['atom'])][:2]
    with pytest.raises(SystemExit, match='--containing: not element symbols: Qq'):
        run_scf.main(['--molecules', 'drugs', '--containing', 'S,Qq', '--out', str(tmp_path),
                      '--report-only', '--no-plots'])


def test_a_charge_filter_keeps_the_molecules_of_those_charges(run_scf, tmp_path):
    full = dict(load_molecules('ions', folders=run_scf.FOLDERS))
    anions = load_molecules('ions', folders=run_scf.FOLDERS, charges=[-1])
    assert anions and all(entry['charge'] == -1 for _, entry in anions)
    assert {n for n, _ in anions} == {n for n, e in full.items() if e['charge'] == -1}
    both = load_molecules('ions', folders=run_scf.FOLDERS, charges=[-1, 1])
    assert len(both) > len(anions) and all(abs(e['charge']) == 1 for _, e in both)
    assert load_molecules('ions', 1, run_scf.FOLDERS, charges=[1]) == \
        [(n, e) for n, e in both if e['charge'] == 1][:1]
    with pytest.raises(SystemExit, match='--charges: not an integer charge: minus'):
        run_scf.main(['--molecules', 'ions', '--charges', '1,minus', '--out', str(tmp_path),
                      '--report-only', '--no-plots'])


def test_the_error_relation_recovers_a_log_law():
    from pyscf_mlguess.benchmark import report
    errors = [10 ** (-3 + 1.5 * i / 19) for i in range(20)]         # 0.1 % to 3 %
    rows = {f'm{i}': {'guess_nmae': e, 'cycles': (1.6 + 0.35 * math.log10(e), 1.0),
                      'total_s': (20 * (1.7 + 0.3 * math.log10(e)), 20.0)}
            for i, e in enumerate(errors)}
    fit = report.error_relation(rows)
    assert fit['cycles'][:2] == pytest.approx((1.6, 0.35)) and fit['cycles'][2] == 1.0
    assert fit['total_s'][:2] == pytest.approx((1.7, 0.3))
    line = report._relation_line(rows)[0]
    at = 100 * 10 ** ((0.8 - 1.6) / 0.35)                        # where cycles reach 0.80
    assert (f'SCF cycles 1.60 +0.35 log10(NMAE) (Spearman 1.00; the fit reaches 0.80 at '
            f'{at:.2g} %)') in line
    few = dict(list(rows.items())[:report.MIN_FIT - 1])
    assert report.error_relation(few) is None and report._relation_line(few) == []


def test_the_setup_share_splits_scf_time_into_setup_and_cycles():
    from pyscf_mlguess.benchmark import report
    # SCF time = set-up + cycles * per-cycle, set-up 40 % of minao's 10 cycles of 1.5 s
    # and a guess of 0.5 s (2 % of minao's 25 s)
    rows = {f'm{i}': {'cycles': (10 - saved, 10),
                      'scf_s': (10 + (10 - saved) * 1.5, 10 + 10 * 1.5),
                      'guess_s': (0.5, 0.0), 'total_s': (10.5 + (10 - saved) * 1.5, 25.0)}
            for i, saved in enumerate([2, 3, 4] * 4 + [1, 0])}
    med, q1, q3, n = report.setup_share(rows)
    assert med == pytest.approx(0.4) and q1 == pytest.approx(0.4) and n == 12   # 1 and 0 left out
    line = report._setup_line(rows)[0]
    assert '0.40 (median; quartiles 0.40–0.40)' in line and 'g = 0.020' in line
    # the median molecule saves 3 cycles: R 0.70, W = 0.4 + 0.6 * 0.7 + 0.02 = 0.84 = measured
    assert '0.84 at today\'s 0.70 (measured 0.84)' in line
    assert 'W = 0.90 needs R = 0.80' in line
    few = dict(list(rows.items())[:report.MIN_FIT - 1])
    assert report.setup_share(few) is None and report._setup_line(few) == []


def test_by_class_splits_derived_molecules_by_their_rule(tmp_path):
    by_class = load_benchmark('by_class')
    run = {'run': 'r', 'converged': True, 'delta_e': 0.0, 'guess_s': 0.0, 'xc': 'pbe',
           'basis': 'def2-svp'}
    records = []
    for name, mlsr in (('qm9-000001-o2s', 8), ('qm9-000002-o2s', 9), ('qm9-000003-cation', 12),
                       ('qm9-000004-h2br', 11)):
        for guess, cycles in (('minao', 10), ('mlsr', mlsr)):
            records.append(dict(run, molecule=name, guess=guess, cycles=cycles,
                                scf_s=float(cycles), total_s=float(cycles),
                                guess_s=0.5 if guess == 'mlsr' else 0.0))
    (tmp_path / 'derived').mkdir()
    (tmp_path / 'derived' / 'results.json').write_text(json.dumps({'records': records}))
    sulfur, = by_class.rows_of('S', 'derived', ('o2s',), results=tmp_path)
    # effective cycles 8.5 and 9.5 of 10; the guess costs half of minao's 1 s SCF cycle
    assert '| S | PBE / def2-svp | 0.1 | 1 / 1 | 2 | 0.85 | 17 / 20 | 0.90 | 0.85 | 0.50 |' \
        in sulfur
    compounds, = by_class.rows_of('all', 'derived', by_class.DERIVED_COMPOUNDS, results=tmp_path)
    assert '| 3 | 0.90 | 28 / 30 |' in compounds
    ions, = by_class.rows_of('ions', 'derived', by_class.DERIVED_IONS, results=tmp_path)
    assert '| 1 | 1.20 | 12 / 10 |' in ions
    everything, = by_class.rows_of('all', 'derived', results=tmp_path)
    assert '| all | PBE / def2-svp | 0.1 | 1 / 1 | 4 | 1.00 | 40 / 40 |' in everything
    kept, = by_class.rows_of('by name', 'derived', lambda name: '-000002-' in name,
                             results=tmp_path)
    assert '| 1 | 0.90 | 9 / 10 |' in kept
    assert by_class.rows_of('none', 'missing', results=tmp_path) == []
    (tmp_path / 'derived' / 'results.json').write_text(json.dumps({'records': records,
                                                                   'pending': 3}))
    running, = by_class.rows_of('S', 'derived', ('o2s',), results=tmp_path)
    assert running.startswith('| S (in progress: 3 to go) | PBE / def2-svp | 0.1 | 1 / 1 | 2 |')
    assert by_class.weights_of([{'weights': 'pbe-0.3.pt sha256:70fefd476bb7'}, {}]) == 'pbe-0.3'
    assert by_class.weights_of([{}]) == '0.1'
    # the guess's own DIIS start, recorded per run, else the folder's setting, else PySCF's
    assert by_class.diis_start_of([{'diis_start_cycle_used': 0}, {'diis_start_cycle': 0}]) == '0'
    assert by_class.diis_start_of([{'diis_start_cycle_used': 0}, {}]) == '0, 1'


def test_by_class_filters_a_benchmark_set_by_its_elements():
    by_class = load_benchmark('by_class')
    with_s_or_cl = by_class.set_with('drugs', ('S', 'Cl'))
    without = by_class.set_with('drugs', ('S', 'Cl'), present=False)
    assert with_s_or_cl('omeprazole') and with_s_or_cl('diclofenac')      # S; Cl
    assert not with_s_or_cl('ibuprofen') and without('ibuprofen')
    assert not without('captopril')


def test_compare_settings_counts_the_cycles_of_the_same_molecules(tmp_path):
    cs = load_benchmark('compare_settings')
    run = {'converged': True, 'delta_e': 0.0, 'xc': 'pbe', 'basis': 'def2-svp'}
    cycles = {'base': {'a': (11, 8), 'b': (15, 12), 'c': (12, 9)},       # (minao, mlsr)
              'early': {'a': (11, 8), 'b': (15, 10), 'c': (13, 8), 'd': (9, 7)}}
    for folder, table in cycles.items():
        records = [dict(run, molecule=m, guess=g, cycles=c) for m, pair in table.items()
                   for g, c in zip(('minao', 'mlsr'), pair)]
        records.append(dict(run, molecule='e', guess='mlsr', error='boom'))
        (tmp_path / folder).mkdir()
        (tmp_path / folder / 'results.json').write_text(json.dumps(
            {'records': records, 'pending': 2 if folder == 'early' else 0}))
    text = cs.main([str(tmp_path / 'base'), str(tmp_path / 'early'),
                    '--out', str(tmp_path / 'out' / 'cmp.md')])
    assert text == (tmp_path / 'out' / 'cmp.md').read_text()
    assert '[base], second [early, in progress: 2 to go]' in text
    # d ran in one folder only, e failed: a, b, c count
    assert '| minao | 3 | 38 | 39 | 1.00 | 0 / 2 / 1 |' in text
    assert '| mlsr | 3 | 29 | 26 | 0.89 | 2 / 1 / 0 |' in text
    assert '| mlsr (second) against minao (first) | 3 | 38 | 26 | 0.67 | 3 / 0 / 0 |' in text
    with pytest.raises(SystemExit, match='nowhere.*no such results file'):
        cs.main([str(tmp_path / 'base'), str(tmp_path / 'nowhere')])


def test_the_training_curve_recovers_a_power_law(tmp_path):
    tc = load_benchmark('training_curve')
    steps_per_epoch = 100
    history = [{'epoch': e, 'valid_nmae': 0.1 * e**-0.5,
                'valid_guess_nmae': None if e == 2 else 0.02 * e**-0.25} for e in range(1, 9)]
    result = tc.curve(history, {'steps_per_epoch': steps_per_epoch})
    box = result['measures']['valid_nmae']['trend']
    assert box['slope'] == pytest.approx(-0.5)
    # 0.1 (s / 100)^-0.5 = 0.015  ->  s = 100 (0.1 / 0.015)^2
    assert box['steps_for_target'] == pytest.approx(100 * (0.1 / 0.015)**2)
    assert result['measures']['valid_guess_nmae']['trend']['slope'] == pytest.approx(-0.25)
    text = tc.report(result, 'run')
    assert '| 200 | ' in text and 'steps^-0.50' in text
    tc.plot(result, tmp_path / 'run.png', 'run')
    assert (tmp_path / 'run.png').stat().st_size > 0


def test_the_resolution_floor_transplants_the_network_error_onto_the_fine_exact_density(
        water_pbe):
    floor = load_benchmark('resolution_floor')
    import numpy
    from pyscf_mlguess.field import DensityField
    from pyscf_mlguess.grid import make_grid
    from pyscf_mlguess.oracle import OraclePredictor
    mol, dm_ref, _ = water_pbe

    def bump(grid):                  # a smooth error, 0.01 e/Bohr^3 at its centre, width 1 Bohr
        r2 = ((grid.coords() - [0.5, 0.0, 0.3]) ** 2).sum(axis=1)
        return 0.01 * numpy.exp(-r2).reshape(grid.shape)

    class Network:                   # the exact density at 0.4 Bohr plus the bump
        input_spacing, margin, input_elements, meta, refine = 0.4, 4.0, None, {}, 1

        def __call__(self, mol, grid, rho_sad):
            exact = OraclePredictor(dm_ref)(mol, grid, rho_sad)
            return DensityField(exact.values + bump(grid), grid)

    grid = make_grid(mol, 0.4, 4.0)
    fields = {v: floor._Predictor(v, Network(), dm_ref)(mol, grid, None) for v in floor.VARIANTS}
    fine = grid.refine(2)
    assert fields['exact'].grid.shape == grid.shape
    assert fields['exact_fine'].grid.shape == fine.shape
    numpy.testing.assert_allclose(fields['model'].values - fields['exact'].values, bump(grid),
                                  atol=1e-12)
    # the network's own error, carried onto the fine grid by the splines, sits on the exact
    # fine density: the bump at the fine points, to the interpolation's accuracy
    moved = fields['model_on_fine'].values - fields['exact_fine'].values
    assert abs(moved - bump(fine)).max() < 2e-4
    assert fields['model_interpolated'].grid.shape == fine.shape
    assert fields['model_interpolated'].charge == pytest.approx(fields['model'].charge, abs=2e-3)


def test_near_nucleus_terms_split_a_field_exactly_and_a_fit_recovers_a_linear_law(
        water_pbe, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / 'benchmarks'))
    nn = load_benchmark('near_nucleus')
    from pyscf_mlguess.grid import make_grid, sad_density_matrix
    from pyscf_mlguess.oracle import OraclePredictor
    mol, dm_ref, _ = water_pbe
    r, f = nn.spherical_profiles(mol, dm_ref - sad_density_matrix(mol)[0], 0.2, 0.5)
    assert f.shape == (3, r.size) and r[-1] == pytest.approx(0.5)
    assert not f[:, -1].any() and numpy.interp(0.2, r, f[0]) == pytest.approx(0, abs=1e-5)
    assert f[0, 0] < -0.1                  # the oxygen's spike: fewer electrons at the nucleus
    terms = nn.radial_terms(mol, r, f)
    grid = make_grid(mol, 0.3, 4.0)
    exact = OraclePredictor(dm_ref)(mol, grid, None)
    split = nn.with_terms(nn.smooth_rest(exact, terms), grid, terms)
    # at the grid's points the split is the field itself (the splines interpolate)
    points = grid.coords(0, grid.size)[::97]
    numpy.testing.assert_allclose(split.evaluate(points), exact.evaluate(points), atol=1e-10)
    # at the nucleus it carries the spike the grid cannot
    nucleus = mol.atom_coords()[:1]
    assert split.evaluate(nucleus)[0] - exact.evaluate(nucleus)[0] < 0.5 * f[0, 0]
    # a fit per element: profiles = mean + (2 x0 - x1) * shape recovered from features
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(60, 9))
    shape = numpy.exp(-numpy.linspace(0, 3, 40))
    profiles = 0.1 + (2 * x[:, :1] - x[:, 1:2]) * shape
    fit = nn.ProfileFit(x, profiles, numpy.array(['C'] * 60))
    assert fit.explained['C'] == (60, pytest.approx(1, abs=1e-3))
    # to within the ridge's shrinkage, a percent of the profiles' range
    assert abs(fit.predict(x[:3], ['C'] * 3) - profiles[:3]).max() < 0.01 * abs(profiles).max()
    numpy.testing.assert_allclose(fit.mean(['O']), numpy.zeros((1, 40)))   # no such atoms


def test_a_grid_samples_a_function_on_its_points_in_blocks():
    from pyscf_mlguess.grid import UniformGrid
    grid = UniformGrid((0.5, -1.0, 2.0), 0.25, (5, 4, 3))
    values = grid.sample(lambda c: c @ [1.0, 10.0, 100.0], block=7)
    assert values.shape == (5, 4, 3)
    assert values[2, 1, 0] == pytest.approx(0.5 + 2 * 0.25 + 10 * (-1.0 + 0.25) + 100 * 2.0)


def test_the_oracle_records_cycles_and_the_start_density_error_of_each_guess():
    oracle = load_benchmark('oracle')
    rows = oracle.oracle_rows('water', {'atom': WATER, 'charge': 0, 'spin': 0}, 'pbe',
                              'def2-svp', [0.15, 0.3], 5.0, [1], ['lda_x'])
    by = {(r['guess'], r['spacing']): r for r in rows}
    assert set(by) == {('minao', None), ('atom', None), ('sad-projected', None),
                       ('oracle', 0.15), ('oracle', 0.3)}
    assert all(r['converged'] and abs(r['delta_e']) < 1e-7 for r in rows)
    # each start's own density error (not minao's): the exact density projected is far closer,
    # and closer the finer its samples
    nmae = {k: r['guess_nmae'] for k, r in by.items()}
    assert nmae[('oracle', 0.15)] < nmae[('oracle', 0.3)] < 0.2 * nmae[('minao', None)]
    assert nmae[('minao', None)] != nmae[('sad-projected', None)]
    assert by[('oracle', 0.15)]['cycles'] < by[('minao', None)]['cycles']
    table = oracle.markdown(rows)
    assert '| pbe | oracle | - | 1 | 0.15 | 1 |' in table and 'guess NMAE, median' in table


def test_the_first_step_study_takes_pyscfs_first_step_from_each_guess():
    study = load_benchmark('first_step')
    from pyscf import dft, gto
    mol = gto.M(atom=WATER, basis='def2-svp', verbose=0)
    mf = dft.RKS(mol, xc='pbe')
    mf.conv_tol = 1e-11
    mf.kernel()
    dm = mf.make_rdm1()
    # the converged density is the step's fixed point, with or without a level shift
    after, homo, lumo, shifted = study.first_step(mf, dm, level_shift=0.3)
    numpy.testing.assert_allclose(after, dm, atol=1e-5)
    numpy.testing.assert_allclose(shifted, dm, atol=1e-5)
    assert (homo, lumo) == pytest.approx((mf.mo_energy[4], mf.mo_energy[5]), abs=1e-6)
    # from minao the step moves the density, and a level shift holds it nearer the guess
    dm0 = mf.get_init_guess(mol, 'minao')
    after, _, _, shifted = study.first_step(mf, dm0, level_shift=0.3)
    assert 0.02 < numpy.linalg.norm(shifted - dm0) < numpy.linalg.norm(after - dm0)
    rows = study.molecule_rows('water', {'atom': WATER, 'charge': 0, 'spin': 0}, 'pbe',
                               'def2-svp', level_shift=0.1)
    by = {r['guess']: r for r in rows}
    assert set(by) == {'minao', 'mlsr', 'oracle'}
    assert by['oracle']['start_nmae'] < by['mlsr']['start_nmae'] < by['minao']['start_nmae']
    assert all(r['step_de'] > 0 and r['shifted_step_de'] > 0 for r in rows)   # variational
    # the projection's own Fock matrix: the exact correction's is nearly the converged one
    assert by['oracle']['projection_homo'] == pytest.approx(by['oracle']['homo_ref'], abs=0.02)
    assert 'projection_homo' not in by['minao']
    assert '| neutral | 1 | mlsr |' in study.markdown(rows)


def test_the_box_margin_study_shrinks_the_box_and_restores_the_trained_margin(water_record,
                                                                             tmp_path):
    bm = load_benchmark('box_margin')
    from pyscf_mlguess.data import store
    from pyscf_mlguess.model import CNNPredictor, resolve_weights
    writer = store.ShardWriter(str(tmp_path), shard_size=10)     # the record as stored
    writer.add(water_record)
    writer.flush()
    (record,) = store.iter_records(str(tmp_path))
    predictor = CNNPredictor.from_file(resolve_weights('pbe')[0])
    row = bm.measure(record, predictor, [predictor.margin, 3.0], 1)
    assert predictor.margin == 5.0                       # restored after the study
    assert set(row['margins']) == {'5.0', '3.0'}
    big, small = row['margins']['5.0'], row['margins']['3.0']
    assert 0 < big['guess_nmae'] < 0.05 and 0 < small['guess_nmae'] < 0.05
    assert big['guess_nmae'] != small['guess_nmae']      # another box, another guess
    summary = bm.summary({'water': row}, [5.0, 3.0])
    assert summary['5.0']['ratio']['guess_nmae'] == 1
    assert summary['3.0']['ratio']['guess_nmae'] == pytest.approx(
        small['guess_nmae'] / big['guess_nmae'])


def test_symmetry_average_turns_each_answer_back():
    import torch
    from pyscf import gto
    from pyscf_mlguess import model
    from pyscf_mlguess.data.dataset import apply_cube_symmetry
    from pyscf_mlguess.grid import make_grid
    sym = load_benchmark('symmetry_average')
    assert len({(tuple(p), tuple(f)) for p, f in sym.SYMMETRIES}) == 48
    assert sym.SYMMETRIES[:2] == [([0, 1, 2], []), ([0, 1, 2], [0, 1, 2])]
    torch.manual_seed(0)
    net = model.DensitySR(channels=4, blocks=1, up_channels=2, upsample=1)
    with torch.no_grad():                       # its output layer starts at zero
        for p in net.parameters():
            p.normal_(0.0, 0.3)
    meta = {'xc': 'pbe', 'input_spacing': 0.4, 'output_spacing': 0.4, 'margin': 3.0}
    mol = gto.M(atom=WATER, basis='sto-3g')
    grid = make_grid(mol, 0.4, 3.0)
    x = torch.rand(grid.shape).numpy()
    averaged = sym.SymmetryAveraged(net, meta, device='cpu')
    plain = model.CNNPredictor(net, meta, device='cpu')(mol, grid, x).values
    numpy.testing.assert_allclose(averaged(mol, grid, x).values, plain, atol=1e-6)  # k = 1
    averaged.count = 48
    full = averaged(mol, grid, x).values
    assert not numpy.allclose(full, plain, atol=1e-4)      # a random network is not equivariant
    # averaged over the whole group, the answer turns with its input: an inversion here
    turned = apply_cube_symmetry(x, [0, 1, 2], [0, 1, 2]).copy()
    again = sym.SymmetryAveraged(net, meta, device='cpu')
    again.count = 48
    numpy.testing.assert_allclose(again(mol, grid, turned).values,
                                  apply_cube_symmetry(full, [0, 1, 2], [0, 1, 2]), atol=1e-6)


@pytest.fixture
def ablations(monkeypatch):
    # the script sets PYSCF_MAX_MEMORY for its own process; keep it out of the test session's
    monkeypatch.setenv('PYSCF_MAX_MEMORY', os.environ.get('PYSCF_MAX_MEMORY', '4000'))
    module = load_benchmark('ablations')
    return module


def test_learning_curve_points_share_their_budgets_first_plan(ablations, tmp_path, monkeypatch):
    monkeypatch.setattr(ablations, 'RUNS', tmp_path)
    for name, steps in (('v-n200', 1089), ('v-n100', 950), ('v-60min-n150', 3267)):
        (tmp_path / name).mkdir()
        (tmp_path / name / 'plan.json').write_text(json.dumps({'epochs': 1, 'steps': steps}))
    assert ablations.curve_plan('v-n1500') == {'epochs': 1, 'steps': 950,
                                               'shared_from': 'v-n100'}
    assert ablations.curve_plan('v-60min-n3000')['shared_from'] == 'v-60min-n150'
    assert ablations.curve_plan('v-30min-n500') is None         # a new budget calibrates


def test_learning_curves_are_grouped_by_budget_and_fitted(ablations):
    def run(variant, minutes, n, guess):
        return {'variant': variant, 'plan': {'cpu_minutes': minutes, 'epochs': 2,
                                             'steps_per_epoch': 50},
                'history': [{'train_samples': n}],
                'rows': [{'guess_nmae': guess, 'box_nmae': 4 * guess}, {'box_nmae': 4 * guess}]}
    results = {'v': run('v', 15, 351, 0.012), 'v-n100': run('v', 15, 100, 0.016),
               'v-n1000': run('v', 15, 1000, 0.008), 'v-60min-n150': run('v', 60, 150, 0.01),
               'w': run('w', 15, 351, 0.02)}
    assert ablations.is_curve_run('v-n100', results['v-n100'])
    assert not ablations.is_curve_run('v', results['v'])
    assert not ablations.is_curve_run('v-bf16', dict(results['v'], variant='v'))
    curves = ablations.curve_points(results)
    assert list(curves) == [('v', 15), ('v', 60)]             # 'w' has no curve runs
    assert [p[0] for p in curves[('v', 15)]] == [100, 351, 1000]
    assert curves[('v', 15)][0] == (100, 0.016, 0.064, 100)
    slope, pre = ablations.power_law(curves[('v', 15)], 1)
    assert slope == pytest.approx(math.log(0.008 / 0.016) / math.log(10), abs=0.02)
    text = '\n'.join(ablations.curve_report(results))
    assert 'projected-guess NMAE ~ N^-0.30' in text
    assert '60 CPU minutes' in text and text.count('~ N^') == 2  # one point at 60: no fit


def test_compute_curve_recovers_a_known_floor():
    module = load_benchmark('compute_curve')
    steps = [950, 1000, 3267, 12000, 32000, 40000]
    points = [(s, module.saturating(s, 0.0045, 0.06, 0.35), '') for s in steps]
    (floor, b, k), (pre, slope) = module.fit(points)
    assert floor == pytest.approx(0.0045, rel=0.02) and k == pytest.approx(0.35, rel=0.05)
    assert slope < 0
    s_sat, s_power = module.steps_for(0.005, (floor, b, k), (pre, slope))
    assert module.saturating(s_sat, floor, b, k) == pytest.approx(0.005)
    assert module.steps_for(0.004, (floor, b, k), (pre, slope))[0] is None   # below the floor
