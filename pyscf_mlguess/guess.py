"""Stage 4: the PySCF hook.  ``init_guess='mlsr'``: grid -> model -> projection -> dm0.

:func:`install` (run on ``import pyscf_mlguess``) wraps ``pyscf.scf.hf.SCF.get_init_guess`` so that
the key ``'mlsr'`` (any case) reaches :func:`init_guess_by_mlsr`; every other key goes to PySCF's
own dispatcher unchanged.  Because the wrap is on the base class, it reaches RHF, UHF, ROHF, RKS,
UKS, ROKS, their density-fitted and second-order variants, and objects created before the import.

Attributes added to every SCF object (declared in ``_keys``):

``mlsr_predictor``
    ``None`` (the newest pretrained model matching the functional), a shipped version by name
    (``'pbe-0.1'``), a path to weights, or a predictor object (:mod:`pyscf_mlguess.model`).
``mlsr_grid_spacing``, ``mlsr_grid_margin``
    The input box in Bohr for predictors that work on any box; ``None`` means the defaults in
    :mod:`pyscf_mlguess.config`.  A trained model fixes its own box (its weights say which), so
    with it a value that differs from the model's is refused with an error, never ignored.
``mlsr_exchange``
    Treatment of exact exchange in the projection (:mod:`pyscf_mlguess.project`).
``mlsr_outside_domain``
    ``'minao'`` (default, :data:`pyscf_mlguess.config.OUTSIDE_DOMAIN`): a molecule with an
    element, charge or spin that the weights' training data never had gets PySCF's minao guess,
    with a warning that says why; ``'model'``: the network is used anyway (with the warning).
``mlsr_diis_start_cycle``
    ``0`` (default, :data:`pyscf_mlguess.config.DIIS_START_CYCLE`): an SCF object whose
    ``diis_start_cycle`` is PySCF's default gets this one from the guess (logged), so the Fock
    matrix of the mlsr density joins DIIS; a ``diis_start_cycle`` set on the object is kept.
    ``None`` leaves it alone.  Not applied when the guess hands over to minao.  Like any
    setting made on the object, it stays for the object's later runs.
``mlsr_timings``
    Set by the guess: wall seconds of its stages, ``{'grid', 'model', 'projection', 'total'}``,
    or ``{'minao', 'total'}`` when it handed over to minao.
"""

import dataclasses

import numpy
from pyscf import lib
from pyscf.lib import logger
from pyscf.scf import hf, uhf

from pyscf_mlguess import config
from pyscf_mlguess.grid import log_grid, make_grid, sad_density_matrix, sad_density_on_grid
from pyscf_mlguess.field import BYTES_PER_POINT as FIELD_BYTES_PER_POINT, DensityField
from pyscf_mlguess.model import load_predictor
from pyscf_mlguess.project import exchange_treatment, project_density

KEY = 'mlsr'

#: PySCF's own ``SCF.diis_start_cycle`` (hf.py); another class value came from the user's
#: ``__config__`` (``scf_hf_SCF_diis_start_cycle``) and is kept like one set on the object.
PYSCF_DIIS_START_CYCLE = 1


_MLSR_ATTRIBUTES = {
    'mlsr_predictor': None,
    'mlsr_grid_spacing': None,
    'mlsr_grid_margin': None,
    'mlsr_exchange': config.EXCHANGE,
    'mlsr_outside_domain': config.OUTSIDE_DOMAIN,
    'mlsr_diis_start_cycle': config.DIIS_START_CYCLE,
    'mlsr_timings': None,
}


