"""One short module per run or figure: a docstring (command, runtime, expected result), get_config(), one call."""
