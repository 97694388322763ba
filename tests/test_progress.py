"""The progress line: counts, bar, rate over the units processed here (not resumed work), ETA, silence."""

import io

from gan_arith.progress import Progress, format_duration


def test_line_counts_units_done_here_and_draws_to_its_stream():
    stream = io.StringIO()
    progress = Progress(10, label="epoch 1/2", unit="img", done=4, interval=0.0, stream=stream)
    progress.update(2, 128, {"d_loss": 0.5})
    line = progress.line()
    assert line.startswith("epoch 1/2 [############--------] 6/10")
    assert "img/s" in line and "d_loss 0.5" in line and "ETA" in line
    assert progress.units == 128 and progress.done == 6
    assert stream.getvalue().count("\n") == 1  # not a terminal: one line per draw
    progress.update(4, 256)
    progress.close()  # the last update's line is already in the log: not written twice
    assert stream.getvalue().count("\n") == 2 and "10/10" in stream.getvalue()


def test_disabled_progress_counts_but_writes_nothing():
    stream = io.StringIO()
    progress = Progress(3, interval=0.0, stream=stream, enabled=False)
    progress.update(3, 30)
    progress.close()
    assert stream.getvalue() == "" and progress.units == 30


def test_format_duration():
    assert format_duration(59.6) == "1:00"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(-3) == "0:00"
