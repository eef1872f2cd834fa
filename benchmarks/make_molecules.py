"""Write the xyz files of a named molecule set from SMILES with RDKit (ETKDG + MMFF).

    python benchmarks/make_molecules.py oracle
    python benchmarks/make_molecules.py finetune

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
    # What QM9 lacks, for the fine-tuning demonstration (pyscf-mlguess finetune): molecules with
    # S, Cl, P, Si or Br, and closed-shell anions and cations.  Small (at most 10 heavy atoms)
    # so that their reference calculations fit a CPU; none is in the oracle set.
    'finetune': {
        # sulfur
        'methanethiol': 'CS', 'dimethyl_sulfide': 'CSC', 'ethanethiol': 'CCS',
        'dimethyl_disulfide': 'CSSC', 'thiolane': 'C1CCSC1', 'methylthiophene': 'Cc1cccs1',
        'dimethyl_sulfone': 'CS(=O)(=O)C', 'thioacetic_acid': 'CC(=O)S', 'thiourea': 'NC(=S)N',
        'thiazole': 'c1cscn1', 'methanesulfonamide': 'CS(N)(=O)=O', 'mercaptoethanol': 'OCCS',
        'diethyl_sulfide': 'CCSCC', 'carbon_disulfide': 'S=C=S',
        'methyl_isothiocyanate': 'CN=C=S', 'thiophenol': 'Sc1ccccc1',
        'thioanisole': 'CSc1ccccc1',
        # chlorine
        'chloromethane': 'CCl', 'dichloromethane': 'ClCCl', 'chloroform': 'ClC(Cl)Cl',
        'chloropropane': 'CCCCl', 'chloroacetic_acid': 'OC(=O)CCl',
        'chloropyridine': 'Clc1ccncc1', 'acetyl_chloride': 'CC(Cl)=O',
        'dichloroethene': 'Cl/C=C/Cl', 'chlorophenol': 'Oc1ccc(Cl)cc1',
        'chloroethanol': 'OCCCl', 'tert_butyl_chloride': 'CC(C)(C)Cl',
        'chloroacetamide': 'NC(=O)CCl',
        # phosphorus
        'phosphine': 'P', 'methylphosphine': 'CP', 'trimethyl_phosphate': 'COP(=O)(OC)OC',
        'trimethylphosphine_oxide': 'CP(C)(C)=O', 'phosphoric_acid': 'OP(O)(O)=O',
        'triethylphosphine': 'CCP(CC)CC', 'trimethyl_phosphite': 'COP(OC)OC',
        'methylphosphonic_acid': 'CP(=O)(O)O', 'phenylphosphine': 'Pc1ccccc1',
        # silicon
        'silane': '[SiH4]', 'methylsilane': 'C[SiH3]', 'tetramethylsilane': 'C[Si](C)(C)C',
        'trimethylsilanol': 'C[Si](C)(C)O', 'methoxytrimethylsilane': 'CO[Si](C)(C)C',
        'chlorotrimethylsilane': 'C[Si](C)(C)Cl', 'disilane': '[SiH3][SiH3]',
        'vinyltrimethylsilane': 'C=C[Si](C)(C)C', 'tetramethoxysilane': 'CO[Si](OC)(OC)OC',
        # bromine
        'bromomethane': 'CBr', 'dibromomethane': 'BrCBr', 'bromoethane': 'CCBr',
        'bromobenzene': 'Brc1ccccc1', 'bromoacetic_acid': 'OC(=O)CBr',
        'bromopropane_2': 'CC(C)Br', 'vinyl_bromide': 'C=CBr', 'bromopyridine': 'Brc1ccccn1',
        'bromoethanol': 'OCCBr', 'bromoaniline': 'Nc1ccc(Br)cc1',
        # anions
        'acetate': 'CC(=O)[O-]', 'phenolate': '[O-]c1ccccc1', 'methanethiolate': 'C[S-]',
        'mesylate': 'CS(=O)(=O)[O-]', 'methoxide': 'C[O-]', 'formate': 'O=C[O-]',
        'thiocyanate': 'N#C[S-]', 'nitrate': '[O-][N+](=O)[O-]',
        'chloroacetate': 'ClCC(=O)[O-]', 'salicylate': 'Oc1ccccc1C(=O)[O-]',
        'dihydrogen_phosphate': 'OP(=O)(O)[O-]', 'hydrogen_sulfate': 'OS(=O)(=O)[O-]',
        'glycinate': 'NCC(=O)[O-]', 'trifluoroacetate': 'FC(F)(F)C(=O)[O-]',
        # cations
        'methylammonium': 'C[NH3+]', 'tetramethylammonium': 'C[N+](C)(C)C',
        'pyridinium': 'c1cc[nH+]cc1', 'guanidinium': 'NC(N)=[NH2+]',
        'trimethylammonium': 'C[NH+](C)C', 'trimethylsulfonium': 'C[S+](C)C',
        'tetramethylphosphonium': 'C[P+](C)(C)C', 'imidazolium': 'c1c[nH]c[nH+]1',
        'ammonium': '[NH4+]', 'ethylammonium': 'CC[NH3+]',
        'trimethyloxonium': 'C[O+](C)C', 'methylpyridinium': 'C[n+]1ccccc1',
        'glycine_cation': '[NH3+]CC(=O)O',
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
        charge = Chem.GetFormalCharge(mol)
        block[1] = (f'{mol_name} {smiles} charge={charge} spin=0 '
                    f'(RDKit ETKDG+MMFF, seed {seed})')
        (out_dir / f'{mol_name}.xyz').write_text('\n'.join(block) + '\n')


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('set', choices=sorted(SETS))
    parser.add_argument('--out', default=None, help='folder (default benchmarks/molecules/SET)')
    args = parser.parse_args()
    write_set(args.set, args.out or pathlib.Path(__file__).parent / 'molecules' / args.set)
