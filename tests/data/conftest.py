"""Face preparation's test inputs: the shared MTCNN detector, a folder of every bad-input kind, a mocked tfds celeb_a."""

import io
import re
import types
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image


def astronaut_head(size: int = 192) -> np.ndarray:
    """A size x size crop of skimage's astronaut around her face (face ~ 0.2 * size wide)."""
    return np.asarray(Image.fromarray(skimage.data.astronaut()[0:384, 32:416]).resize((size, size)))


def save(path: Path, array_or_image, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    image.save(path, fmt)


@pytest.fixture(scope="session")
def detector():
    """The detector prepare's in-process mode uses (built once per process; TensorFlow limited to one thread first)."""
    from gan_arith.data import prepare

    settings = prepare.PrepareSettings()
    return prepare._cached_detector(settings.min_confidence, settings.max_detect_side)


@pytest.fixture
def bad_folder(tmp_path) -> tuple[Path, dict]:
    """A folder with every bad-input kind, and the counts a prepare run over it reports."""
    root = tmp_path / "raw"
    head = astronaut_head()
    jpeg = io.BytesIO()
    Image.fromarray(head).save(jpeg, "JPEG", quality=90)
    jpeg = jpeg.getvalue()
    save(root / "good.jpg", head)
    save(root / "nested" / "deeper" / "good.webp", head)
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    scan = jpeg.find(b"\xff\xda")  # start of scan: a broken scan header is a corrupt JPEG
    (root / "corrupt.jpg").write_bytes(jpeg[: scan + 4] + b"\xff" * 36 + jpeg[scan + 40 :])
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.jpg").write_bytes(jpeg)  # hidden files are not part of the source
    save(root / "gray.png", Image.fromarray(head).convert("L"))
    save(root / "nested" / "cmyk.jpg", Image.fromarray(head).convert("CMYK"))
    save(root / "rgba.png", Image.fromarray(head).convert("RGBA"))
    save(root / "gray16.png", Image.fromarray(head[..., 1].astype(np.uint16) * 257))
    save(root / "tiny.png", head[::8, ::8])  # 24 x 24 < min_image_size
    save(root / "noise.png", np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    save(root / "two.jpg", np.concatenate([head, head[:, ::-1]], axis=1))
    counts = {
        "seen": 12,
        "kept": 7,
        "skipped": {"corrupt": 1, "truncated": 1, "not_image": 1, "too_small": 1, "no_face": 1},
        "handled": {
            "converted_L": 1, "converted_CMYK": 1, "converted_RGBA": 1, "converted_I;16": 1, "multiple_faces": 1
        },
    }
    return root, counts


# The mocked celeb_a's split sizes (tiny; the real ones are 162,770 / 19,867 / 19,962).
MOCK_SPLITS = {"train": 3, "validation": 1, "test": 2}


def mock_example_image(split: str, index: int) -> np.ndarray:
    """Example ``index`` of ``split``: a 218 x 178 (CelebA's shape) crop of the astronaut around her face,
    shifted so that every example differs."""
    shift = 3 * index + 10 * list(MOCK_SPLITS).index(split)
    return skimage.data.astronaut()[shift : 218 + shift, 120 + shift : 298 + shift]


@pytest.fixture
def mock_celeb_a(tmp_path):
    """tensorflow-datasets' own mock of ``celeb_a`` with MOCK_SPLITS examples, honouring ``split[lo:hi]`` slices.

    Example i of a split is `mock_example_image(split, i)`, Smiling iff i is even, other attributes False;
    its tfds id is ``celeb_a-<split>.tfrecord-00000-of-00001__<i>``. Yields the split sizes and that image function.
    """
    from gan_arith.data.faces import limit_tf_threads

    limit_tf_threads()  # before TensorFlow starts in this process, as prepare's own detector would
    import tensorflow as tf
    import tensorflow_datasets as tfds

    data_dir = tmp_path / "tfds"
    builder = tfds.builder("celeb_a", data_dir=str(data_dir))
    builder.info.set_splits(
        tfds.core.SplitDict(
            [tfds.core.SplitInfo(name=s, shard_lengths=[n], num_bytes=0) for s, n in MOCK_SPLITS.items()]
        )
    )
    Path(builder.data_dir).mkdir(parents=True)
    builder.info.write_to_directory(builder.data_dir)  # the split sizes tfds_source reads

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        name, lo, hi = re.fullmatch(r"(\w+)\[(\d*):(\d*)\]", split).groups()
        indices = range(MOCK_SPLITS[name])[slice(int(lo) if lo else None, int(hi) if hi else None)]
        features = self.info.features

        def examples():
            for i in indices:
                yield {
                    "image": mock_example_image(name, i),
                    "attributes": {a: a == "Smiling" and i % 2 == 0 for a in features["attributes"].keys()},
                    "landmarks": {k: 0 for k in features["landmarks"].keys()},
                    "identity": {"Identity_No": i},
                    "tfds_id": f"celeb_a-{name}.tfrecord-00000-of-00001__{i}",
                }

        signature = {**features.get_tensor_spec(), "tfds_id": tf.TensorSpec((), tf.string)}
        assert read_config.add_tfds_id and not shuffle_files  # what tfds_source asks for
        return tf.data.Dataset.from_generator(examples, output_signature=signature)

    with tfds.testing.mock_data(data_dir=str(data_dir), as_dataset_fn=as_dataset):
        yield types.SimpleNamespace(splits=MOCK_SPLITS, image=mock_example_image)
