"""What PySCF's first SCF step does to each guess: the start and the density after one step.

An SCF's first cycle builds the Fock matrix of the guess, diagonalises it and fills the lowest
orbitals (no DIIS history yet; PySCF's ``get_fock`` at cycle 0, then ``eig`` and
``get_occ``).  Where the Fock matrix of the guess has a near-degenerate HOMO and LUMO, a small
error of the guess can reorder them, and that step fills the wrong orbital: a good guess then
buys little, whatever its own error.  For each molecule this converges the reference, then for
``minao``, ``mlsr`` (the shipped weights, or ``--weights``) and ``oracle`` (``mlsr`` with the
exact correction on the same box) records the energy and density error (NMAE) of the guess and
of the density after that first step, and the HOMO and LUMO of the guess's Fock matrix beside
the converged ones and beside those of the projection's own Fock matrix (of the predicted
density, before it became a density matrix).  ``--level-shift`` also records that step with
PySCF's ``mf.level_shift`` (as the SCF's ``get_fock`` applies it), which favours the guess's
occupied space.

    python benchmarks/first_step.py --molecules derived-test --n 50 --charges=-1,1 \
        --level-shift 0.1 --out benchmarks/results/first_step/derived-test-ions  # resumable

Writes ``results.json`` (one record per molecule and guess) and ``results.md``.
"""

import argparse
import json
import pathlib
import statistics

from pyscf import dft, gto
from pyscf.scf.hf import level_shift as shift_virtuals

import pyscf_mlguess  # noqa: F401  (registers 'mlsr')
from pyscf_mlguess.benchmark.molecules import load_molecules
from pyscf_mlguess.metrics import default_grids, density_nmae
from pyscf_mlguess.model import load_predictor
from pyscf_mlguess.oracle import OraclePredictor

GUESSES = ('minao', 'mlsr', 'oracle')


def first_step(mf, dm0, level_shift=0.0):
    """PySCF's first SCF step from ``dm0``: (density matrix after it, HOMO and LUMO of F[dm0],
    and with ``level_shift`` the density matrix after the step with that shift, as PySCF's
    ``get_fock`` applies it in the SCF)."""
    s1e = mf.get_ovlp()
    fock = mf.get_fock(dm=dm0)
    energies, coeff = mf.eig(fock, s1e)
    dm1 = mf.make_rdm1(coeff, mf.get_occ(energies, coeff))
    nocc = mf.mol.nelectron // 2
    shifted = None
    if level_shift:
        e_s, c_s = mf.eig(shift_virtuals(s1e, dm0 * .5, fock, level_shift), s1e)
        shifted = mf.make_rdm1(c_s, mf.get_occ(e_s, c_s))
    return dm1, float(energies[nocc - 1]), float(energies[nocc]), shifted


def projection_levels(dm0):
    """HOMO and LUMO of the projection's own Fock matrix (built from the predicted density), which
    the guess diagonalised: the orbital energies the guess's density matrix is tagged with."""
    occupied = dm0.mo_occ > 0
    return float(dm0.mo_energy[occupied].max()), float(dm0.mo_energy[~occupied].min())


def molecule_rows(name, entry, xc, basis, weights=None, level_shift=0.0):
    mol = gto.M(atom=entry['atom'], charge=entry['charge'], spin=entry['spin'], basis=basis,
                verbose=0)
    if mol.spin:
        raise ValueError(f'{name}: open shell (spin {mol.spin}); this study runs closed shells')
    ref = dft.RKS(mol, xc=xc)
    ref.conv_tol = 1e-10
    ref.kernel()
    if not ref.converged:
        raise RuntimeError(f'{name}: the reference SCF did not converge')
    dm_ref = ref.make_rdm1()
    grids = default_grids(mol, ref.grids)
    nocc = mol.nelectron // 2
    network = load_predictor(ref, weights)
    # the exact correction on the network's box (its spacing and margin)
    oracle = OraclePredictor(dm_ref, network.input_spacing, network.margin, network.refine)
    rows = []
    for guess in GUESSES:
        mf = dft.RKS(mol, xc=xc)
        mf.grids = ref.grids
        mf.mlsr_predictor = oracle if guess == 'oracle' else network
        density = None if guess == 'minao' else pyscf_mlguess.predict_density(mf)
        # the network runs once: its density is projected here and its levels taken below
        dm0 = (mf.get_init_guess(mol, 'minao') if density is None
               else mf.init_guess_by_mlsr(mol, density=density))
        dm1, homo, lumo, shifted = first_step(mf, dm0, level_shift)
        rows.append(dict(
            molecule=name, xc=xc, basis=basis, charge=mol.charge, nao=mol.nao, guess=guess,
            level_shift=level_shift,
            start_de=float(mf.energy_tot(dm0) - ref.e_tot),
            start_nmae=density_nmae(mol, dm0, dm_ref, grids),
            step_de=float(mf.energy_tot(dm1) - ref.e_tot),
            step_nmae=density_nmae(mol, dm1, dm_ref, grids),
            homo=homo, lumo=lumo, homo_ref=float(ref.mo_energy[nocc - 1]),
            lumo_ref=float(ref.mo_energy[nocc])))
        if density is not None:
            levels = projection_levels(dm0)
            rows[-1].update(projection_homo=levels[0], projection_lumo=levels[1])
        if shifted is not None:
            rows[-1].update(shifted_step_de=float(mf.energy_tot(shifted) - ref.e_tot),
                            shifted_step_nmae=density_nmae(mol, shifted, dm_ref, grids))
    return rows


