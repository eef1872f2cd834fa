"""Compact, lossless-enough storage of converged reference densities in sharded HDF5 files.

A sample stores the occupied orbitals of the converged calculation, not the density matrix:
``nao * nocc`` numbers instead of ``nao * (nao + 1) / 2``.  They are rounded to integer
multiples of ``ORBITAL_QUANTUM`` and stored as int32 through HDF5's shuffle + gzip filters, so
small coefficients cost few bytes.  Reading re-orthonormalises the orbitals in the overlap
metric, so the density matrix is exactly idempotent; because the KS energy is stationary with
respect to orbital rotations at convergence, its error is second order in the rounding.
Measured on a 22-atom QM9 molecule (def2-SVP, PBE): |dE| 4e-8 Ha, density NMAE 3e-6,
12.8 kB per sample (float32 with 15 mantissa bits: 3e-10 Ha, 16.3 kB; budget ~14 kB).

A shard holds many samples in three datasets: ``orbitals`` (all samples' coefficients, flat),
``meta`` (UTF-8 JSON list, one dict per sample: geometry, level, energies, baseline, offsets)
and nothing else, so per-sample HDF5 overhead is zero.  Layout under a dataset root::

    ROOT/<xc>_<basis>/<split>/shard-00000.h5     immutable, written atomically
    ROOT/<xc>_<basis>/<split>/.pending/KEY.h5    one finished sample each, packed into a shard
                                                 when enough have gathered or the run ends
"""

import glob
import json
import os
import tempfile

import h5py
import numpy as np

#: Orbital coefficients are stored as integer multiples of this.
ORBITAL_QUANTUM = 2.0**-18
SHARD_GLOB = 'shard-*.h5'
PENDING_DIR = '.pending'
FORMAT_VERSION = 1


def quantize_orbitals(c, quantum=ORBITAL_QUANTUM):
    """Orbital coefficients as int32 multiples of ``quantum``."""
    c = np.asarray(c, dtype=np.float64)
    if abs(c).max() / quantum >= 2**31:
        raise ValueError('orbital coefficient too large for the int32 storage')
    return np.round(c / quantum).astype(np.int32)


def density_matrix_from_orbitals(mo_occ_coeff, ovlp, occupation=2.0):
    """Idempotent density matrix from stored occupied orbitals (Loewdin re-orthonormalised)."""
    c = np.asarray(mo_occ_coeff, dtype=np.float64)
    w, v = np.linalg.eigh(c.T @ ovlp @ c)
    c = c @ (v / np.sqrt(w)) @ v.T
    return occupation * c @ c.T


# ---------------------------------------------------------------------------------- HDF5 I/O

