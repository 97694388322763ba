"""InputError: the checks of what the user asked for raise it (one line on the command line); bugs do not."""

import subprocess
import sys
import types

import ml_collections
import numpy as np
import pytest

from experiments import dcgan_celeba
from gan_arith.config import (
    base_config, check_field_names, check_model_config, check_ranges, check_train_config, selected_kinds,
)
from gan_arith.data.prepare import PrepareError, PrepareSettings
from gan_arith.data.store import attribute_mask, check_query
from gan_arith.errors import InputError
from gan_arith.latent import pools, sweeps
from gan_arith.latent.expression import ExpressionError
from gan_arith.train.loop import check_run_choices
from gan_arith.train.parallel import check_batch_size

NAMES = ("Smiling", "Male")


def test_importing_it_pulls_in_nothing_heavy():
    # Every module may import it: it must not bring jax (or anything else) along, nor cause import cycles.
    code = "import sys, gan_arith.errors; print(sorted(m for m in sys.modules if m.startswith(('jax', 'numpy', 'gan_arith.'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "['gan_arith.errors']"


def _with(config, **changes):
    with config.unlocked():
        config.update(changes)
    return config


def _with_model(kind, **changes):
    config = base_config(kind)
    _with(config.model, **changes)
    return config


@pytest.mark.parametrize("check,message", [
    pytest.param(lambda: pools.check_arithmetic("a - b + d", "a=Smiling; b=Male"), r"unknown concept\(s\) d",
                 id="check_arithmetic-expression"),
    pytest.param(lambda: pools.check_arithmetic("a", "a=1,x", hand_picked=True), "'x' in 'a=1,x' is not a non-negative",
                 id="check_arithmetic-definitions"),
    pytest.param(lambda: pools.check_arithmetic("a", "a=1,100", hand_picked=True, num_candidates=100),
                 "index 100 is out of range", id="check_arithmetic-grid-index"),
    pytest.param(lambda: check_query("Smiling & Mael", NAMES), "unknown attribute 'Mael'", id="check_query"),
    pytest.param(lambda: sweeps.check_edit(NAMES, "Smiling", condition="Smiling"), "is the edited attribute itself",
                 id="check_edit"),
    pytest.param(lambda: check_ranges(ml_collections.ConfigDict({"noise_sets": 1}), at_least={"noise_sets": 2}),
                 r"config\.noise_sets must be an integer >= 2, got 1", id="check_ranges-at_least"),
    pytest.param(lambda: check_ranges(ml_collections.ConfigDict({"top_fraction": 1.5}), fractions=("top_fraction",)),
                 r"config\.top_fraction must be in \(0, 1\], got 1\.5", id="check_ranges-fraction"),
    pytest.param(lambda: check_train_config(_with(base_config("dcgan"), batch_size=0)), r"config\.batch_size must be",
                 id="check_train_config"),
    pytest.param(lambda: check_run_choices(_with(base_config("vae"), best_mode="median"), {"loss"}),
                 r"config\.best_mode must be 'min' or 'max'", id="check_run_choices"),
    pytest.param(lambda: check_batch_size(16, 16, types.SimpleNamespace(size=3)),  # all the check reads of a mesh
                 "batch size 16 does not divide over 3 devices", id="check_batch_size"),
    pytest.param(lambda: check_field_names(dcgan_celeba.get_config(), frozenset({"batch_sise"})),
                 r"did you mean --config\.batch_size", id="check_field_names"),
    pytest.param(lambda: selected_kinds(_with(base_config("vae"), kinds="gan")), "comma-separated subset",
                 id="selected_kinds"),
    pytest.param(lambda: check_model_config(_with_model("dcgan", image_size=64)),
                 r"config\.model\.image_size must be 5·2\^k", id="check_model_config-image_size"),
    pytest.param(lambda: check_model_config(_with_model("dcgan", discriminator_padding="valid")),
                 r"config\.model\.discriminator_padding must be one of same, symmetric", id="check_model_config-choice"),
    pytest.param(lambda: check_model_config(_with_model("dcgan", impl="gpu")),
                 r"config\.model\.impl must be one of auto, plain, fast, got 'gpu'", id="check_model_config-impl"),
    pytest.param(lambda: check_model_config(_with_model("vae", beta=-1.0)),
                 r"config\.model\.beta \(the KL term's weight\) must be a number >= 0", id="check_model_config-beta"),
    pytest.param(lambda: check_model_config(_with_model("ae", image_size=100)),
                 "multiple of 8 for the accordion", id="check_model_config-ae"),
    pytest.param(lambda: check_train_config(_with(base_config("dcgan"), batch_size=7)), "must be even for the GAN",
                 id="check_train_config-odd-gan-batch"),
])
def test_checks_of_user_input_raise_input_error(check, message):
    with pytest.raises(InputError, match=message):
        check()


def test_the_parsers_own_errors_are_input_errors_and_still_value_errors():
    assert issubclass(ExpressionError, InputError) and issubclass(PrepareError, InputError)
    assert issubclass(InputError, ValueError)
    with pytest.raises(ExpressionError, match="position 4"):  # check_arithmetic keeps the parser's own error
        pools.check_arithmetic("a - * b", "a=1; b=2", hand_picked=True)
    with pytest.raises(PrepareError, match="distinct"):
        PrepareSettings(sizes=(80, 80))


def test_a_broken_invariant_stays_a_plain_value_error():
    # A caller passing the wrong array is a bug, not the user's mistake: it keeps its traceback.
    with pytest.raises(ValueError, match=r"attributes must be \[N, 2\]") as info:
        attribute_mask("Smiling", NAMES, np.zeros((3, 5), np.int8))
    assert not isinstance(info.value, InputError)
