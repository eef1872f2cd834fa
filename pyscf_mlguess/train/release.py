"""Release trained weights: measure them on the held-out test split and write the shipped file.

    pyscf-mlguess release runs/pbe/weights.pt --test data/pbe_def2svp/test --out weights/pbe-0.2.pt

For every test sample, against the converged density (the stored reference orbitals):

* on the model's own boxes (the target grid, as in validation): NMAE of the SAD density and of
  SAD + the predicted delta_rho;
* on PySCF's default integration grid (all-electron, Becke weights): NMAE of the SAD density
  matrix, of the minao guess, of the model density (SAD + the predicted delta_rho, interpolated
  as the projection does) and of the 'mlsr' guess (the projected, idempotent density matrix).

The means go into the weights' metadata (``test``) together with the dataset's identity (its
shard files' SHA-256), and the file is written with its line in the folder's ``SHA256SUMS``.
A per-sample table is written next to it as ``<name>.test.json``.

``xc`` releases the same tensors for another functional: the file's ``xc`` becomes it (so the
guess takes the file for that functional's family without the other-family warning) and
``trained_xc`` keeps the functional of the training references.  It is for a network measured
better on the other family's validation densities than that family's own weights; the test
folders must then hold references of the new functional, so the released numbers are its own.
"""

import datetime
import glob
import hashlib
import json
import os

import numpy

from pyscf_mlguess.data import store
from pyscf_mlguess.data.dataset import DensityDataset, molecule_of
from pyscf_mlguess.model import CNNPredictor, load_weights, save_weights, sha256_of

SUMS = 'SHA256SUMS'
# the densities measure_sample scores, in the order of the tables
DENSITIES = ('sad', 'minao', 'model', 'mlsr_guess')


def dataset_identity(folders):
    """'<n> shards, sha256:<digest>' over the shard files of ``folders`` (sorted)."""
    h = hashlib.sha256()
    shards = sorted(p for f in folders for p in glob.glob(os.path.join(f, store.SHARD_GLOB)))
    for path in shards:
        h.update(os.path.basename(path).encode())
        h.update(sha256_of(path).encode())
    return f'{len(shards)} shards, sha256:{h.hexdigest()[:16]}'


def measure_sample(record, predictor):
    """Integration-grid NMAEs of one test sample (see the module docstring)."""
    from pyscf import dft
    from pyscf_mlguess.guess import init_guess_by_mlsr, predict_density
    from pyscf_mlguess.metrics import default_grids, density_nmae
    mol = molecule_of(record)
    dm_ref = store.density_matrix_from_orbitals(record['mo_occ_coeff'], mol.intor('int1e_ovlp'))
    mf = dft.RKS(mol, xc=record['xc'])
    grids = default_grids(mol, mf.grids)
    density = predict_density(mf, predictor=predictor)      # the network runs once
    dm_sad = density.dm_sad
    # the guess builds the field's splines inside its timed projection; the model NMAE reuses them
    dm_mlsr = init_guess_by_mlsr(mf, density=density)
    return {'key': record['key'], 'nao': mol.nao,
            'sad': density_nmae(mol, dm_sad, dm_ref, grids),
            'minao': density_nmae(mol, mf.init_guess_by_minao(mol), dm_ref, grids),
            'model': density_nmae(mol, dm_sad, dm_ref, grids, density.field),
            'mlsr_guess': density_nmae(mol, dm_mlsr, dm_ref, grids),
            'mlsr_timings': mf.mlsr_timings}


def load_test(weights, test_folders, max_samples=None):
    """``(model, meta, predictor, dataset)``: the network of ``weights``, its metadata, a CPU
    predictor of it and the converged samples of ``test_folders`` on its boxes (the first
    ``max_samples``); a ValueError if there are none."""
    model, meta = load_weights(weights)
    predictor = CNNPredictor(model, meta, device='cpu')
    test = DensityDataset(test_folders, meta['output_spacing'], meta['margin'], model.upsample,
                          elements=model.input_elements)
    if max_samples is not None:
        test.keep_first(max_samples)
    if not len(test):
        raise ValueError(f'no converged test samples in {test_folders}')
    return model, meta, predictor, test


def summarise(rows):
    """``samples`` and the mean and median of each density's NMAE over ``rows`` (the dicts of
    :func:`measure_sample`): ``nmae_<density>`` and ``nmae_<density>_median``."""
    summary = {'samples': len(rows)}
    for k in DENSITIES:
        values = [r[k] for r in rows]
        summary[f'nmae_{k}'] = float(numpy.mean(values))
        summary[f'nmae_{k}_median'] = float(numpy.median(values))
    return summary


def update_sums(folder, name, digest):
    """Put ``<digest>  <name>`` into ``folder/SHA256SUMS`` (replacing an older line)."""
    path = os.path.join(folder, SUMS)
    lines = open(path).read().splitlines() if os.path.exists(path) else [
        '# SHA-256 of the shipped weights, checked before loading: <sha256>  <file>']
    lines = [ln for ln in lines if ln.startswith('#') or ln.split()[-1:] != [name]]
    lines.append(f'{digest}  {name}')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def retarget_xc(meta, xc, records):
    """``meta`` released for the functional ``xc`` (see the module docstring); ``records``, the
    test samples, must all be references of ``xc``'s family."""
    from pyscf_mlguess.model import xc_family
    try:
        family = xc_family(xc)
    except KeyError as err:
        raise ValueError(f'release --xc {xc}: not a functional PySCF knows ({err})') from None
    wrong = sorted({r['xc'] for r in records if xc_family(r['xc']) != family})
    if wrong:
        raise ValueError(f'release --xc {xc}: the test folders hold {", ".join(wrong)} '
                         f'references; measure the weights on {family.upper()}-family '
                         f'references (e.g. data/{family}_def2svp/test)')
    if xc_family(meta['xc']) == family:
        return meta
    return dict(meta, xc=xc, trained_xc=meta.get('trained_xc', meta['xc']))


def release(weights, test_folders, out, max_samples=None, progress=True, xc=None):
    """Measure ``weights`` on ``test_folders`` and write the release file ``out``; ``xc``
    releases them for another functional (see the module docstring)."""
    from tqdm import tqdm
    from pyscf_mlguess.train.loop import evaluate
    model, meta, predictor, test = load_test(weights, test_folders, max_samples)
    if xc is not None:
        meta = retarget_xc(meta, xc, test.records)
    rows = [measure_sample(rec, predictor)
            for rec in tqdm(test.records, desc='test samples', disable=not progress)]
    box_model, box_sad = evaluate(model, test, 'cpu')
    summary = dict(summarise(rows), box_nmae_model=box_model, box_nmae_sad=box_sad)
    summary['folders'] = [str(f) for f in test_folders]
    # the training data's identity is fixed when weights are first released; a re-release
    # (the same tensors measured again) keeps it even if the folders have grown since
    dataset = meta.get('dataset') or dataset_identity(meta.get('train_folders', []))
    meta = dict(meta, test=summary, released=datetime.date.today().isoformat(), dataset=dataset)
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    save_weights(out, model, meta)
    update_sums(folder, os.path.basename(out), sha256_of(out))
    stem = os.path.splitext(out)[0]
    with open(stem + '.test.json', 'w') as f:
        json.dump({'summary': summary, 'rows': rows}, f, indent=1)
    return summary