def _check_input(mf, mol):
    """Refuse what the guess cannot do, with the reason, before anything is computed."""
    exchange_treatment(mf.mlsr_exchange)
    outside_domain_policy(mf.mlsr_outside_domain)
    if hasattr(mol, 'lattice_vectors'):
        raise NotImplementedError("init_guess='mlsr' is for molecules; periodic cells are not "
                                  "supported.")
    if not (mf.istype('RHF') or mf.istype('UHF')):
        raise NotImplementedError(
            f"init_guess='mlsr' supports RHF/UHF/ROHF/RKS/UKS/ROKS objects, not "
            f"{mf.__class__.__name__}.")
    nalpha, nbeta = mol.nelec
    if mol.nelectron <= 0 or nalpha < 0 or nbeta < 0:
        raise ValueError(f"init_guess='mlsr' needs electrons: charge {mol.charge} and spin "
                         f"{mol.spin} leave {mol.nelectron} (alpha {nalpha}, beta {nbeta}).")
    restricted_closed = mf.istype('RHF') and not mf.istype('ROHF')
    if restricted_closed and nalpha != nbeta:
        raise ValueError(
            f'{mf.__class__.__name__} is closed-shell but the molecule has {mol.nelectron} '
            f'electrons with spin {mol.spin} (alpha {nalpha}, beta {nbeta}); use UHF/UKS or '
            f'ROHF/ROKS, or fix charge/spin.')
    if mol.natm == 0:    # init_guess_by_mlsr falls back to 1e first; predict_density cannot
        raise ValueError("predict_density needs atoms to put a density on a grid; this "
                         "molecule has none.")
    if not any(mol.atom_charges() > 0):
        raise ValueError("init_guess='mlsr' needs at least one real atom; every atom of this "
                         "molecule is a ghost.")


def outside_domain_policy(policy):
    """``policy`` (any case) as one of ``config.OUTSIDE_DOMAIN_CHOICES``, or a ``ValueError``."""
    if not isinstance(policy, str) or policy.lower() not in config.OUTSIDE_DOMAIN_CHOICES:
        raise ValueError(f'Unknown mlsr_outside_domain {policy!r}; choose from '
                         f'{", ".join(config.OUTSIDE_DOMAIN_CHOICES)}.')
    return policy.lower()


def outside_domain(mol, meta):
    """What of ``mol`` the weights' training data (their metadata: ``elements``, ``charges``,
    ``spins``) never had, as phrases; empty when inside or when the predictor states no domain."""
    if not meta:
        return []
    outside = []
    seen = meta.get('elements')
    if seen is not None:
        new = sorted({mol.atom_pure_symbol(ia) for ia in range(mol.natm)
                      if mol.atom_charge(ia) > 0} - set(seen))
        if new:
            outside.append(f"element(s) {', '.join(new)} (trained on {', '.join(seen)})")
    for name, value in (('charges', mol.charge), ('spins', mol.spin)):
        if meta.get(name) is not None and value not in meta[name]:
            outside.append(f"{name[:-1]} {value} (trained on {name} "
                           f"{', '.join(map(str, meta[name]))})")
    return outside


def _warn_outside_domain(mf, outside):
    logger.warn(mf, 'mlsr: this molecule is outside the domain of the weights: %s. There the '
                'network has cost SCF cycles rather than saved them (README, "Domain"); it is '
                'used anyway (mlsr_outside_domain = %r).', '; '.join(outside),
                mf.mlsr_outside_domain)


def _resolve_predictor(mf, predictor):
    if predictor is None:
        predictor = mf.mlsr_predictor
    if predictor is None or isinstance(predictor, str):
        predictor = load_predictor(mf, predictor)
    if not callable(predictor):
        raise TypeError('mlsr_predictor must be None, a weights name or path, or a predictor; '
                        f'got {predictor!r}.')
    return predictor


@dataclasses.dataclass
class PredictedDensity:
    """Stages 1-2 of the guess: the SAD density matrix ``dm_sad`` and the model's correction
    ``field`` (a :class:`~pyscf_mlguess.field.DensityField`, ``delta_rho`` on its box), with wall
    seconds ``timings`` {'grid', 'model'}.  The density is rho[dm_sad] + field.

    ``atom_charges`` and ``atom_coords`` (Bohr) record the molecule it was predicted for, so that
    it is never projected for another one (:meth:`check_molecule`).
    """
    dm_sad: numpy.ndarray
    field: DensityField
    timings: dict
    atom_charges: numpy.ndarray
    atom_coords: numpy.ndarray

    #: Largest displacement of an atom (Bohr) that still counts as the same geometry.
    COORD_TOL = 1e-6

    def check_molecule(self, mol):
        """Raise ``ValueError`` unless this density was predicted for ``mol``: the same atoms
        in the same order at the same positions, and the same basis size."""
        charges = mol.atom_charges()
        if len(charges) != len(self.atom_charges) or numpy.any(charges != self.atom_charges):
            raise ValueError(
                f'This PredictedDensity was made for another molecule: atomic numbers '
                f'{self.atom_charges.tolist()} there, {charges.tolist()} here. Predict it for '
                f'this molecule with predict_density(mf, mol).')
        shift = numpy.linalg.norm(mol.atom_coords() - self.atom_coords, axis=1)
        if shift.max() > self.COORD_TOL:
            ia = int(shift.argmax())
            raise ValueError(
                f'This PredictedDensity was made for another geometry: atom {ia} '
                f'({mol.atom_symbol(ia)}) is {shift[ia]:.3g} Bohr away from where it was (the '
                f'density sits on a box around the old positions). Predict it for this geometry '
                f'with predict_density(mf, mol).')
        if self.dm_sad.shape != (mol.nao, mol.nao):
            raise ValueError(
                f'This PredictedDensity was made with another basis: its SAD density matrix is '
                f'{self.dm_sad.shape[0]} x {self.dm_sad.shape[1]}, this molecule has {mol.nao} '
                f'basis functions. Predict it with this basis with predict_density(mf, mol).')


