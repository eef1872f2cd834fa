"""pyscf-mlguess: a machine-learned initial guess ('mlsr') for PySCF's SCF."""

from setuptools import setup

TRAIN = ['qm9pack', 'rdkit', 'h5py', 'tqdm', 'dask[distributed]']

setup(
    name='pyscf-mlguess',
    version='0.1.0',
    description="A machine-learned initial guess (init_guess='mlsr') for PySCF SCF calculations",
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    # The top-level weights/ folder ships inside the package as pyscf_mlguess.weights.
    packages=['pyscf_mlguess', 'pyscf_mlguess.benchmark', 'pyscf_mlguess.data',
              'pyscf_mlguess.train', 'pyscf_mlguess.weights'],
    package_dir={'pyscf_mlguess.weights': 'weights'},
    package_data={'pyscf_mlguess.weights': ['*.pt', '*.json', 'SHA256SUMS', 'README.md']},
    install_requires=[
        'pyscf>=2.7',
        'torch>=2.1',
        'numpy>=1.24',
        'scipy>=1.10',
    ],
    extras_require={
        # Benchmarks: molecule sets from SMILES (RDKit) and ASE's G2 collection, plots.
        'bench': ['ase', 'matplotlib'] + TRAIN,
        # Training data and training: QM9 molecules (and RDKit for the molecules derived from
        # them), HDF5 shards, Dask workers, progress bars.
        'train': TRAIN,
        # The tests cover the data pipeline and the benchmark driver (with its plots) too.
        'test': ['pytest>=7', 'matplotlib'] + TRAIN,
    },
    entry_points={'console_scripts': ['pyscf-mlguess = pyscf_mlguess.cli:main']},
)
