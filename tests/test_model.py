"""The network: layout, tiling, equivariance, charge conservation, weights files, the hook."""

import pathlib

import numpy
import pytest
import torch
from pyscf import dft, gto

from pyscf_mlguess import config, model
from pyscf_mlguess.grid import UniformGrid

from conftest import WATER, assert_density_matrix, assert_same_energy


@pytest.fixture(scope='module')
def net():
    torch.manual_seed(0)
    m = model.DensitySR(channels=4, blocks=2, up_channels=2).eval()
    with torch.no_grad():              # the tail starts at zero; give it a visible output
        torch.nn.init.normal_(m.tail.weight, std=2.0)
    return m


def test_pixel_shuffle_has_the_layout_of_refine():
    coarse = UniformGrid((0.0, 1.0, -2.0), 0.4, (3, 4, 5))
    fine = coarse.refine(2)
    f = lambda xyz: numpy.sin(xyz[:, 0]) + 2 * xyz[:, 1] ** 2 - xyz[:, 2]  # noqa: E731
    channels = numpy.empty((8,) + coarse.shape)
    for a in range(2):
        for b in range(2):
            for c in range(2):
                shift = (numpy.array([a, b, c]) - 0.5) * fine.spacing
                channels[4 * a + 2 * b + c] = f(coarse.coords() + shift).reshape(coarse.shape)
    out = model.PixelShuffle3d(2)(torch.from_numpy(channels)[None])[0, 0].numpy()
    numpy.testing.assert_allclose(out, f(fine.coords()).reshape(fine.shape), atol=1e-12)


@pytest.fixture(scope='module')
def multiscale():
    torch.manual_seed(1)
    m = model.DensitySR(channels=4, blocks=1, up_channels=2, levels=2, level_blocks=1).eval()
    with torch.no_grad():
        torch.nn.init.normal_(m.tail.weight, std=2.0)
    return m


@pytest.fixture(params=['flat', 'multiscale'])
def any_net(request, net, multiscale):
    return {'flat': net, 'multiscale': multiscale}[request.param]


def test_tiled_equals_untiled(any_net):
    net = any_net
    x = torch.rand(23, 17, 30)
    with torch.inference_mode():
        whole = model.predict_tiled(net, x)
        tiled = model.predict_tiled(net, x, tile=7)
    assert tiled.shape == (46, 34, 60)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-6 * float(whole.abs().max()))


def test_translation_equivariance(net):
    x = torch.zeros(30, 30, 30)
    x[8:16, 9:14, 10:15] = torch.rand(8, 5, 5) + 0.1
    shifted = torch.roll(x, shifts=(3, -2, 1), dims=(0, 1, 2))
    with torch.inference_mode():
        a = model.predict_tiled(net, x)
        b = model.predict_tiled(net, shifted)
    # away from the wrap-around of roll (the vacuum is constant, so the box faces do not show)
    inner = (slice(8, 52),) * 3
    torch.testing.assert_close(torch.roll(a, shifts=(6, -4, 2), dims=(0, 1, 2))[inner],
                               b[inner], rtol=0, atol=1e-5)


def test_receptive_radius_is_tight_enough(any_net):
    # a point change moves outputs within the receptive radius and nowhere else
    net = any_net
    x = torch.rand(51, 51, 51)
    y = x.clone()
    y[25, 25, 25] += 1.0
    with torch.inference_mode():
        diff = (model.predict_tiled(net, x) - model.predict_tiled(net, y)).abs()
    moved = torch.nonzero(diff.sum(dim=(1, 2)) > 0).flatten()
    r = net.receptive_radius
    assert moved.min() >= 2 * (25 - r) and moved.max() < 2 * (26 + r)
    # and the bound is not loose by more than the stride-2 alignment of each level
    assert moved.min() <= 2 * (25 - r + net.alignment) + 1


def test_multiscale_branch_widens_the_receptive_field(net, multiscale):
    assert multiscale.receptive_radius >= net.receptive_radius + 10
    assert multiscale.alignment == 4 and net.alignment == 1


