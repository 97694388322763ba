import ml_collections
import pytest

from gan_arith.data.stores import resolve_store
from gan_arith.errors import InputError


@pytest.mark.parametrize("changes,message", [
    ({"store": "{tmp}/nope"}, r"config\.data\.store=.*/nope: no prepared-faces store"),
    ({"celeba_dir": "{tmp}/nope"}, r"config\.data\.celeba_dir=.*/nope: CelebA root .* is not a directory"),
])
def test_a_missing_data_source_is_the_users_mistake(tmp_path, changes, message):
    data = ml_collections.ConfigDict({
        "store": "", "default_store": str(tmp_path / "none"), "celeba_dir": "", "prepare_processes": 1,
        "synthetic_dir": str(tmp_path / "synthetic"), "synthetic_faces": 8,
    })
    data.update({key: value.format(tmp=tmp_path) for key, value in changes.items()})
    with pytest.raises(InputError, match=message):
        resolve_store(data, 8, seed=0)
    assert not (tmp_path / "synthetic").exists()  # no fallback to other faces
