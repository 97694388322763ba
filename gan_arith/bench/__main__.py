"""``python -m gan_arith.bench``: see `gan_arith.bench.measure`."""

from gan_arith.bench.measure import main

main()