def test_untrained_network_predicts_the_sad_density():
    x = torch.rand(1, 1, 10, 10, 10)
    with torch.no_grad():
        assert float(model.DensitySR()(x).abs().max()) == 0


def test_conserve_charge():
    rho_sad = torch.zeros(2, 2, 2)
    rho_sad[0, 0, 0], rho_sad[1, 1, 1] = 1.0, 3.0
    delta = torch.full((4, 4, 4), 0.01)              # one-signed: must not be wiped out
    out = model.conserve_charge(delta, rho_sad)
    assert float(out.sum()) == pytest.approx(0, abs=1e-6)
    # compensation only where the SAD has electrons, 3x more in the denser voxel
    assert float(out[0, 0, 2]) == pytest.approx(0.01)
    assert 0.01 - float(out[3, 3, 3]) == pytest.approx(3 * (0.01 - float(out[0, 0, 0])),
                                                         rel=1e-5)
    # an anion's extra electron (voxels of 0.5^3 Bohr^3): the network's field is kept and only
    # the missing charge is added, evenly where the SAD has electrons (valence-like), not 3x
    # more in the denser voxel
    ion = model.conserve_charge(delta, rho_sad, electrons=1.0, voxel_volume=0.125)
    assert float(ion.sum()) * 0.125 == pytest.approx(1.0, rel=1e-5)
    added = ion - delta
    assert float(added[0, 0, 2]) == 0
    assert float(added[3, 3, 3]) == pytest.approx(float(added[0, 0, 0]), rel=0.01)
    missing = 1.0 - float(delta.sum()) * 0.125
    assert float(added[0, 0, 0]) * 0.125 * 16 == pytest.approx(missing, rel=0.01)
    # a field that already holds the ion's charge is left as the network predicted it
    holds = delta / (float(delta.sum()) * 0.125)
    torch.testing.assert_close(model.conserve_charge(holds, rho_sad, 1.0, 0.125), holds)


def test_predict_delta_is_the_tiled_prediction_with_the_ions_charge(net):
    x = torch.rand(13, 11, 9)
    with torch.inference_mode():
        raw = model.predict_tiled(net, x)
        out = model.predict_delta(net, x, electrons=-1.0, voxel_volume=0.125, tile=5)
    assert float(raw.sum()) * 0.125 != pytest.approx(-1.0, abs=0.1)    # not already so
    assert float(out.sum()) * 0.125 == pytest.approx(-1.0, rel=1e-4)
    torch.testing.assert_close(out, model.conserve_charge(raw, x, -1.0, 0.125), rtol=0,
                               atol=1e-5 * float(raw.abs().max()))

@pytest.mark.parametrize('charge', [-1, 1])
def test_the_predicted_field_holds_the_ions_electrons(net, charge):
    """SAD densities are of neutral atoms: the field supplies the ion's charge, so SAD + field
    holds the molecule's electron count whatever the network predicts."""
    from pyscf_mlguess.grid import make_grid, sad_density_on_grid
    mol = gto.M(atom='O 0 0 0; H 0 0 1.8', unit='Bohr', basis='def2-svp', charge=charge,
                verbose=0)                                     # hydroxide, OH+
    predictor = model.CNNPredictor(net, {'input_spacing': 0.4, 'margin': 4.0}, device='cpu')
    grid = make_grid(mol, 0.4, 4.0)
    rho_sad = sad_density_on_grid(mol, grid)
    field = predictor(mol, grid, rho_sad)
    assert float(abs(field.values).max()) > 1e-3                  # the network did predict
    assert field.charge == pytest.approx(-charge, abs=1e-4)


def _write(tmp_path, net, name='pbe.pt', **meta):
    path = tmp_path / name
    info = dict(xc='pbe', input_spacing=0.3, margin=4.0, elements=['H', 'O'], charges=[0],
                spins=[0])
    info.update(meta)
    model.save_weights(path, net, info)
    return path


