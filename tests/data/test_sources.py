import ml_collections
import numpy as np
import pytest

from gan_arith.data.sources import resolve_store, select_faces
from gan_arith.data.synthetic import write_synthetic_store
from gan_arith.errors import InputError


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_synthetic_store(tmp_path_factory.mktemp("faces"), num_faces=40, image_sizes=[8])


def _data(**changes) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"query": "", "partition": "", "max_faces": 0, **changes})


def test_select_faces_applies_query_partition_and_cap(store):
    smiling = store.attribute_names.index("Smiling")
    rows = select_faces(store, _data(query="Smiling"))
    assert 0 < len(rows) < store.num_faces and np.all(store.attributes[rows, smiling] == 1)
    assert np.array_equal(select_faces(store, _data(query="Smiling", max_faces=3)), rows[:3])
    assert len(select_faces(store, _data())) == store.num_faces


@pytest.mark.parametrize("changes,message", [
    ({"query": "Smilng"}, r"config\.data\.query: .*unknown attribute 'Smilng'"),
    ({"query": "Smiling & ~Smiling"}, "no faces in .* match partition='' query='Smiling & ~Smiling'"),
])
def test_select_faces_refuses_a_bad_or_empty_selection_as_the_users_mistake(store, changes, message):
    with pytest.raises(InputError, match=message):
        select_faces(store, _data(**changes))


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
