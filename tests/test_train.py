"""Training: progress on a tiny set, exact resume from a checkpoint, weights file out."""

import json
import pathlib

import pytest
import torch

from conftest import load_benchmark
from pyscf_mlguess import model
from pyscf_mlguess.data import generate, qm9, store
from pyscf_mlguess.train.loop import (coulomb_error, coulomb_error_numpy, gaussian_blur,
                                      lr_factor, patch_loss, random_patch, train)

ARCH = dict(channels=4, blocks=1, up_channels=2)
SMALL = dict(arch=ARCH, steps_per_epoch=3, batch=2, patch=8, warmup=2, margin=3.0,
             spacing=0.2, progress=False)


@pytest.fixture(scope='module')
def water_set(tmp_path_factory, water_record):
    folder = tmp_path_factory.mktemp('data') / 'pbe_def2svp' / 'train'
    writer = store.ShardWriter(str(folder))
    writer.add(water_record)
    writer.flush()
    return str(folder), str(tmp_path_factory.mktemp('cache'))


def test_schedule_warms_up_then_decays():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0)


def test_resume_is_exact_and_weights_are_written(water_set, tmp_path):
    folder, cache = water_set
    straight = tmp_path / 'straight'                   # boxes built in this process
    train([folder], [folder], str(straight), epochs=2, cache_dir=cache, loader_workers=0,
          **SMALL)
    split = tmp_path / 'split'
    train([folder], [folder], str(split), epochs=2, sitting_epochs=1, cache_dir=cache,
          **SMALL)                                                   # a first sitting
    history = train([folder], [folder], str(split), epochs=2, cache_dir=cache, **SMALL)
    assert [h['epoch'] for h in history] == [1, 2]
    a = torch.load(straight / 'checkpoint.pt', weights_only=True)['model']
    b = torch.load(split / 'checkpoint.pt', weights_only=True)['model']
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    net, meta = model.load_weights(split / 'weights.pt')
    assert meta['xc'] == 'pbe' and meta['input_spacing'] == pytest.approx(0.4)
    assert meta['elements'] == ['H', 'O'] and len(json.loads(meta['history'])) == 2
    assert meta['valid_nmae'] > 0


def test_cpu_bf16_is_a_setting_of_the_sitting(water_set, tmp_path, monkeypatch):
    """bfloat16 steps follow the float32 ones closely, each epoch records which it used, and a
    run may switch between sittings (the recipe does not hold it)."""
    from pyscf_mlguess.train import loop
    monkeypatch.setattr(loop, 'cpu_has_native_bf16', lambda: True)   # emulated or not
    folder, cache = water_set
    fp32 = train([folder], [folder], str(tmp_path / 'fp32'), epochs=2, cache_dir=cache,
                 loader_workers=0, **SMALL)
    out = str(tmp_path / 'mixed')
    first = train([folder], [folder], out, epochs=2, sitting_epochs=1, cache_dir=cache,
                  loader_workers=0, cpu_bf16=True, **SMALL)
    assert first[0]['bf16'] is True and fp32[0]['bf16'] is False
    assert first[0]['train_patch_loss'] != fp32[0]['train_patch_loss']   # it did run in bf16
    assert first[0]['train_patch_loss'] == pytest.approx(fp32[0]['train_patch_loss'], rel=1e-3)
    both = train([folder], [folder], out, epochs=2, cache_dir=cache, loader_workers=0, **SMALL)
    assert [h['bf16'] for h in both] == [True, False]
    assert both[1]['valid_nmae'] == pytest.approx(fp32[1]['valid_nmae'], rel=1e-3)


def test_cpu_bf16_is_declined_without_native_bfloat16(water_set, tmp_path, monkeypatch):
    """Where the CPU would emulate bfloat16 the sitting warns and trains in float32: the same
    losses as a float32 run, and the epochs say so."""
    from pyscf_mlguess.train import loop
    monkeypatch.setattr(loop, 'cpu_has_native_bf16', lambda: False)
    folder, cache = water_set
    fp32 = train([folder], [folder], str(tmp_path / 'fp32'), epochs=1, cache_dir=cache,
                 loader_workers=0, **SMALL)
    with pytest.warns(UserWarning, match='no native bfloat16'):
        asked = train([folder], [folder], str(tmp_path / 'asked'), epochs=1, cache_dir=cache,
                      loader_workers=0, cpu_bf16=True, **SMALL)
    assert asked[0]['bf16'] is False
    assert asked[0]['train_patch_loss'] == fp32[0]['train_patch_loss']


def test_valid_every_skips_epochs_but_never_a_sittings_last(water_set, tmp_path):
    folder, cache = water_set
    out = str(tmp_path / 'run')
    kw = dict(cache_dir=cache, loader_workers=0, valid_every=3, **SMALL)
    first = train([folder], [folder], out, epochs=5, sitting_epochs=2, **kw)
    history = train([folder], [folder], out, epochs=5, **kw)
    assert [h['epoch'] for h in history] == [1, 2, 3, 4, 5]
    assert ['valid_nmae' in h for h in history] == [False, True, True, False, True]
    assert first[-1]['valid_nmae'] == history[1]['valid_nmae'] > 0
    with pytest.raises(ValueError, match='valid_every 0'):
        train([folder], [folder], out, epochs=5, valid_every=0, progress=False)


