import numpy
import pytest

from pyscf_mlguess.xyz import read_xyz


def test_geometry_charge_and_spin(tmp_path):
    path = tmp_path / 'oh.xyz'
    path.write_text('2\nhydroxyl radical charge=0 spin=1\nO 0 0 0\nH 0 0 0.97\n')
    mol = read_xyz(path)
    assert (mol.name, mol.charge, mol.spin) == ('oh', 0, 1)
    assert mol.elements == ('O', 'H')
    numpy.testing.assert_allclose(mol.coords_angstrom, [[0, 0, 0], [0, 0, 0.97]])
    path.write_text('2\ncharge=-1\nO 0 0 0\nH 0 0 0.97\n')
    assert (read_xyz(path).charge, read_xyz(path).spin) == (-1, 0)
    path.write_text('2\n\nO 0 0 0\nH 0 0 0.97\n')
    assert (read_xyz(path).charge, read_xyz(path).spin) == (0, 0)


@pytest.mark.parametrize('text, message', [
    ('not a number\n\n', 'the first line must be the number of atoms'),
    ('', 'the first line must be the number of atoms'),
    ('3\n\nO 0 0 0\nH 0 0 0.97\n', 'expected 3 atom lines'),
    ('2\n\nO 0 0\nH 0 0 0.97\n', 'expected 2 atom lines'),
])
def test_bad_files_name_the_file_and_the_cause(tmp_path, text, message):
    path = tmp_path / 'bad.xyz'
    path.write_text(text)
    with pytest.raises(ValueError, match=f'bad.xyz: {message}'):
        read_xyz(path)