def test_weights_file_round_trip_and_hash(tmp_path, net):
    path = _write(tmp_path, net)
    blob = torch.load(path, weights_only=True)
    assert blob['arch']['channels'] == 4 and blob['meta']['xc'] == 'pbe'
    loaded, meta = model.load_weights(path, model.sha256_of(path))
    x = torch.rand(12, 12, 12)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x[None, None]), net(x[None, None]))
    with pytest.raises(model.WeightsFileError, match='SHA-256'):
        model.load_weights(path, '0' * 64)


def _bad_weights(path, net, kind):
    good = path.parent / 'good.pt'
    model.save_weights(good, net, dict(xc='pbe', input_spacing=0.3, margin=4.0))
    blob = torch.load(good, weights_only=True)
    if kind == 'truncated':
        path.write_bytes(good.read_bytes()[:2000])
    elif kind == 'text':
        path.write_text('this is not a weights file\n')
    elif kind == 'not a dict':
        torch.save([torch.zeros(3)], path)
    elif kind == 'bare state_dict':
        torch.save(net.state_dict(), path)
    elif kind == 'no arch':
        del blob['arch']
        torch.save(blob, path)
    elif kind == 'no input_spacing':
        del blob['meta']['input_spacing']
        torch.save(blob, path)
    elif kind == 'wrong tensors':
        blob['arch']['channels'] = 8
        torch.save(blob, path)
    elif kind == 'unknown arch argument':
        blob['arch']['depth'] = 3
        torch.save(blob, path)
    elif kind == 'format 2':
        blob['format'] = 2
        torch.save(blob, path)


@pytest.mark.parametrize('kind, says', [
    ('truncated', 'not a readable pyscf-mlguess weights file'),
    ('text', 'not a readable pyscf-mlguess weights file'),
    ('not a dict', 'holds a list'),
    ('bare state_dict', 'lacks format, arch, meta'),
    ('no arch', 'lacks arch'),
    ('no input_spacing', 'metadata lacks input_spacing'),
    ('wrong tensors', 'tensors do not fit'),
    ('unknown arch argument', 'is not one DensitySR accepts'),
    ('format 2', 'weights format 2'),
])
def test_a_bad_weights_file_is_named_with_its_defect(tmp_path, net, water, kind, says):
    path = tmp_path / 'pbe.pt'
    _bad_weights(path, net, kind)
    with pytest.raises(model.WeightsFileError, match=says) as err:
        model.load_weights(path)
    assert str(path) in str(err.value)
    mf = dft.RKS(water, xc='pbe')
    mf.mlsr_predictor = str(path)
    with pytest.raises(model.WeightsFileError, match=says):
        mf.get_init_guess(key='mlsr')


def test_user_weights_are_logged_with_their_hash(tmp_path, net, water):
    path = _write(tmp_path, net)
    out = tmp_path / 'log.txt'
    mf = dft.RKS(water.copy().build(verbose=2, output=str(out)), xc='pbe')
    model.load_predictor(mf, str(path))
    mf.stdout.flush()
    log = out.read_text()
    assert 'without a checksum check' in log and model.sha256_of(path) in log


def test_mlsr_runs_the_network_from_user_weights(tmp_path, net, water, monkeypatch):
    path = _write(tmp_path, net)
    monkeypatch.setenv(config.WEIGHTS_ENV, str(tmp_path))
    mf = dft.RKS(water, xc='pbe')
    predictor = model.load_predictor(mf)
    assert isinstance(predictor, model.CNNPredictor) and predictor.source == str(path)
    assert predictor.input_spacing == 0.3 and predictor.margin == 4.0
    dm0 = mf.get_init_guess(key='mlsr')   # PySCF's own default key here would be minao
    assert_density_matrix(mf, dm0)
    mf.init_guess = 'mlsr'
    mf.kernel()
    ref = dft.RKS(water, xc='pbe').run()
    assert_same_energy(mf, ref.e_tot)