def test_ema_is_validated_written_resumed_and_part_of_the_recipe(water_set, tmp_path):
    """With ``ema_decay`` the weights written are the moving average, kept in the checkpoint
    across sittings (a split run ends where a straight one does), and resuming without it is
    refused."""
    folder, cache = water_set
    kw = dict(cache_dir=cache, loader_workers=0, ema_decay=0.5, **SMALL)
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    train([folder], [folder], str(straight), epochs=2, **kw)
    train([folder], [folder], str(split), epochs=2, sitting_epochs=1, **kw)
    history = train([folder], [folder], str(split), epochs=2, **kw)
    a = torch.load(straight / 'checkpoint.pt', weights_only=True)
    b = torch.load(split / 'checkpoint.pt', weights_only=True)
    assert int(b['ema']['n_averaged']) == 6                       # every step of both epochs
    for k in a['ema']:
        torch.testing.assert_close(a['ema'][k], b['ema'][k], rtol=0, atol=0)
    assert json.loads(b['recipe'])['ema_decay'] == 0.5
    net, meta = model.load_weights(split / 'weights.pt')
    written = net.state_dict()
    for k, v in written.items():                     # the average is written, not the raw step
        torch.testing.assert_close(v, b['ema']['module.' + k], rtol=0, atol=0)
    assert any(not torch.equal(v, b['model'][k]) for k, v in written.items())
    assert json.loads(meta['history'])[-1]['valid_nmae'] == history[-1]['valid_nmae']
    with pytest.raises(ValueError, match='ema_decay'):
        train([folder], [folder], str(split), epochs=2, cache_dir=cache, loader_workers=0,
              **SMALL)
    with pytest.raises(ValueError, match='ema_decay 1.5'):
        train([folder], [folder], str(tmp_path / 'bad'), ema_decay=1.5, **SMALL)


def test_step_patches_depend_on_the_step_alone(water_set):
    from pyscf_mlguess.data.dataset import DensityDataset
    from pyscf_mlguess.train.loop import StepPatches
    folder, cache = water_set
    ds = DensityDataset([folder], 0.2, 3.0, 2, cache_dir=cache)
    steps = StepPatches(ds, batch=3, patch=6, upsample=2, context=2, seed=4)
    a, b, c = steps[7], steps[7], steps[8]
    for p, q in zip(a, b):
        torch.testing.assert_close(p['x'], q['x'], rtol=0, atol=0)
        torch.testing.assert_close(p['y'], q['y'], rtol=0, atol=0)
    assert any(p['x'].shape != q['x'].shape or not torch.equal(p['x'], q['x'])
               for p, q in zip(a, c))


def test_folder_weights_set_each_folders_share_of_the_draws(water_set, tmp_path):
    from pyscf_mlguess.data.dataset import DensityDataset
    from pyscf_mlguess.train.loop import StepPatches, _sample_probabilities
    folder, cache = water_set
    ds = DensityDataset([folder, folder, folder], 0.2, 3.0, 2, cache_dir=cache)
    assert ds.folder_index == [0, 1, 2]
    probs = _sample_probabilities(ds, ['a', 'b', 'c'], [2, 1, 1])
    torch.testing.assert_close(probs, torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))

    class Recording:                      # the dataset, noting which samples are drawn
        def __init__(self):
            self.seen = []

        def __len__(self):
            return len(ds)

        def item(self, index, gen):
            self.seen.append(index)
            return ds.item(index, gen)

    rec = Recording()
    steps = StepPatches(rec, batch=4, patch=6, upsample=2, seed=1, probabilities=probs)
    for step in range(100):
        steps[step]
    share = rec.seen.count(0) / len(rec.seen)
    assert 0.42 < share < 0.58                  # 0.5 expected; uniform draws would give 1/3
    for bad, match in (([1, 1], '2 folder weights for 3'), ([1, 0, 1], 'must be positive')):
        with pytest.raises(ValueError, match=match):
            _sample_probabilities(ds, ['a', 'b', 'c'], bad)
    ds.folder_index = [0, 0, 2]
    with pytest.raises(ValueError, match='b has no training samples'):
        _sample_probabilities(ds, ['a', 'b', 'c'], [1, 1, 1])
    run = tmp_path / 'weighted'
    train([folder, folder], [folder], str(run), epochs=1, cache_dir=cache, loader_workers=0,
          folder_weights=[3, 1], **SMALL)
    recipe = json.loads(torch.load(run / 'checkpoint.pt', weights_only=True)['recipe'])
    assert recipe['folder_weights'] == [3.0, 1.0]
    with pytest.raises(ValueError, match='folder_weights'):
        train([folder, folder], [folder], str(run), epochs=1, cache_dir=cache,
              loader_workers=0, folder_weights=[1, 1], **SMALL)


