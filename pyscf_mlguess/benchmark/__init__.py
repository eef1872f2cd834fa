"""The benchmark: SCF cycles and wall time from every initial guess, 'mlsr' against the rest.

Apart from the guess itself (it imports the runtime modules, never the reverse), in three
modules: :mod:`~pyscf_mlguess.benchmark.molecules` (molecule sets), :mod:`.runner` (the runs,
resumable, on Dask) and :mod:`.report` (``results.md`` and the plots).  ``benchmarks/run_scf.py``
is the command line over them.  Needs the ``bench`` extra (``pip install 'pyscf-mlguess[bench]'``).
"""

from pyscf_mlguess.benchmark.molecules import load_molecules
from pyscf_mlguess.benchmark.report import plot, side_by_side, summarize
from pyscf_mlguess.benchmark.runner import is_failure, run, run_molecule

__all__ = ['load_molecules', 'run', 'run_molecule', 'is_failure', 'summarize', 'side_by_side',
           'plot']