def test_element_channels_through_the_guess(tmp_path, water, monkeypatch):
    torch.manual_seed(2)
    net = model.DensitySR(channels=4, blocks=1, up_channels=2, elements=['H', 'C', 'O']).eval()
    with torch.no_grad():
        torch.nn.init.normal_(net.tail.weight, std=2.0)
    x = torch.rand(4, 13, 11, 17)
    with torch.inference_mode():
        whole = model.predict_tiled(net, x)
        tiled = model.predict_tiled(net, x, tile=5)
        hidden = x.clone()
        hidden[1:] = 0                                  # the element channels are read
        blind = model.predict_tiled(net, hidden)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-6 * float(whole.abs().max()))
    assert float((blind - whole).abs().max()) > 1e-3 * float(whole.abs().max())
    path = _write(tmp_path, net)
    loaded, _ = model.load_weights(path)
    assert loaded.input_elements == ('H', 'C', 'O')
    monkeypatch.setenv(config.WEIGHTS_ENV, str(tmp_path))
    mf = dft.RKS(water, xc='pbe')
    predictor = model.load_predictor(mf)
    assert predictor.input_elements == ('H', 'C', 'O')
    assert_density_matrix(mf, mf.get_init_guess(key='mlsr'))


def _guess_log(mf, tmp_path):
    out = tmp_path / 'guess.log'
    mf.mol = mf.mol.copy().build(verbose=3, output=str(out))
    mf.stdout = mf.mol.stdout
    mf.verbose = 3
    mf.init_guess_by_mlsr()
    mf.stdout.flush()
    return out.read_text()


def test_molecules_outside_the_weights_domain_are_warned_about(tmp_path, net):
    path = _write(tmp_path, net)
    h2s = gto.M(atom='S 0 0 0; H 0 0.96 0.93; H 0 -0.96 0.93', basis='def2-svp', verbose=0)
    mf = dft.RKS(h2s, xc='pbe')
    mf.mlsr_predictor = str(path)
    log = _guess_log(mf, tmp_path)
    assert 'outside the domain of the weights: element(s) S (trained on H, O)' in log
    cation = gto.M(atom=WATER, basis='def2-svp', charge=1, spin=1, verbose=0)
    mf = dft.UKS(cation, xc='pbe')
    mf.mlsr_predictor = str(path)
    log = _guess_log(mf, tmp_path)
    assert 'charge 1 (trained on charges 0); spin 1 (trained on spins 0)' in log
    assert 'element(s)' not in log
    mf = dft.RKS(gto.M(atom=WATER, basis='def2-svp', verbose=0), xc='pbe')
    mf.mlsr_predictor = str(path)
    assert 'outside the domain' not in _guess_log(mf, tmp_path)


def test_outside_the_domain_the_guess_hands_over_to_minao_unless_told(tmp_path, net):
    path = _write(tmp_path, net)
    radical = gto.M(atom='O 0 0 0; H 0 0 0.97', basis='def2-svp', spin=1, verbose=0)
    mf = dft.UKS(radical, xc='pbe')
    mf.mlsr_predictor = str(path)
    log = _guess_log(mf, tmp_path)
    assert "spin 1 (trained on spins 0)" in log and "minao guess is used instead" in log
    assert set(mf.mlsr_timings) == {'minao', 'total'}
    assert mf.diis_start_cycle == 1 and 'diis_start_cycle' not in vars(mf)  # minao's as PySCF's
    numpy.testing.assert_array_equal(mf.init_guess_by_mlsr(), mf.get_init_guess(key='minao'))
    mf.mlsr_outside_domain = 'MODEL'                  # any case, like PySCF's keys
    log = _guess_log(mf, tmp_path)
    assert "spin 1 (trained on spins 0)" in log and "used anyway" in log
    assert set(mf.mlsr_timings) == {'grid', 'model', 'projection', 'total'}
    mf.mlsr_outside_domain = 'sad'
    with pytest.raises(ValueError, match="mlsr_outside_domain 'sad'; choose from minao, model"):
        mf.init_guess_by_mlsr()