def test_training_lowers_the_loss(water_set, tmp_path):
    folder, cache = water_set
    params = dict(SMALL, steps_per_epoch=40, lr=5e-3, warmup=5)
    history = train([folder], [folder], str(tmp_path), epochs=3, cache_dir=cache, **params)
    assert history[-1]['train_patch_loss'] < 0.9 * history[0]['train_patch_loss']
    # the untrained network is the SAD density; whole-box NMAE stays finite and comparable
    assert history[-1]['valid_nmae'] < 1.5 * history[-1]['valid_nmae_sad']


def test_coulomb_error_of_a_gaussian_charge():
    # a normalised Gaussian of width s and charge q: 2 E_H = q^2 / (s sqrt(pi))
    h, s, q = 0.15, 0.8, 0.3
    x = (torch.arange(64, dtype=torch.float64) - 31.5) * h
    r2 = x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2
    rho = q * (2 * torch.pi * s**2) ** -1.5 * torch.exp(-r2 / (2 * s**2))
    exact = q / (s * torch.pi**0.5) ** 0.5
    assert float(coulomb_error(rho, h)) == pytest.approx(float(exact), rel=2e-3)
    assert coulomb_error_numpy(rho.numpy(), h) == pytest.approx(float(exact), rel=2e-3)
    # a dipole (+q and -q 2 Bohr apart) costs far less than the charge alone
    dipole = rho - torch.roll(rho, 13, dims=0)
    assert float(coulomb_error(dipole, h)) < 0.8 * float(exact) * 2**0.5


def test_coulomb_error_has_gradients():
    e = torch.randn(6, 7, 8, requires_grad=True)
    coulomb_error(e, 0.2).backward()
    assert e.grad is not None and float(e.grad.abs().sum()) > 0


def test_gaussian_blur_is_scipys_and_keeps_the_charge_inside():
    from scipy.ndimage import gaussian_filter
    e = torch.randn(9, 10, 11, dtype=torch.float64)
    blurred = gaussian_blur(e, 1.7)
    assert torch.allclose(blurred, torch.from_numpy(gaussian_filter(e.numpy(), 1.7,
                                                                    mode='constant')))
    # a point charge in the middle: its charge stays, its peak spreads
    point = torch.zeros(21, 21, 21, dtype=torch.float64)
    point[10, 10, 10] = 1.0
    spread = gaussian_blur(point, 1.5)
    assert float(spread.sum()) == pytest.approx(1.0, rel=1e-9)
    assert float(spread.max()) == pytest.approx((2 * torch.pi * 1.5**2) ** -1.5, rel=0.02)


def test_smooth_loss_weighs_broad_errors_above_fine_ones():
    # equal NMAE, one error alternating voxel by voxel, one a broad blob: the blurred term
    # (sigma 2 voxels) all but ignores the first and keeps most of the second
    n, h = 16, 0.3
    idx = torch.arange(n)
    fine = ((idx[:, None, None] + idx[None, :, None] + idx[None, None, :]) % 2 * 2 - 1) * 1e-3
    x = (idx - 7.5) * h
    blob = torch.exp(-(x[:, None, None]**2 + x[None, :, None]**2 + x[None, None, :]**2) / 2)
    broad = blob * fine.abs().sum() / blob.sum()
    item = {'inner': (slice(None),) * 3, 'y': torch.zeros(1, 1, n, n, n),
            'voxel_volume': h**3, 'n_electrons': 10.0}
    plain = [float(patch_loss(e[None, None].float(), item, h, 0.0, {})) for e in (fine, broad)]
    smooth = [float(patch_loss(e[None, None].float(), item, h, 0.0, {}, smooth=(0.6, 1.0)))
              for e in (fine, broad)]
    assert plain[0] == pytest.approx(plain[1], rel=1e-5)
    assert smooth[0] - plain[0] < 0.05 * plain[0]
    assert smooth[1] - plain[1] > 0.8 * plain[1]


def test_smooth_loss_run_records_it_and_refuses_a_changed_resume(water_set, tmp_path):
    folder, cache = water_set
    params = dict(SMALL, smooth_loss=(0.5, 2.0), max_train=1, loader_workers=0)
    train([folder], [folder], str(tmp_path), epochs=1, cache_dir=cache, **params)
    meta = model.load_weights(tmp_path / 'weights.pt')[1]
    assert json.loads(meta['recipe'])['smooth_loss'] == [0.5, 2.0]
    with pytest.raises(ValueError, match='smooth_loss'):
        train([folder], [folder], str(tmp_path), epochs=2, cache_dir=cache,
              **dict(params, smooth_loss=(1.0, 2.0)))
    with pytest.raises(ValueError, match='both > 0'):
        train([folder], [folder], str(tmp_path / 'bad'), epochs=1, cache_dir=cache,
              **dict(params, smooth_loss=(0.5,)))


