"""The speed benchmark (``python -m gan_arith.bench``: `measure`), its FLOP count (`flops`), GPU trace
reading (`trace`) and report (`report`)."""