# What each shipped family was trained on: PBE on QM9 and the derived S/Cl/Br/P/Si molecules and
# ions (pbe-0.3 on; pbe-0.4 also takes the charge); B3LYP on QM9 alone up to b3lyp-0.2, and from
# b3lyp-0.3 (pbe-0.4's tensors released for hybrids) the PBE domain.  A release that changes its
# domain changes this table.
DERIVED_DOMAIN = (['Br', 'C', 'Cl', 'F', 'H', 'N', 'O', 'P', 'S', 'Si'], [-1, 0, 1])
SHIPPED_DOMAIN = {'pbe': DERIVED_DOMAIN, 'b3lyp': DERIVED_DOMAIN}


@pytest.mark.parametrize('family', sorted(SHIPPED_DOMAIN))
def test_the_shipped_weights_state_their_domain(family, monkeypatch):
    monkeypatch.delenv(config.WEIGHTS_ENV, raising=False)
    meta = model.load_weights(model.find_weights(family))[1]
    elements, charges = SHIPPED_DOMAIN[family]
    assert meta['elements'] == elements
    assert meta['charges'] == charges and meta['spins'] == [0]


def test_hybrids_look_for_the_b3lyp_weights(tmp_path, net, water, monkeypatch):
    _write(tmp_path, net)                       # only pbe.pt in the folder
    monkeypatch.setenv(config.WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(model.WeightsNotFoundError, match='b3lyp.pt'):
        model.load_predictor(dft.RKS(water, xc='b3lyp'))


def test_a_folder_resolves_the_family_to_its_newest_version(tmp_path, net):
    for version in ('0.1', '0.2', '0.10'):
        _write(tmp_path, net, name=f'pbe-{version}.pt')
    _write(tmp_path, net, name='b3lyp-0.3.pt', xc='b3lyp')
    _write(tmp_path, net, name='pbe-0.9-old.pt')              # not a version name: ignored
    assert pathlib.Path(model.find_weights('pbe', tmp_path)).name == 'pbe-0.10.pt'
    assert pathlib.Path(model.find_weights('b3lyp', tmp_path)).name == 'b3lyp-0.3.pt'
    _write(tmp_path, net)                                     # the user's own pbe.pt wins
    assert pathlib.Path(model.find_weights('pbe', tmp_path)).name == 'pbe.pt'


def test_the_family_name_resolves_to_the_newest_shipped_version(monkeypatch):
    monkeypatch.delenv(config.WEIGHTS_ENV, raising=False)
    for family in ('pbe', 'b3lyp'):
        shipped = [n for n in model._shipped_hashes() if n.startswith(family + '-')]
        newest = max(shipped, key=lambda n: model._version_key(n, family))
        assert pathlib.Path(model.find_weights(family)).name == newest


def test_a_shipped_version_can_be_pinned_by_name(water, tmp_path, monkeypatch):
    monkeypatch.delenv(config.WEIGHTS_ENV, raising=False)
    name = min(n for n in model._shipped_hashes() if n.startswith('pbe-'))
    pinned = model.load_predictor(dft.RKS(water, xc='pbe'), name[:-len('.pt')])
    assert pathlib.Path(pinned.source).name == name
    assert model.shipped_version('pbe-9.9') is None and model.shipped_version('x/pbe-0.1') is None
    with pytest.raises(model.WeightsNotFoundError, match=f'a shipped version \\(.*{name}'):
        model.load_predictor(dft.RKS(water, xc='pbe'), 'pbe-9.9')
    mf = dft.RKS(water, xc='b3lyp')                 # the PBE weights for a hybrid: a warning
    mf.mol = water.copy().build(verbose=3, output=str(tmp_path / 'log'))
    mf.stdout, mf.verbose = mf.mol.stdout, 3
    model.load_predictor(mf, name)
    mf.stdout.flush()
    assert 'were trained for pbe, not for the B3LYP family' in (tmp_path / 'log').read_text()


def test_shipped_weights_must_be_in_the_hash_table(tmp_path, net, water, monkeypatch):
    path = _write(tmp_path, net)
    monkeypatch.setattr(model, 'find_weights', lambda family, p=None: str(path))
    monkeypatch.setattr(model, '_shipped_hashes', lambda: {'pbe.pt': '1' * 64})
    monkeypatch.delenv(config.WEIGHTS_ENV, raising=False)
    with pytest.raises(model.WeightsFileError, match='SHA-256'):
        model.load_predictor(dft.RKS(water, xc='pbe'))


def test_output_vanishes_where_the_sad_density_does():
    torch.manual_seed(1)
    net = model.DensitySR(channels=4, blocks=1, up_channels=2)
    torch.nn.init.constant_(net.tail.bias, 1.0)        # a network that is all offset
    rho = torch.zeros(12, 12, 12, dtype=torch.float32)
    rho[4:8, 4:8, 4:8] = 0.5
    with torch.no_grad():
        out = net(rho[None, None])[0, 0]
    vacuum = rho.repeat_interleave(2, 0).repeat_interleave(2, 1).repeat_interleave(2, 2) == 0
    assert torch.all(out[vacuum] == 0) and torch.all(out[~vacuum] != 0)
    ungated = model.DensitySR(channels=4, blocks=1, up_channels=2, gate_density=0)
    ungated.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert torch.all(ungated(rho[None, None])[0, 0][vacuum] != 0)


def test_a_refined_network_starts_as_the_interpolation_of_the_coarse_one():
    from scipy import ndimage
    torch.manual_seed(0)
    coarse = model.DensitySR(channels=4, blocks=1, upsample=1, up_channels=2,
                             elements=['H', 'O']).eval()
    torch.nn.init.normal_(coarse.tail.weight, std=0.1)       # a network that predicts something
    fine = model.refine_output(coarse)
    assert fine.upsample == 2 and fine.arch == dict(coarse.arch, upsample=2)
    x = torch.rand(1, 3, 9, 8, 7)
    with torch.no_grad():
        # sub-voxel a of voxel i sits at i - 1/4 + a/2 (UniformGrid.refine): linear interpolation
        # there of the coarse output, the gate aside (it is the same nearest-voxel factor)
        coarse.gate_density = fine.gate_density = 0
        c, f = coarse(x)[0, 0].numpy(), fine(x)[0, 0].numpy()
    at = numpy.meshgrid(*[(numpy.arange(2 * n) - 0.5) / 2 for n in c.shape], indexing='ij')
    expected = ndimage.map_coordinates(c, at, order=1, mode='nearest')
    numpy.testing.assert_allclose(f, expected, atol=1e-5 * abs(c).max())
    assert abs(c).max() > 1e-3
    with pytest.raises(ValueError, match='upsample 2'):
        model.refine_output(fine)


def test_a_network_given_a_branch_starts_as_the_flat_one():
    torch.manual_seed(0)
    flat = model.DensitySR(channels=4, blocks=1, upsample=1, elements=['H', 'O']).eval()
    torch.nn.init.normal_(flat.tail.weight, std=0.1)         # a network that predicts something
    wide = model.add_branch(flat, levels=2, level_blocks=1)
    assert wide.arch == dict(flat.arch, levels=2, level_blocks=1)
    assert wide.receptive_radius > flat.receptive_radius and wide.alignment == 4
    x = torch.rand(1, 3, 13, 10, 9)                          # not a multiple of the alignment
    with torch.no_grad():
        torch.testing.assert_close(wide(x), flat(x), rtol=0, atol=0)
        # once the way back is not zero, the branch changes the output, and tiles stay exact
        torch.nn.init.normal_(wide.branch.up.weight, std=0.1)
        assert (wide(x) - flat(x)).abs().max() > 1e-4
        torch.testing.assert_close(model.predict_tiled(wide, x[0], tile=4), wide(x)[0, 0],
                                   rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match='already has a multi-scale branch'):
        model.add_branch(wide, levels=1)
    with pytest.raises(ValueError, match='levels 0'):
        model.add_branch(flat, levels=0)


def test_a_network_given_the_charge_starts_as_the_one_without_it():
    torch.manual_seed(0)
    plain = model.DensitySR(channels=4, blocks=1, upsample=1, elements=['H', 'O']).eval()
    torch.nn.init.normal_(plain.tail.weight, std=0.1)        # a network that predicts something
    charged = model.add_charge_input(plain)
    assert charged.charge_input and charged.arch == dict(plain.arch, charge_input=True)
    assert charged.head[0].weight.shape[1] == plain.head[0].weight.shape[1] + 1
    x = torch.rand(1, 3, 9, 8, 7)
    with torch.no_grad():
        before = plain(x)
        for electrons in (-1, 0, 1, 2):
            torch.testing.assert_close(charged(x, electrons), before, rtol=0, atol=0)
        # once its filters for the charge are not zero, the charge changes the output
        torch.nn.init.normal_(charged.head[0].weight[:, -1:], std=0.1)
        assert (charged(x, 1) - charged(x, -1)).abs().max() > 1e-4
        # a batch: one charge per molecule
        both = charged(torch.cat([x, x]), torch.tensor([1.0, -1.0]))
        torch.testing.assert_close(both[1:], charged(x, -1))
        # tiles see the same constant channel: tiled equals whole
        torch.testing.assert_close(model.predict_tiled(charged, x[0], tile=4, electrons=1),
                                   charged(x, 1)[0, 0], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match='electrons = -mol.charge'):
        charged(x)
    with pytest.raises(ValueError, match='already takes the charge'):
        model.add_charge_input(charged)
    # the weights file round-trips the architecture
    restored = model.DensitySR(**charged.arch)
    restored.load_state_dict(charged.state_dict())
    assert restored.charge_input


def test_the_predictor_gives_the_network_the_molecules_charge(monkeypatch):
    from pyscf import gto
    from pyscf_mlguess.grid import make_grid
    seen = []

    class Spy(model.DensitySR):
        def forward(self, rho_sad, electrons=None):
            seen.append(electrons)
            return super().forward(rho_sad, electrons)

    net = Spy(channels=4, blocks=1, upsample=1, charge_input=True)
    predictor = model.CNNPredictor(net, {'input_spacing': 0.3, 'margin': 3.0}, device='cpu')
    mol = gto.M(atom='O 0 0 0; H 0 0 0.97', charge=-1, verbose=0)
    grid = make_grid(mol, 0.3, 3.0)
    field = predictor(mol, grid, numpy.random.default_rng(0).random(grid.shape))
    assert field.values.shape == grid.shape
    assert seen and all(e == 1 for e in seen)


def test_a_network_given_more_blocks_starts_as_the_shallower_one():
    torch.manual_seed(0)
    shallow = model.DensitySR(channels=4, blocks=2, upsample=2, up_channels=2,
                              charge_input=True).eval()
    torch.nn.init.normal_(shallow.tail.weight, std=0.1)      # a network that predicts something
    deeper = model.add_blocks(shallow, 4)
    assert deeper.arch == dict(shallow.arch, blocks=4) and len(deeper.body) == 5
    assert deeper.receptive_radius == shallow.receptive_radius + 4     # 2 blocks of 2 3³ convs
    x = torch.rand(1, 1, 9, 8, 7)
    with torch.no_grad():
        torch.testing.assert_close(deeper(x, electrons=1), shallow(x, electrons=1),
                                   rtol=0, atol=0)
        # the old blocks and the body's last convolution are the same tensors' values
        torch.testing.assert_close(deeper.body[4].weight, shallow.body[2].weight)
        # once a new block's second convolution is not zero, it changes the output
        torch.nn.init.normal_(deeper.body[3].conv2.weight, std=0.1)
        assert (deeper(x, electrons=1) - shallow(x, electrons=1)).abs().max() > 1e-5
    with pytest.raises(ValueError, match='has 4 residual blocks; asked for 4'):
        model.add_blocks(deeper, 4)