def test_random_patch_with_context_keeps_the_target_in_the_middle():
    sad = torch.rand(1, 20, 21, 22)
    item = {'sad': sad, 'delta_rho': torch.rand(1, 40, 42, 44)}
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        x, y, inner = random_patch(item, 8, 2, gen, context=5)
        assert y.shape[-3:] == (16, 16, 16)
        assert all(8 <= n <= 18 for n in x.shape[-3:])
        # the inner part of the input patch is the SAD under the target patch
        lo = [sl.start // 2 for sl in inner]
        out_shape = [2 * n for n in x.shape[-3:]]
        assert all(sl.stop <= n for sl, n in zip(inner, out_shape))
        assert all(l_ >= 0 for l_ in lo)
    x0, y0, inner0 = random_patch(item, 8, 2, torch.Generator().manual_seed(3))
    assert x0.shape[-3:] == (8, 8, 8) and all(sl.start == 0 for sl in inner0)


def test_multiscale_coulomb_context_run_and_refused_resume(water_set, tmp_path):
    folder, cache = water_set
    params = dict(SMALL, arch=dict(ARCH, levels=1, level_blocks=1), context=4,
                  coulomb_weight=1.0, max_train=1)
    history = train([folder], [folder], str(tmp_path), epochs=1, cache_dir=cache, **params)
    assert history[-1]['valid_coulomb'] > 0 and history[-1]['valid_coulomb_sad'] > 0
    net, meta = model.load_weights(tmp_path / 'weights.pt')
    assert net.arch['levels'] == 1 and json.loads(meta['recipe'])['coulomb_weight'] == 1.0
    with pytest.raises(ValueError, match='coulomb_weight'):
        train([folder], [folder], str(tmp_path), epochs=2, cache_dir=cache,
              **dict(params, coulomb_weight=0.5))


def test_each_validation_folder_is_measured_on_its_own(water_set, tmp_path):
    import shutil
    folder, cache = water_set
    other = str(tmp_path / 'pbe_def2svp_derived' / 'valid')
    shutil.copytree(folder, other)
    history = train([folder], [other, folder], str(tmp_path / 'run'), epochs=1,
                    cache_dir=cache, loader_workers=0, **SMALL)
    by_folder = history[-1]['valid_by_folder']
    assert list(by_folder) == [other, folder]
    assert history[-1]['valid_nmae'] == by_folder[other]['valid_nmae'] > 0
    assert by_folder[folder]['valid_coulomb'] == pytest.approx(by_folder[other]['valid_coulomb'])
    assert model.load_weights(tmp_path / 'run' / 'weights.pt')[1]['valid_samples'] == 2


def test_fine_tuning_keeps_the_box_and_network_of_its_weights(water_set, tmp_path):
    folder, cache = water_set
    start = tmp_path / 'start'
    train([folder], [folder], str(start), epochs=1, cache_dir=cache,
          **dict(SMALL, arch=dict(ARCH, upsample=1)))
    weights = start / 'weights.pt'
    out = tmp_path / 'tuned'
    train([folder], [folder], str(out), epochs=1, cache_dir=cache, init_weights=str(weights),
          **dict(SMALL, arch=None, spacing=None, margin=None))
    meta = model.load_weights(out / 'weights.pt')[1]
    assert (meta['output_spacing'], meta['input_spacing'], meta['margin']) == (0.2, 0.2, 3.0)
    # the starting weights were measured first, like an epoch: the start run's last figures
    start_last = json.loads(model.load_weights(weights)[1]['history'])[-1]
    assert json.loads(meta['start_valid'])[folder]['valid_nmae'] == pytest.approx(
        start_last['valid_nmae'], rel=1e-6)
    assert json.loads(model.load_weights(weights)[1]['start_valid']) is None
    # (a flat network asked for levels gets a branch: test_a_flat_network_starts_one_with_a_branch)
    for asked in (dict(arch={'upsample': 3}), dict(arch={'channels': 8}), dict(spacing=0.15),
                  dict(margin=5.0)):
        with pytest.raises(ValueError, match='fixes the network and its box'):
            train([folder], [folder], str(tmp_path / 'bad'), epochs=1, cache_dir=cache,
                  init_weights=str(weights),
                  **{**SMALL, 'arch': None, 'spacing': None, 'margin': None, **asked})


def test_a_coarse_network_starts_a_twice_finer_one(water_set, tmp_path):
    folder, cache = water_set
    start = tmp_path / 'start'
    train([folder], [folder], str(start), epochs=1, cache_dir=cache,
          **dict(SMALL, arch=dict(ARCH, upsample=1)))
    out = tmp_path / 'fine'
    params = dict(SMALL, arch={'upsample': 2}, spacing=None, margin=None)
    train([folder], [folder], str(out), epochs=2, sitting_epochs=1, cache_dir=cache,
          init_weights=str(start / 'weights.pt'), **params)
    net, meta = model.load_weights(out / 'weights.pt')
    assert net.upsample == 2 and (meta['output_spacing'], meta['input_spacing']) == (0.1, 0.2)
    # a second sitting grafts the same way and takes the checkpoint
    history = train([folder], [folder], str(out), epochs=2, sitting_epochs=1, cache_dir=cache,
                    init_weights=str(start / 'weights.pt'), **params)
    assert [h['epoch'] for h in history] == [1, 2]


def test_train_command(water_set, tmp_path, capsys):
    from pyscf_mlguess.cli import main
    folder, cache = water_set
    assert main(['train', '--train', folder, '--valid', folder, '--out', str(tmp_path),
                 '--epochs', '1', '--steps', '2', '--batch', '1', '--patch', '8',
                 '--warmup', '1', '--channels', '4', '--blocks', '1', '--up-channels', '2',
                 '--spacing', '0.2', '--margin', '3', '--cache', cache, '--elements', 'H,O',
                 '--guess-valid', '1', '--folder-weights', '1']) == 0
    assert '"valid_guess_nmae"' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='--folder-weights 1,x'):
        main(['train', '--train', folder, '--out', str(tmp_path / 'x'), '--folder-weights',
              '1,x'])
    with pytest.raises(SystemExit, match='--level-blocks .* needs --levels'):
        main(['train', '--train', folder, '--out', str(tmp_path / 'x'), '--level-blocks', '3'])
    history = json.loads(model.load_weights(tmp_path / 'weights.pt')[1]['history'])
    assert 0 < history[-1]['valid_guess_nmae'] < 0.2 and 'valid_nmae' in history[-1]
    assert model.load_weights(tmp_path / 'weights.pt')[0].arch['elements'] == ['H', 'O']