def guess_memory(grid, predictor):
    """Peak working memory (MB) of the guess's box stages on ``grid`` with ``predictor``:
    ``{'SAD box', 'network', 'field', 'peak'}``.

    The SAD box and the network's call (its activations tile by tile, and its output) come
    first; then the field, its Hartree potential and its splines
    (:data:`pyscf_mlguess.field.BYTES_PER_POINT` per point of the output box) while the
    projection runs, whose own quadrature blocks PySCF sizes to the memory left.
    """
    refine = getattr(predictor, 'refine', 1)
    n_out = grid.size * refine**3
    channels = 1 + len(getattr(predictor, 'input_elements', None) or ())
    # float64, a float32 copy, and with element channels the network's channels-last copy
    need = {'SAD box': grid.size * channels * (8 + 4 + (4 if channels > 1 else 0)),
            'network': (predictor.memory_bytes(grid) if hasattr(predictor, 'memory_bytes')
                        else 16 * n_out),
            'field': FIELD_BYTES_PER_POINT * n_out}
    need = {k: v / 2**20 for k, v in need.items()}
    need['peak'] = max(need['SAD box'] + need['network'], need['field'])
    return need


def _check_memory(mf, grid, predictor):
    """Refuse a box whose stages need more than ``mf.max_memory`` leaves, with the numbers."""
    need = guess_memory(grid, predictor)
    in_use = lib.current_memory()[0]
    logger.debug(mf, 'mlsr memory: SAD box %.0f MB, network %.0f MB, field %.0f MB; peak %.0f MB '
                 'on top of %.0f MB in use (max_memory %s MB)', need['SAD box'],
                 need['network'], need['field'], need['peak'], in_use, mf.max_memory)
    if in_use + need['peak'] > mf.max_memory:
        refine = getattr(predictor, 'refine', 1)
        shape = 'x'.join(str(n * refine) for n in grid.shape)
        raise RuntimeError(
            f"init_guess='mlsr' needs about {need['peak']:.0f} MB for this molecule (input box "
            f"{'x'.join(map(str, grid.shape))} at {grid.spacing:g} Bohr: SAD box "
            f"{need['SAD box']:.0f} MB, network {need['network']:.0f} MB; field {shape}, its "
            f"Hartree potential and splines {need['field']:.0f} MB), and {in_use:.0f} MB are "
            f"in use: above max_memory = {mf.max_memory} MB. Raise mol.max_memory / "
            f"mf.max_memory, or use init_guess='minao'.")


def _box_setting(mf, predictor, name):
    """The predictor's input box spacing or margin, or the SCF object's ``mlsr_grid_<name>``
    for a predictor that takes any box; a setting the predictor cannot honour is refused."""
    fixed = getattr(predictor, {'spacing': 'input_spacing', 'margin': 'margin'}[name])
    asked = getattr(mf, f'mlsr_grid_{name}')
    if fixed is None:
        return asked
    if asked is not None and abs(float(asked) - float(fixed)) > 1e-12:
        raise ValueError(
            f'mlsr_grid_{name} = {asked} Bohr cannot be used with {predictor}: the network was '
            f'trained on boxes with {name} {fixed} Bohr and needs its input on such a box. '
            f'Leave mlsr_grid_{name} = None, or use weights trained for {name} {asked}.')
    return fixed


