"""Where an ion's charge goes in the predicted field: the guess NMAE of each placement.

    python benchmarks/ion_charge.py --weights pbe-0.3    # ions of the derived validation split
    python benchmarks/ion_charge.py --neutral            # control: QM9 validation molecules

SAD densities are of neutral atoms, so for an ion the predicted correction must carry the charge
(:func:`pyscf_mlguess.model.conserve_charge`).  Placements compared (the network's own net
charge is always removed in proportion to the SAD density first, except in ``keep*``):

* ``zero``: the ion's charge left out (the field is neutral; the projection's aufbau alone
  sets the electron count, as minao does);
* ``sad``: the charge in proportion to the SAD density (mostly in the atomic cores);
* ``sat<g>``: the charge with weight rho / (rho + g), near-uniform inside the molecule;
* ``keep<g>``: the network's own field kept, charge and shape; only its mismatch with the ion's
  charge (net minus ``-mol.charge``) removed with rho / (rho + g), ``keep`` in proportion to
  the SAD density.  For a network trained on ions, whose field already carries the charge
  where the extra electron or the hole sits.  ``keep0.003`` is the default for ions since
  2026-12-01 (``sat0.003`` before), ``keep`` for neutral molecules.

Each row also records the network's own net charge (electrons in its raw field) against the
ion's.  ``--weights``: a shipped version or a weights file (default: the newest PBE).  The
projected guess is measured against the stored reference density (PySCF's default integration
grid).  Rows go to ``benchmarks/results/ion_charge/<name>.json``.  Selection is on training or
validation molecules, never on the benchmark sets: the first study (pbe-0.1, which never saw an
ion) ran on the training ions (``--folder data/pbe_def2svp_derived/train --name ions``); weights
trained on those ions are measured on the validation ones.
"""

import argparse
import json
import pathlib
import statistics

from pyscf import dft

import pyscf_mlguess.model as model
from pyscf_mlguess.data import store
from pyscf_mlguess.data.dataset import molecule_of
from pyscf_mlguess.guess import init_guess_by_mlsr
from pyscf_mlguess.metrics import default_grids, density_nmae

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / 'benchmarks' / 'results' / 'ion_charge'
CONSERVE = model.conserve_charge
#: The network's net charge (electrons) at each call of a placement.
NET = []


def _weight(rho_sad, f, g):
    r = (rho_sad[0] if rho_sad.ndim == 4 else rho_sad).clamp(min=0)
    return model._on_output_grid(r if g is None else r / (r + g), f)


def _relative(folder):
    """``folder`` relative to the repository when inside it (results name no machine paths)."""
    path = pathlib.Path(folder).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(folder)


def placement(kind, g=None):
    """A conserve_charge stand-in for one placement (see the module docstring)."""
    def conserve(delta, rho_sad, electrons=0.0, voxel_volume=1.0):
        f = delta.shape[-1] // rho_sad.shape[-1]
        NET.append(float(delta.sum()) * voxel_volume)
        if kind == 'keep':
            w = _weight(rho_sad, f, g)
            return delta - w * ((delta.sum() - electrons / voxel_volume) / w.sum())
        delta = CONSERVE(delta, rho_sad, 0.0, voxel_volume)
        if kind == 'zero' or not electrons:
            return delta
        w = _weight(rho_sad, f, None if kind == 'sad' else g)
        return delta + w * (electrons / voxel_volume / w.sum())
    return conserve


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--neutral', action='store_true', help='the control on neutral molecules')
    p.add_argument('--weights', help='shipped version (pbe-0.3) or weights file; default: the '
                   'newest shipped PBE weights')
    p.add_argument('--folder', help='data folder of the ions (default: the derived validation '
                   'split)')
    p.add_argument('--name', help='results file stem (default: ions-<weights> or neutral)')
    p.add_argument('--n', type=int, default=None, help='first N molecules')
    p.add_argument('--out', default=str(OUT), help='results folder')
    args = p.parse_args()
    path, _ = model.resolve_weights('pbe', args.weights)
    predictor = model.CNNPredictor.from_file(path)
    stem = pathlib.Path(path).stem
    if args.neutral:
        folder, name = ROOT / 'data' / 'pbe_def2svp' / 'valid', args.name or 'neutral'
        # 'one<g>' in neutral.json: the keep<g> placement under its first name
        variants = {'sad': CONSERVE, 'one0.03': placement('keep', 0.03),
                    'one0.003': placement('keep', 0.003)}
    else:
        folder = args.folder or ROOT / 'data' / 'pbe_def2svp_derived' / 'valid'
        name = args.name or f'ions-{stem}'
        variants = {'zero': placement('zero'), 'sad': placement('sad')}
        variants.update({f'sat{g}': placement('sat', g) for g in (0.1, 0.03, 0.01, 0.003, 0.001)})
        variants.update({'keep': placement('keep')})
        variants.update({f'keep{g}': placement('keep', g) for g in (0.03, 0.003)})
    records = [r for r in store.iter_records(str(folder)) if args.neutral or r['charge']]
    rows = {}
    for r in records[:args.n]:
        mol = molecule_of(r)
        dm_ref = store.density_matrix_from_orbitals(r['mo_occ_coeff'], mol.intor('int1e_ovlp'))
        row = {}
        for k, conserve in variants.items():
            model.conserve_charge = conserve
            NET.clear()
            mf = dft.RKS(mol, xc=r['xc'])
            mf.mlsr_outside_domain = 'model'
            mf.mlsr_predictor = predictor
            row[k] = density_nmae(mol, init_guess_by_mlsr(mf), dm_ref,
                                  default_grids(mol, mf.grids))
        rows[r['key']] = {'charge': r['charge'], 'network_electrons': NET[0] if NET else None,
                          'guess_nmae': row}
        print(r['key'], r['charge'], f'net {rows[r["key"]]["network_electrons"]:+.2f}',
              ' '.join(f'{k} {v:.2%}' for k, v in row.items()), flush=True)
    model.conserve_charge = CONSERVE
    median = {k: statistics.median(x['guess_nmae'][k] for x in rows.values()) for k in variants}
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f'{name}.json').write_text(json.dumps(
        {'weights': model.weights_id(path), 'folder': _relative(folder), 'median': median,
         'rows': rows}, indent=1))
    print('median', ' '.join(f'{k} {v:.2%}' for k, v in median.items()))


if __name__ == '__main__':
    main()