def test_the_guess_proxy_of_a_silent_network_is_the_projected_sad_guess(water_set):
    from pyscf_mlguess.data.dataset import DensityDataset
    from pyscf_mlguess.model import ZeroPredictor
    from pyscf_mlguess.train.loop import guess_nmae
    from pyscf_mlguess.train.release import measure_sample
    folder, cache = water_set
    silent = model.DensitySR(**ARCH)                 # the tail starts at zero: delta_rho = 0
    dataset = DensityDataset([folder], 0.2, 3.0, silent.upsample, cache_dir=cache)
    expected = measure_sample(dataset.records[0], ZeroPredictor())['mlsr_guess']
    assert guess_nmae(silent, dataset, 1) == pytest.approx(expected, rel=1e-6)
    assert silent.training                           # the copy ran, not the model


def test_finetune_on_xyz_files(tmp_path):
    """Two small molecules (one charged) from .xyz: references, fine-tuning, a report."""
    from pyscf_mlguess.train.finetune import finetune, is_held_out, sample_from_xyz
    mols = tmp_path / 'mols'
    mols.mkdir()
    (mols / 'water.xyz').write_text('3\n\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n')
    (mols / 'hydroxide.xyz').write_text('2\ncharge=-1 spin=0\nO 0 0 0\nH 0 0 0.97\n')
    assert sample_from_xyz(mols / 'hydroxide.xyz').charge == -1
    names = ['water', 'hydroxide']
    assert sorted(is_held_out(n) for n in names) == [False, True]   # one each way
    torch.manual_seed(0)
    start = tmp_path / 'start.pt'
    model.save_weights(start, model.DensitySR(**ARCH), dict(
        xc='pbe', input_spacing=0.4, output_spacing=0.2, margin=3.0))
    report = finetune(str(mols), str(tmp_path / 'out'), xc='pbe', weights=str(start),
                      workers=1, epochs=1, steps_per_epoch=3, batch=1, patch=8, warmup=1,
                      progress=False)
    assert sorted(report['molecules']['train'] + report['molecules']['holdout']) == sorted(names)
    assert report['holdout_nmae_before'] > 0 and report['holdout_nmae_after'] > 0
    assert (tmp_path / 'out' / 'finetune.json').exists()


def test_open_shell_references_are_refused():
    s = qm9.Sample(-1, '', ('N', 'H', 'H'), torch.zeros(3, 3).numpy() + [[0, 0, 0], [0, 0, 1],
                                                                          [0, 1, 0]],
                   spin=1, name='nh2')
    with pytest.raises(ValueError, match='open-shell'):
        generate.reference_calculation(s, 'pbe', threads=0)


def test_release_measures_and_writes_the_hash_line(water_set, tmp_path):
    from pyscf_mlguess.train.release import release
    folder, cache = water_set
    run = tmp_path / 'run'
    train([folder], [folder], str(run), epochs=1, cache_dir=cache, **SMALL)
    out = tmp_path / 'weights' / 'pbe.pt'
    summary = release(str(run / 'weights.pt'), [folder], str(out), progress=False)
    assert summary['samples'] == 1
    # every density is some distance from the converged one, the guesses most of all
    for key in ('nmae_sad', 'nmae_minao', 'nmae_model', 'nmae_mlsr_guess'):
        assert 0 < summary[key] < 0.2
    net, meta = model.load_weights(out, expected_sha256=model.sha256_of(out))
    assert meta['test']['nmae_model'] == summary['nmae_model']
    assert meta['dataset'].startswith('1 shards, sha256:')
    lines = (out.parent / 'SHA256SUMS').read_text().splitlines()
    assert lines[-1] == f'{model.sha256_of(out)}  pbe.pt'
    release(str(run / 'weights.pt'), [folder], str(out), progress=False)   # replaces its line
    assert sum(ln.endswith('pbe.pt') for ln in
               (out.parent / 'SHA256SUMS').read_text().splitlines()) == 1
    rows = json.loads((tmp_path / 'weights' / 'pbe.test.json').read_text())['rows']
    assert set(rows[0]['mlsr_timings']) == {'grid', 'model', 'projection', 'total'}


