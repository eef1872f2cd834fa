"""SCF cycles of the same molecules under two settings: two results folders of ``run_scf.py``.

    python benchmarks/compare_settings.py benchmarks/results/qm9-test-0.4 \\
        benchmarks/results/qm9-test-0.4-diis0 --out benchmarks/results/diis_start/qm9-test.md

For every guess in both folders, over the molecules (functional, basis) both ran to the same
energy: the summed cycles under each setting, the median per-molecule ratio and how many molecules
took fewer, as many or more cycles.  Then the cycles of mlsr under the second setting against
minao under the first (PySCF's defaults): what a user would see if only the mlsr guess brought the
second setting.  Cycles only: the two folders ran at other times, so their wall times do not
compare (each folder's results.md compares its guesses side by side).
"""

import argparse
import pathlib
import statistics

from pyscf_mlguess.benchmark import is_failure
from pyscf_mlguess.benchmark.runner import load_results, progress_label


def _load(folder):
    """A folder's successful runs by (molecule, xc, basis, guess), and its name as cited (marked
    when its run is still going)."""
    path = pathlib.Path(folder) / 'results.json'
    if not path.exists():
        raise SystemExit(f'{path}: no such results file (a run_scf.py --out folder?)')
    data = load_results(path)
    name = ', '.join(filter(None, (path.parent.name, progress_label(data))))
    return {(r['molecule'], r['xc'], r['basis'], r['guess']): r for r in data['records']
            if not is_failure(r)}, name


def _row(label, pairs):
    """One table row of (cycles in the first setting, cycles in the second) pairs."""
    if not pairs:
        return None
    a, b = zip(*pairs)
    ratio = statistics.median(y / x for x, y in pairs)
    fewer = sum(y < x for x, y in pairs)
    same = sum(y == x for x, y in pairs)
    return (f'| {label} | {len(pairs)} | {sum(a)} | {sum(b)} | {ratio:.2f} | '
            f'{fewer} / {same} / {len(pairs) - fewer - same} |')


def compare(base, other):
    """Markdown table lines comparing the cycles of results folders ``base`` and ``other``."""
    (one, first), (two, second) = _load(base), _load(other)
    shared = sorted(set(one) & set(two))
    guesses = sorted({k[3] for k in shared}, key=lambda g: (g != 'minao', g))
    lines = [f'Cycles of the same molecules: first setting [{first}], second [{second}]. Runs '
             'that failed or ended elsewhere in either are left out.', '',
             '| guess | molecules | cycles, first setting | cycles, second setting | '
             'median ratio second / first | fewer / same / more |', '|---|---|---|---|---|---|']
    for guess in guesses:
        lines.append(_row(guess, [(one[k]['cycles'], two[k]['cycles']) for k in shared
                                  if k[3] == guess]))
    cross = [(one[(*k[:3], 'minao')]['cycles'], two[k]['cycles']) for k in shared
             if k[3] == 'mlsr' and (*k[:3], 'minao') in one]
    row = _row('mlsr (second) against minao (first)', cross)
    if row:
        lines.append(row)
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('base', help='results folder with the first setting')
    parser.add_argument('other', help='results folder with the second setting')
    parser.add_argument('--out', help='also write the table to this markdown file')
    args = parser.parse_args(argv)
    text = '\n'.join(compare(args.base, args.other)) + '\n'
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(text)
    print(text)
    return text


if __name__ == '__main__':
    main()
