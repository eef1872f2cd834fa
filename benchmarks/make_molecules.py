"""Write the xyz files of a named molecule set from SMILES with RDKit (ETKDG + MMFF).

    python benchmarks/make_molecules.py oracle
    python benchmarks/make_molecules.py finetune
    python benchmarks/make_molecules.py drugs
    python benchmarks/make_molecules.py ions            # closed-shell anions and cations
    python benchmarks/make_molecules.py main_group      # from ASE's G2 collection
    python benchmarks/make_molecules.py open_shell      # from ASE's G2 collection

Geometries are committed; this script documents and reproduces them (fixed random seed; the G2
sets take ASE's stored geometries and its initial magnetic moments as the spin).
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
    # Larger drug-like molecules (15-37 heavy atoms) for run_scf.py's 'drugs' set: how the
    # savings and the guess's cost scale with size.
    'drugs': {
        'ibuprofen': 'CC(C)Cc1ccc(cc1)C(C)C(=O)O',
        'naproxen': 'COc1ccc2cc(ccc2c1)[C@H](C)C(=O)O',
        'melatonin': 'CC(=O)NCCc1c[nH]c2ccc(OC)cc12',
        'lidocaine': 'CCN(CC)CC(=O)Nc1c(C)cccc1C',
        'procaine': 'CCN(CC)CCOC(=O)c1ccc(N)cc1',
        'diphenhydramine': 'CN(C)CCOC(c1ccccc1)c1ccccc1',
        'propranolol': 'CC(C)NCC(O)COc1cccc2ccccc12',
        'tryptophan': 'N[C@@H](Cc1c[nH]c2ccccc12)C(=O)O',
        'acyclovir': 'Nc1nc2n(COCCO)cnc2c(=O)[nH]1',
        'atenolol': 'CC(C)NCC(O)COc1ccc(CC(N)=O)cc1',
        'metoprolol': 'COCCc1ccc(OCC(O)CNC(C)C)cc1',
        'estradiol': 'C[C@]12CC[C@H]3[C@@H](CCc4cc(O)ccc34)[C@@H]1CC[C@@H]2O',
        'testosterone': 'C[C@]12CC[C@H]3[C@@H](CCC4=CC(=O)CC[C@]34C)[C@@H]1CC[C@@H]2O',
        'morphine': 'CN1CC[C@]23c4c5ccc(O)c4O[C@H]2[C@@H](O)C=C[C@H]3[C@H]1C5',
        'cocaine': 'COC(=O)[C@H]1[C@@H](OC(=O)c2ccccc2)C[C@@H]2CC[C@H]1N2C',
        'oseltamivir': 'CCOC(=O)C1=C[C@@H](OC(CC)CC)[C@H](NC(C)=O)[C@@H](N)C1',
        'warfarin': 'CC(=O)CC(c1ccccc1)c1c(O)c2ccccc2oc1=O',
        'quinine': 'COc1ccc2nccc([C@@H](O)[C@H]3C[C@@H]4CCN3C[C@@H]4C=C)c2c1',
        'nifedipine': 'COC(=O)C1=C(C)NC(C)=C(C(=O)OC)C1c1ccccc1[N+](=O)[O-]',
        'fentanyl': 'CCC(=O)N(c1ccccc1)C1CCN(CCc2ccccc2)CC1',
        'tamoxifen': 'CC/C(=C(\\c1ccccc1)c1ccc(OCCN(C)C)cc1)c1ccccc1',
        'donepezil': 'COc1cc2c(cc1OC)C(=O)C(CC1CCN(Cc3ccccc3)CC1)C2',
        'verapamil': 'COc1ccc(CCN(C)CCCC(C#N)(C(C)C)c2ccc(OC)c(OC)c2)cc1OC',
        'imatinib': 'Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1',
        # Medicines with sulfur and chlorine (added with issue 16), as medicinal chemistry has.
        'chlorpromazine': 'CN(C)CCCN1c2ccccc2Sc2ccc(Cl)cc21',
        'hydrochlorothiazide': 'NS(=O)(=O)c1cc2c(cc1Cl)NCNS2(=O)=O',
        'diclofenac': 'OC(=O)Cc1ccccc1Nc1c(Cl)cccc1Cl',
        'sulfamethoxazole': 'Cc1cc(NS(=O)(=O)c2ccc(N)cc2)no1',
        'clopidogrel': 'COC(=O)[C@H](c1ccccc1Cl)N1CCc2sccc2C1',
        'omeprazole': 'COc1ccc2[nH]c(S(=O)Cc3ncc(C)c(OC)c3C)nc2c1',
        'furosemide': 'NS(=O)(=O)c1cc(C(=O)O)c(NCc2ccco2)cc1Cl',
        'captopril': 'C[C@H](CS)C(=O)N1CCC[C@H]1C(=O)O',
        'ketamine': 'CNC1(CCCCC1=O)c1ccccc1Cl',
        'chloroquine': 'CCN(CC)CCCC(C)Nc1ccnc2cc(Cl)ccc12',
        'penicillin_g': 'CC1(C)S[C@@H]2[C@H](NC(=O)Cc3ccccc3)C(=O)N2[C@H]1C(=O)O',
        'sertraline': 'CN[C@H]1CC[C@@H](c2ccc(Cl)c(Cl)c2)c2ccccc21',
    },
    # Closed-shell ions for the guess's by-class benchmark, none of them in 'finetune' (which
    # may become training data): QM9's elements with a charge, and a few with S and P.
    'ions': {
        'propanoate': 'CCC(=O)[O-]', 'benzoate': '[O-]C(=O)c1ccccc1',
        'ethoxide': 'CC[O-]', 'oxalate_monoanion': 'OC(=O)C(=O)[O-]',
        'lactate': 'CC(O)C(=O)[O-]', 'cyanate': '[O-]C#N', 'bicarbonate': 'OC(=O)[O-]',
        'nitrite': 'N(=O)[O-]', 'methyl_sulfate': 'COS(=O)(=O)[O-]',
        'ethanethiolate': 'CC[S-]', 'methylphosphonate': 'CP(=O)(O)[O-]',
        'anilinium': '[NH3+]c1ccccc1', 'dimethylammonium': 'C[NH2+]C',
        'benzylammonium': '[NH3+]Cc1ccccc1', 'acetamidinium': 'CC(N)=[NH2+]',
        'morpholinium': 'C1COCC[NH2+]1', 'protonated_acetone': 'CC(C)=[OH+]',
        'hydroxylammonium': '[NH3+]O', 'methyloxonium': 'C[OH2+]',
        'ethyltrimethylammonium': 'CC[N+](C)(C)C',
    },
}

#: ASE's G2 collection for sets beyond QM9's chemistry: closed-shell molecules with an element
#: QM9 lacks, and radicals and triplets (spin from ASE's initial moments).  Single atoms left out.
QM9_ELEMENTS = {'H', 'C', 'N', 'O', 'F'}
G2_SETS = {
    'main_group': lambda atoms, spin: (spin == 0
                                       and set(atoms.get_chemical_symbols()) - QM9_ELEMENTS),
    'open_shell': lambda atoms, spin: spin != 0,
}


def write_g2_set(name, out_dir):
    from ase.collections import g2
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for mol_name in g2.names:
        atoms = g2[mol_name]
        spin = int(round(abs(atoms.get_initial_magnetic_moments().sum())))
        if len(atoms) < 2 or not G2_SETS[name](atoms, spin):
            continue
        lines = [str(len(atoms)), f'{mol_name} {atoms.get_chemical_formula()} charge=0 '
                 f'spin={spin} (ASE G2 geometry)']
        lines += [f'{sym:2s} {x:12.6f} {y:12.6f} {z:12.6f}'
                  for sym, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions)]
        (out_dir / f'{mol_name}.xyz').write_text('\n'.join(lines) + '\n')


def write_set(name, out_dir, seed=7):
    from rdkit import Chem
    from rdkit.Chem import AllChem
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for mol_name, smiles in SETS[name].items():
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
            # cages may need random starting coordinates
            if AllChem.EmbedMolecule(mol, randomSeed=seed, useRandomCoords=True) != 0:
                raise RuntimeError(f'RDKit could not embed {mol_name} ({smiles})')
        AllChem.MMFFOptimizeMolecule(mol)
        block = Chem.MolToXYZBlock(mol).splitlines()
        charge = Chem.GetFormalCharge(mol)
        block[1] = (f'{mol_name} {smiles} charge={charge} spin=0 '
                    f'(RDKit ETKDG+MMFF, seed {seed})')
        (out_dir / f'{mol_name}.xyz').write_text('\n'.join(block) + '\n')


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('set', choices=sorted([*SETS, *G2_SETS]))
    parser.add_argument('--out', default=None, help='folder (default benchmarks/molecules/SET)')
    args = parser.parse_args()
    out = args.out or pathlib.Path(__file__).parent / 'molecules' / args.set
    (write_g2_set if args.set in G2_SETS else write_set)(args.set, out)