def test_the_test_split_benchmark_measures_as_a_release_does_and_resumes(water_set, tmp_path,
                                                                          monkeypatch):
    from pyscf_mlguess.train import release as release_module
    split = load_benchmark('test_split')
    folder, cache = water_set
    run = tmp_path / 'run'
    train([folder], [folder], str(run), epochs=1, cache_dir=cache, **SMALL)
    weights = str(run / 'weights.pt')
    released = release_module.release(weights, [folder], str(tmp_path / 'w' / 'pbe.pt'),
                                       progress=False)
    out = tmp_path / 'results'
    data = split.measure(weights, [folder], out, progress=False)
    for key in ('nmae_sad', 'nmae_minao', 'nmae_model', 'nmae_mlsr_guess'):
        assert data['summary'][key] == pytest.approx(released[key], rel=1e-6)
    assert data['box']['nmae_model'] == pytest.approx(released['box_nmae_model'], rel=1e-6)
    text = (out / 'weights.md').read_text()
    assert f'{100 * released["nmae_mlsr_guess"]:.2f} %' in text and '1 samples' in text
    # a second run measures nothing again; other weights are refused, naming both files
    monkeypatch.setattr(release_module, 'measure_sample', lambda *a: pytest.fail('re-measured'))
    assert split.measure(weights, [folder], out, progress=False)['rows'] == data['rows']
    other = tmp_path / 'other' / 'weights.pt'
    other.parent.mkdir()
    other.write_bytes(pathlib.Path(weights).read_bytes() + b'x')
    with pytest.raises(SystemExit, match='measured with weights.pt .* use another --out'):
        split.measure(str(other), [folder], out, progress=False)
    assert split.main(['--weights', weights, '--out', str(out), '--report-only']) == 0


def test_release_for_another_functional(water_set, tmp_path, monkeypatch):
    """``release --xc b3lyp``: PBE-trained tensors shipped for hybrids, measured on B3LYP
    references; the file then names B3LYP (the guess takes it without the other-family
    warning) and keeps the training functional."""
    from pyscf import dft, gto
    from pyscf_mlguess import config
    from pyscf_mlguess.train.release import release
    from conftest import water_sample
    folder, cache = water_set
    run = tmp_path / 'run'
    train([folder], [folder], str(run), epochs=1, cache_dir=cache, **SMALL)
    out = tmp_path / 'weights' / 'b3lyp-0.9.pt'
    with pytest.raises(ValueError, match='hold pbe references'):
        release(str(run / 'weights.pt'), [folder], str(out), progress=False, xc='b3lyp')
    with pytest.raises(ValueError, match='--xc b3lpy: not a functional'):
        release(str(run / 'weights.pt'), [folder], str(out), progress=False, xc='b3lpy')
    assert not out.exists()
    hybrid = tmp_path / 'b3lyp_def2svp' / 'test'
    writer = store.ShardWriter(str(hybrid))
    writer.add(generate.reference_calculation(water_sample(), 'b3lyp', threads=0))
    writer.flush()
    summary = release(str(run / 'weights.pt'), [str(hybrid)], str(out), progress=False,
                      xc='b3lyp')
    net, meta = model.load_weights(out, expected_sha256=model.sha256_of(out))
    assert (meta['xc'], meta['trained_xc']) == ('b3lyp', 'pbe')
    assert meta['test'] == summary and summary['folders'] == [str(hybrid)]
    trained = model.load_weights(run / 'weights.pt')[1]
    assert (meta['elements'], meta['charges']) == (trained['elements'], trained['charges'])
    monkeypatch.setenv(config.WEIGHTS_ENV, str(out))
    mf = dft.RKS(gto.M(atom='He', basis='def2-svp', verbose=0), xc='b3lyp')
    mf.stdout = open(tmp_path / 'log', 'w')
    mf.verbose = 4
    assert 'b3lyp (trained on pbe densities)' in repr(model.load_predictor(mf))
    mf.stdout.close()
    assert 'trained for' not in (tmp_path / 'log').read_text()