def predict_density(mf, mol=None, predictor=None):
    """The machine-learned density of ``mol`` for ``mf``: SAD on a box, then the model.

    Returns a :class:`PredictedDensity`; :func:`init_guess_by_mlsr` projects it.
    """
    mol = mf.mol if mol is None else mol
    _check_input(mf, mol)
    t1 = (logger.process_clock(), logger.perf_counter())
    wall0 = logger.perf_counter()
    predictor = _resolve_predictor(mf, predictor)
    logger.info(mf, 'Initial guess from mlsr (machine-learned density), predictor %s', predictor)
    outside = outside_domain(mol, getattr(predictor, 'meta', None))
    if outside:
        _warn_outside_domain(mf, outside)
    nghost = sum(1 for ia in range(mol.natm) if mol.atom_charge(ia) == 0)
    if nghost:
        logger.info(mf, 'mlsr: %d ghost atom(s) carry basis functions but no SAD density', nghost)

    grid = make_grid(mol, _box_setting(mf, predictor, 'spacing'),
                     _box_setting(mf, predictor, 'margin'))
    log_grid(mf, grid)
    _check_memory(mf, grid, predictor)
    dm_sad = sad_density_matrix(mol)[0]
    rho_sad = sad_density_on_grid(mol, grid, dm_sad,
                                  elements=getattr(predictor, 'input_elements', None))
    wall1 = logger.perf_counter()
    t1 = logger.timer(mf, 'mlsr SAD density on the box', *t1)
    field = predictor(mol, grid, rho_sad)
    if not isinstance(field, DensityField):
        raise TypeError(f'{predictor!r} returned {type(field).__name__}; a predictor returns a '
                        f'pyscf_mlguess.field.DensityField.')
    wall2 = logger.perf_counter()
    logger.timer(mf, 'mlsr predictor', *t1)
    return PredictedDensity(dm_sad, field, {'grid': wall1 - wall0, 'model': wall2 - wall1},
                            mol.atom_charges(), mol.atom_coords())


def init_guess_by_mlsr(mf, mol=None, predictor=None, s1e=None, density=None, **kwargs):
    """Initial guess from the machine-learned density (SAD on a grid -> CNN -> projection).

    Args:
        mf: the SCF object the guess is for (its functional, spin treatment and integrals).
        mol: the molecule (default ``mf.mol``).
        predictor: overrides ``mf.mlsr_predictor`` (see :mod:`pyscf_mlguess.model`).
        s1e: the overlap matrix, if already computed.
        density: a :class:`PredictedDensity` of ``mol`` already computed by
            :func:`predict_density` (then ``predictor`` is not used).

    Returns:
        The density matrix in ``mf``'s own form: 2D for RHF/RKS, an (alpha, beta) pair for
        UHF/UKS and ROHF/ROKS, with exactly the molecule's electrons and spin.
    """
    mol = mf.mol if mol is None else mol
    if mol.natm == 0:
        logger.warn(mf, "init_guess='mlsr' needs atoms to put a density on a grid; this "
                    "molecule has none, so the core-Hamiltonian (1e) guess is used instead.")
        return mf.init_guess_by_1e(mol)
    t0 = (logger.process_clock(), logger.perf_counter())
    _check_input(mf, mol)
    diis_start = _diis_start_setting(mf)         # a bad value fails before the network runs
    if density is None:
        predictor = _resolve_predictor(mf, predictor)
        outside = outside_domain(mol, getattr(predictor, 'meta', None))
        if outside and outside_domain_policy(mf.mlsr_outside_domain) == 'minao':
            return _hand_over_to_minao(mf, mol, outside, t0)
        density = predict_density(mf, mol, predictor)
    else:
        density.check_molecule(mol)
    wall2 = logger.perf_counter()
    dm = project_density(mf, density.dm_sad, density.field, exchange=mf.mlsr_exchange,
                         mol=mol, s1e=s1e)
    if mf.istype('UHF'):
        # Same convention as PySCF's own UHF guesses (minao, atom): init_guess_breaksym.
        dm = uhf._break_dm_spin_symm(mol, dm, mf.init_guess_breaksym)
    _start_diis_from_guess(mf, diis_start)
    timings = dict(density.timings, projection=logger.perf_counter() - wall2)
    timings['total'] = sum(timings.values())
    mf.mlsr_timings = timings
    logger.timer(mf, 'mlsr initial guess', *t0)
    return dm


