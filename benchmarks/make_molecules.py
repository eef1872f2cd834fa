"""Write the xyz files of a named molecule set from SMILES with RDKit (ETKDG + MMFF).

    python benchmarks/make_molecules.py oracle

Geometries are committed; this script documents and reproduces them (fixed random seed).
"""

import argparse
import pathlib

SETS = {
    # Not in QM9 (S, Cl, P, or more than 9 heavy atoms): the projection oracle's molecules.
    'oracle': {
        'thiophene': 'c1ccsc1',
        'dimethyl_sulfoxide': 'CS(C)=O',
        'chlorobenzene': 'Clc1ccccc1',
        'trimethylphosphine': 'CP(C)C',
        'naphthalene': 'c1ccc2ccccc2c1',
        'methyl_benzoate': 'COC(=O)c1ccccc1',
    },
}


def write_set(name, out_dir, seed=7):
    from rdkit import Chem
    from rdkit.Chem import AllChem
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for mol_name, smiles in SETS[name].items():
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
            raise RuntimeError(f'RDKit could not embed {mol_name} ({smiles})')
        AllChem.MMFFOptimizeMolecule(mol)
        block = Chem.MolToXYZBlock(mol).splitlines()
        block[1] = f'{mol_name} {smiles} charge=0 spin=0 (RDKit ETKDG+MMFF, seed {seed})'
        (out_dir / f'{mol_name}.xyz').write_text('\n'.join(block) + '\n')


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('set', choices=sorted(SETS))
    parser.add_argument('--out', default=None, help='folder (default benchmarks/molecules/SET)')
    args = parser.parse_args()
    write_set(args.set, args.out or pathlib.Path(__file__).parent / 'molecules' / args.set)