def test_the_generalisation_gap_of_a_run(water_set, tmp_path):
    """benchmarks/training_curve.py --gap measures the final weights alike on training and
    validation samples: here the same molecule, so the same figures, and those of the last
    epoch's validation."""
    tc = load_benchmark('training_curve')
    folder, cache = water_set
    run = tmp_path / 'run'
    last = train([folder], [folder], str(run), epochs=1, cache_dir=cache, loader_workers=0,
                 guess_valid=1, **SMALL)[-1]
    gap = tc.gap(run, 1, valid=folder, cache_dir=cache)
    for split in ('train', 'valid'):
        assert gap[split]['samples'] == 1
        assert gap[split]['box_nmae'] == pytest.approx(last['valid_nmae'], rel=1e-6)
        assert gap[split]['coulomb'] == pytest.approx(last['valid_coulomb'], rel=1e-6)
        assert gap[split]['guess_nmae'] == pytest.approx(last['valid_guess_nmae'], rel=1e-6)
    text = tc.report({'steps': [3], 'measures': {}, 'gap': gap}, 'run')
    assert f"| train | {100 * last['valid_nmae']:.2f} % |" in text


def test_compare_weights_pairs_each_molecule_and_resumes(water_set, tmp_path, monkeypatch):
    """benchmarks/compare_weights.py measures both weights on every validation molecule as
    the run's validation does; weights against themselves differ nowhere, and a second call
    reads its stored rows instead of measuring again."""
    import importlib.util
    import pathlib
    spec = importlib.util.spec_from_file_location(
        'compare_weights',
        pathlib.Path(__file__).parents[1] / 'benchmarks' / 'compare_weights.py')
    cw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cw)
    folder, cache = water_set
    run = tmp_path / 'run-0.1'
    last = train([folder], [folder], str(run), epochs=1, cache_dir=cache, loader_workers=0,
                 guess_valid=1, **SMALL)[-1]
    weights = str(run / 'weights.pt')
    args = [weights, weights, '--valid', str(folder), '--out', str(tmp_path / 'cmp')]
    cw.main(args)
    result = json.loads((tmp_path / 'cmp' / 'run-0.1-vs-run-0.1.json').read_text())
    guess = result['folders'][str(folder)]['mlsr_guess']
    assert guess['samples'] == 1 and guess['b_better'] == guess['b_worse'] == 0
    assert guess['median_ratio'] == pytest.approx(1.0, abs=1e-12)
    assert guess['mean_a'] == pytest.approx(last['valid_guess_nmae'], rel=1e-6)
    from pyscf_mlguess.train import release as rel
    monkeypatch.setattr(rel, 'measure_sample', lambda *a: pytest.fail('measured again'))
    cw.main(args)
    assert '| projected guess | 1 |' in (tmp_path / 'cmp' / 'run-0.1-vs-run-0.1.md').read_text()
    cw.main(args + ['--cycles', '1'])        # the stored row gains the SCF cycles of each guess
    result = json.loads((tmp_path / 'cmp' / 'run-0.1-vs-run-0.1.json').read_text())
    row, = result['rows']
    assert row['a']['cycles'] == row['b']['cycles'] > 0
    cycles = result['folders'][str(folder)]['cycles']
    assert cycles['sum_a'] == cycles['sum_b'] == row['a']['cycles'] and cycles['b_better'] == 0
    assert (f"| {folder} | 1 | {row['a']['cycles']} | {row['b']['cycles']} | 1.000 | 0 | 0 | – |"
            in (tmp_path / 'cmp' / 'run-0.1-vs-run-0.1.md').read_text())


def _grafted(water_set, tmp_path, arch, **kwargs):
    """A small network trained, then fine-tuned from its weights with ``arch`` (a graft that
    starts at zero); checks that the fine-tune was measured first as the weights it came from.
    Returns (weights it came from, fine-tune folder, its parameters)."""
    folder, cache = water_set
    start = tmp_path / 'start' / 'weights.pt'
    train([folder], [folder], str(start.parent), epochs=1, cache_dir=cache, **SMALL)
    out = tmp_path / 'grafted'
    params = dict(SMALL, arch=arch, spacing=None, margin=None, cache_dir=cache,
                  init_weights=str(start), **kwargs)
    train([folder], [folder], str(out), **params)
    start_last = json.loads(model.load_weights(start)[1]['history'])[-1]
    meta = model.load_weights(out / 'weights.pt')[1]
    assert json.loads(meta['start_valid'])[folder]['valid_nmae'] == pytest.approx(
        start_last['valid_nmae'], rel=1e-6)
    return start, out, params


def test_a_flat_network_starts_one_with_a_branch(water_set, tmp_path):
    folder, _ = water_set
    start, out, params = _grafted(water_set, tmp_path, {'levels': 1}, epochs=2, sitting_epochs=1)
    net = model.load_weights(out / 'weights.pt')[0]
    assert net.arch == dict(model.load_weights(start)[0].arch, levels=1, level_blocks=2)
    history = train([folder], [folder], str(out), **params)              # resumes
    assert [h['epoch'] for h in history] == [1, 2]
    assert model.load_weights(out / 'weights.pt')[0].branch.up.weight.abs().max() > 0