def _to_json(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_records(path, records):
    """Write records (dicts; ``mo_occ_coeff`` an int32 array from :func:`quantize_orbitals`)
    to ``path`` through a temporary file and a rename, so a killed run never leaves a
    half-written file under the final name."""
    folder = os.path.dirname(path) or '.'
    os.makedirs(folder, exist_ok=True)
    metas, blocks, offset = [], [], 0
    for rec in records:
        meta = {k: _to_json(v) for k, v in rec.items() if k != 'mo_occ_coeff'}
        c = rec.get('mo_occ_coeff')
        if c is not None:
            meta['orbital_offset'], meta['orbital_shape'] = offset, list(c.shape)
            blocks.append(c.ravel())
            offset += c.size
        metas.append(meta)
    fd, tmp = tempfile.mkstemp(suffix='.tmp', dir=folder)
    os.close(fd)
    try:
        with h5py.File(tmp, 'w', libver='latest') as f:
            f.attrs['format_version'] = FORMAT_VERSION
            f.attrs['orbital_quantum'] = ORBITAL_QUANTUM
            flat = np.concatenate(blocks) if blocks else np.zeros(0, np.int32)
            if len(flat):
                f.create_dataset('orbitals', data=flat, compression='gzip', compression_opts=9,
                                 shuffle=True, chunks=(min(len(flat), 1 << 20),))
            else:                     # only failed samples: nothing to compress
                f.create_dataset('orbitals', data=flat)
            text = np.frombuffer(json.dumps(metas).encode(), dtype=np.uint8)
            f.create_dataset('meta', data=text, compression='gzip', compression_opts=9)
        os.chmod(tmp, 0o644)          # mkstemp makes it private; shards are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_file(path, orbitals=True, quantized=False):
    """All records of one shard (or pending) file.  ``mo_occ_coeff`` comes back as float64
    coefficients (not yet re-orthonormalised), or with ``quantized`` as the stored int32
    multiples of the quantum; ``coords_bohr`` as an array."""
    with h5py.File(path, 'r') as f:
        metas = json.loads(f['meta'][()].tobytes().decode())
        quantum = float(f.attrs['orbital_quantum'])
        flat = f['orbitals'][()] if orbitals else None
    for meta in metas:
        meta['coords_bohr'] = np.asarray(meta['coords_bohr'])
        if orbitals and 'orbital_offset' in meta:
            n0, shape = meta['orbital_offset'], meta['orbital_shape']
            block = flat[n0:n0 + shape[0] * shape[1]].reshape(shape)
            meta['mo_occ_coeff'] = block if quantized else block * quantum
            del meta['orbital_offset'], meta['orbital_shape']
    return metas


def keys_in_file(path):
    return [m['key'] for m in read_file(path, orbitals=False)]


class ShardWriter:
    """Collects finished samples of one (level, split) folder and packs them into shards.

    Every finished sample is written at once to its own pending file, so a killed run loses at
    most the samples still being computed.  ``flush`` packs pending files into the next shard;
    a pending file whose key is already in a shard (a kill between the two steps) is dropped.
    """

    def __init__(self, folder, shard_size=100):
        self.folder = folder
        self.shard_size = int(shard_size)
        self.pending_dir = os.path.join(folder, PENDING_DIR)
        os.makedirs(self.pending_dir, exist_ok=True)
        for tmp in glob.glob(os.path.join(self.folder, '*.tmp')) + \
                glob.glob(os.path.join(self.pending_dir, '*.tmp')):
            os.remove(tmp)            # leftovers of a run killed while writing
        self.shard_keys = set()
        for shard in self.shards():
            self.shard_keys.update(keys_in_file(shard))
        for p in self.pending_files():
            if os.path.basename(p)[:-3] in self.shard_keys:
                os.remove(p)

    def shards(self):
        return sorted(glob.glob(os.path.join(self.folder, SHARD_GLOB)))

    def pending_files(self):
        return sorted(glob.glob(os.path.join(self.pending_dir, '*.h5')))

    def done_keys(self):
        return self.shard_keys | {os.path.basename(p)[:-3] for p in self.pending_files()}

    def add(self, record):
        write_records(os.path.join(self.pending_dir, record['key'] + '.h5'), [record])
        if len(self.pending_files()) >= self.shard_size:
            self.flush()

    def flush(self):
        """Pack every pending sample into a new shard; returns its path (None if none)."""
        pending = self.pending_files()
        if not pending:
            return None
        records = [rec for p in pending for rec in read_file(p, quantized=True)]
        shards = self.shards()
        number = int(os.path.basename(shards[-1])[6:11]) + 1 if shards else 0
        path = os.path.join(self.folder, f'shard-{number:05d}.h5')
        write_records(path, records)
        self.shard_keys.update(r['key'] for r in records)
        for p in pending:
            os.remove(p)
        return path


def level_folders(root):
    """{(level, split): folder} for every dataset folder under ``root``."""
    out = {}
    for folder in sorted(glob.glob(os.path.join(root, '*', '*'))):
        if os.path.isdir(folder):
            level, split = folder.split(os.sep)[-2:]
            out[(level, split)] = folder
    return out


def iter_records(folder, include_failed=False, orbitals=True):
    """Records of every shard in a folder (pending files are not yet part of the dataset)."""
    for shard in sorted(glob.glob(os.path.join(folder, SHARD_GLOB))):
        for rec in read_file(shard, orbitals=orbitals):
            if include_failed or rec.get('converged', False):
                yield rec


def stats(root):
    """Per level and split: sample counts, QM9 molecules, perturbed copies, elements, charges,
    bytes."""
    out = {}
    for (level, split), folder in level_folders(root).items():
        shards = sorted(glob.glob(os.path.join(folder, SHARD_GLOB)))
        n_ok = n_failed = n_perturbed = 0
        molecules, elements, charges = set(), set(), set()
        for rec in iter_records(folder, include_failed=True, orbitals=False):
            if not rec.get('converged', False):
                n_failed += 1
                continue
            n_ok += 1
            n_perturbed += rec['conformer'] > 0
            molecules.add(rec['qm9_index'] if rec.get('qm9_index', -1) >= 0 else rec['key'])
            elements.update(rec['elements'])
            charges.add(int(rec.get('charge', 0)))
        pending = glob.glob(os.path.join(folder, PENDING_DIR, '*.h5'))
        out.setdefault(level, {})[split] = {
            'samples': n_ok, 'molecules': len(molecules), 'perturbed_copies': n_perturbed,
            'failed': n_failed, 'pending': len(pending),
            'elements': sorted(elements), 'charges': sorted(charges), 'shards': len(shards),
            'bytes': sum(os.path.getsize(s) for s in shards),
        }
    return out
