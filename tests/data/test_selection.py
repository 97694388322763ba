import ml_collections
import numpy as np
import pytest

from gan_arith.data.selection import held_out_faces, select_faces
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


def test_held_out_faces_are_never_the_training_or_the_test_faces(tmp_path):
    store = write_synthetic_store(tmp_path / "faces", num_faces=50, image_sizes=[8], seed=0, shard_size=50)
    for partition, held_out in (("train", "valid"), ("valid", "train"), ("validation", "train"), ("test", "valid")):
        np.testing.assert_array_equal(held_out_faces(store, _data(partition=partition)), store.select(None, held_out))
    np.testing.assert_array_equal(held_out_faces(store, _data(partition="train", query="Smiling")),
                                  store.select("Smiling", "valid"))
    assert len(held_out_faces(store, _data())) == 0  # a run on every face has none held out