def test_a_network_asked_for_more_blocks_gets_them(water_set, tmp_path):
    folder, _ = water_set
    start, out, params = _grafted(water_set, tmp_path, {'blocks': 3}, epochs=1)
    net = model.load_weights(out / 'weights.pt')[0]
    assert net.arch == dict(model.load_weights(start)[0].arch, blocks=3)
    assert net.body[2].conv2.weight.abs().max() > 0          # the new blocks learn
    with pytest.raises(ValueError, match='fixes the network and its box'):
        train([folder], [folder], str(tmp_path / 'shallower'),
              **dict(params, init_weights=str(out / 'weights.pt'), arch={'blocks': 2}))


def test_a_network_without_the_charge_starts_one_that_takes_it(water_set, tmp_path):
    folder, cache = water_set
    start = tmp_path / 'start'
    train([folder], [folder], str(start), epochs=1, cache_dir=cache, **SMALL)
    out = tmp_path / 'charged'
    params = dict(SMALL, arch={'charge_input': True}, spacing=None, margin=None)
    train([folder], [folder], str(out), epochs=2, sitting_epochs=1, cache_dir=cache,
          init_weights=str(start / 'weights.pt'), **params)
    net, meta = model.load_weights(out / 'weights.pt')
    assert net.charge_input and net.arch == dict(model.load_weights(start / 'weights.pt')[0].arch,
                                                 charge_input=True)
    # measured first as the weights it came from: the graft changes nothing at the start
    start_last = json.loads(model.load_weights(start / 'weights.pt')[1]['history'])[-1]
    assert json.loads(meta['start_valid'])[folder]['valid_nmae'] == pytest.approx(
        start_last['valid_nmae'], rel=1e-6)
    history = train([folder], [folder], str(out), epochs=2, sitting_epochs=1, cache_dir=cache,
                    init_weights=str(start / 'weights.pt'), **params)
    assert [h['epoch'] for h in history] == [1, 2]


def test_near_nucleus_terms_leave_the_grid_target_and_come_back_in_the_field(water_set, tmp_path):
    import numpy
    from pyscf_mlguess.cli import main
    from pyscf_mlguess.data.dataset import DensityDataset, molecule_of
    from pyscf_mlguess.grid import near_nucleus_terms
    from pyscf_mlguess.train.near_nucleus import mean_profiles
    folder, cache = water_set
    records = list(store.iter_records(folder))
    table = mean_profiles(records, 0.4, 0.8)
    assert sorted(table['profiles']) == ['H', 'O'] and table['atoms'] == {'H': 2, 'O': 1}
    r = numpy.array(table['r'])
    oxygen = numpy.array(table['profiles']['O'])
    assert r[-1] == pytest.approx(0.8) and oxygen[-1] == 0 and oxygen[0] < -0.5
    # without charge: the grid keeps the molecule's electrons
    assert abs(numpy.trapezoid(oxygen * r**2, r) * 4 * numpy.pi) < 1e-6
    mol = molecule_of(records[0])
    terms = near_nucleus_terms(mol, table)
    assert terms.charge == pytest.approx(0, abs=1e-6)
    plain = DensityDataset([folder], 0.2, 3.0, 2, cache_dir=cache)
    split = DensityDataset([folder], 0.2, 3.0, 2, cache_dir=cache, near_nucleus=table)
    part = split.near_nucleus_part(0)
    assert part.min() < -0.1               # the oxygen's spike, where a point falls near it
    torch.testing.assert_close(split[0]['delta_rho'][0],
                               plain[0]['delta_rho'][0] - torch.from_numpy(part))
    # a network trained so carries the table; its field adds the terms back
    assert main(['train', '--train', folder, '--valid', folder, '--out', str(tmp_path),
                 '--epochs', '1', '--steps', '1', '--batch', '1', '--patch', '8',
                 '--warmup', '1', '--channels', '4', '--blocks', '1', '--up-channels', '2',
                 '--spacing', '0.2', '--margin', '3', '--cache', cache,
                 '--near-nucleus', '0.8', '--near-nucleus-samples', '1']) == 0
    written = json.loads((tmp_path / 'near_nucleus.json').read_text())
    assert written['atoms'] == table['atoms'] and written['rc'] == 0.8
    for el, profile in table['profiles'].items():   # the same, up to threaded sums
        numpy.testing.assert_allclose(written['profiles'][el], profile, rtol=1e-8, atol=1e-12)
    predictor = model.CNNPredictor.from_file(tmp_path / 'weights.pt', device='cpu')
    assert predictor.meta['near_nucleus'] == written
    oxygen = numpy.array(written['profiles']['O'])
    from pyscf import dft
    from pyscf_mlguess.guess import predict_density
    field = predict_density(dft.RKS(mol, xc='pbe'), predictor=predictor).field
    nucleus = mol.atom_coords()[:1]
    grid_only = model.DensityField(field.values, field.grid)
    assert field.evaluate(nucleus)[0] - grid_only.evaluate(nucleus)[0] == pytest.approx(
        oxygen[0], rel=1e-6)
    assert field.charge == pytest.approx(grid_only.charge, abs=1e-6)
    with pytest.raises(SystemExit, match='rc 0.8 Bohr, not --near-nucleus 0.6'):
        main(['train', '--train', folder, '--out', str(tmp_path), '--near-nucleus', '0.6'])