def kind(row):
    return {-1: 'anions', 1: 'cations'}.get(row['charge'], 'neutral')


def markdown(rows):
    lines = ['# The first SCF step from each guess', '',
             'Medians per class. *start*: the guess; *after one step*: the density PySCF\'s first '
             'SCF cycle makes from it (Fock of the guess, diagonalised, lowest orbitals filled). '
             'Energies in Hartree above the converged one; gap: LUMO - HOMO of the guess\'s '
             'Fock matrix (converged: of the final one).'
             + ''.join(sorted({f' Level shift: {r["level_shift"]:g} Ha.' for r in rows
                               if r.get('shifted_step_de') is not None})), '',
             '| class | molecules | guess | start dE | start NMAE | after one step dE | '
             'after one step NMAE | gap | projection\'s gap | converged gap | '
             'step worse than start | with the level shift: dE, NMAE |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for group in ('neutral', 'cations', 'anions'):
        for guess in GUESSES:
            rs = [r for r in rows if kind(r) == group and r['guess'] == guess]
            if not rs:
                continue

            def med(f):
                return statistics.median(f(r) for r in rs)
            worse = sum(r['step_nmae'] > r['start_nmae'] for r in rs)
            lines.append(
                f"| {group} | {len(rs)} | {guess} | {med(lambda r: r['start_de']):+.3f} | "
                f"{100 * med(lambda r: r['start_nmae']):.2f} % | "
                f"{med(lambda r: r['step_de']):+.3f} | "
                f"{100 * med(lambda r: r['step_nmae']):.2f} % | "
                f"{med(lambda r: r['lumo'] - r['homo']):.3f} | "
                + (f"{med(lambda r: r['projection_lumo'] - r['projection_homo']):.3f} | "
                   if 'projection_homo' in rs[0] else '- | ')
                + f"{med(lambda r: r['lumo_ref'] - r['homo_ref']):.3f} | {worse} of {len(rs)} | "
                + (f"{med(lambda r: r['shifted_step_de']):+.3f}, "
                   f"{100 * med(lambda r: r['shifted_step_nmae']):.2f} % |"
                   if 'shifted_step_de' in rs[0] else '- |'))
    lines += ['', '| molecule | guess | start dE | start NMAE | after one step dE | '
              'after one step NMAE | HOMO | LUMO | converged HOMO, LUMO | '
              'projection\'s HOMO, LUMO |', '|' + '---|' * 10]
    for r in rows:
        lines.append(f"| {r['molecule']} | {r['guess']} | {r['start_de']:+.3f} | "
                     f"{100 * r['start_nmae']:.2f} % | {r['step_de']:+.3f} | "
                     f"{100 * r['step_nmae']:.2f} % | {r['homo']:.3f} | {r['lumo']:.3f} | "
                     f"{r['homo_ref']:.3f}, {r['lumo_ref']:.3f} | "
                     + (f"{r['projection_homo']:.3f}, {r['projection_lumo']:.3f} |"
                        if 'projection_homo' in r else '- |'))
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--molecules', required=True,
                        help='folder of .xyz files or a built-in set (qm9-test, derived-test)')
    parser.add_argument('--n', type=int, help='first N molecules only')
    parser.add_argument('--xc', default='pbe')
    parser.add_argument('--basis', default='def2-svp')
    parser.add_argument('--weights', help='mlsr weights (default: the shipped ones)')
    parser.add_argument('--charges', help='comma-separated: only the molecules of these charges '
                        '(e.g. --charges=-1,1, the ions)')
    parser.add_argument('--level-shift', type=float, default=0.0, metavar='HARTREE')
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / 'results.json'
    stored = json.loads(path.read_text()) if path.exists() else {'records': []}
    rows = stored['records']
    done = {r['molecule'] for r in rows}
    settings = dict(xc=args.xc, basis=args.basis, weights=args.weights,
                    level_shift=args.level_shift)
    if rows and stored.get('settings') != settings:
        raise SystemExit(f'{path} was made with other settings; use another --out')
    charges = [int(c) for c in args.charges.split(',')] if args.charges else None
    for name, entry in load_molecules(args.molecules, args.n, charges=charges):
        if name in done or isinstance(entry, str) or entry['spin']:
            continue
        rows += molecule_rows(name, entry, args.xc, args.basis, args.weights, args.level_shift)
        path.write_text(json.dumps({'settings': settings, 'records': rows}, indent=1))
        print(name, flush=True)
    (out / 'results.md').write_text(markdown(rows))
    return rows


if __name__ == '__main__':
    main()