def _diis_start_setting(mf):
    """``mf.mlsr_diis_start_cycle``, checked: an SCF cycle (0, 1, ...) or None."""
    wanted = mf.mlsr_diis_start_cycle
    is_cycle = isinstance(wanted, (int, numpy.integer)) and not isinstance(wanted, bool)
    if wanted is not None and not (is_cycle and wanted >= 0):
        raise ValueError(f'mlsr_diis_start_cycle {wanted!r}: an SCF cycle (0, 1, ...) or None')
    return wanted


def _start_diis_from_guess(mf, wanted):
    """``mf.diis_start_cycle = wanted`` where the object holds PySCF's default.

    PySCF keeps the first cycle's Fock matrix out of DIIS (``diis_start_cycle = 1``), which suits
    a crude guess; built from the mlsr density it is close to self-consistent, and in DIIS it
    saves cycles (docs/design.md, "DIIS from the guess").  A value set on the object, or through
    PySCF's ``__config__``, is the user's and is kept.
    """
    if wanted is None:
        return
    if 'diis_start_cycle' in vars(mf) or mf.diis_start_cycle != PYSCF_DIIS_START_CYCLE:
        if mf.diis_start_cycle != wanted:     # the user's, on the object or in __config__
            # both set on this object: a conflict the user should see at the default verbosity
            say = logger.warn if 'mlsr_diis_start_cycle' in vars(mf) else logger.info
            say(mf, 'mlsr: diis_start_cycle = %d, the user\'s, is kept '
                '(mlsr_diis_start_cycle %d applies to PySCF\'s default only)',
                mf.diis_start_cycle, wanted)
        return
    if mf.diis_start_cycle != wanted:
        logger.info(mf, 'mlsr: diis_start_cycle %d -> %d, so the Fock matrix of the guess joins '
                    'DIIS (mlsr_diis_start_cycle = None keeps PySCF\'s)', mf.diis_start_cycle,
                    wanted)
        mf.diis_start_cycle = int(wanted)


def _hand_over_to_minao(mf, mol, outside, t0):
    logger.warn(mf, 'mlsr: this molecule is outside the domain of the weights: %s. There the '
                'network has cost SCF cycles rather than saved them (README, "Domain"), so '
                'PySCF\'s minao guess is used instead (mlsr_outside_domain = \'model\' uses the '
                'network anyway).', '; '.join(outside))
    wall0 = t0[1]
    dm = mf.init_guess_by_minao(mol)
    wall = logger.perf_counter() - wall0
    mf.mlsr_timings = {'minao': wall, 'total': wall}
    logger.timer(mf, 'mlsr initial guess (handed over to minao)', *t0)
    return dm


get_init_guess = init_guess_by_mlsr


def install():
    """Register ``'mlsr'`` with PySCF's SCF classes (idempotent)."""
    scf_cls = hf.SCF
    if getattr(scf_cls.get_init_guess, '_mlsr_hook', False):
        return
    pyscf_get_init_guess = scf_cls.get_init_guess

    def get_init_guess(self, mol=None, key='minao', **kwargs):
        if isinstance(key, str) and key.lower() == KEY:
            return self.init_guess_by_mlsr(mol, **kwargs)
        return pyscf_get_init_guess(self, mol, key, **kwargs)

    get_init_guess.__doc__ = pyscf_get_init_guess.__doc__
    get_init_guess._mlsr_hook = True
    get_init_guess._pyscf_get_init_guess = pyscf_get_init_guess

    @lib.with_doc(init_guess_by_mlsr.__doc__)
    def init_guess_by_mlsr_method(self, mol=None, **kwargs):
        return init_guess_by_mlsr(self, mol, **kwargs)

    scf_cls.get_init_guess = get_init_guess
    scf_cls.init_guess_by_mlsr = init_guess_by_mlsr_method
    for name, value in _MLSR_ATTRIBUTES.items():
        setattr(scf_cls, name, value)
    scf_cls._keys = scf_cls._keys.union(_MLSR_ATTRIBUTES)
