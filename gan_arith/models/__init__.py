"""The seeds' models as pure flax.linen modules: they import nothing of data, I/O or figures."""
