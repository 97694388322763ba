"""The progress line: counts, bar, steady-state rate and ETA (start-up and resumed work excluded), silence."""

import io

from gan_arith.progress import Pace, Progress, format_duration, format_eta


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


class FakeClock:
    """A settable monotonic clock: `Progress(..., clock=clock)`, then set `clock.now`."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_start_up_time_inflates_neither_rate_nor_eta():
    # The first update comes after 30 s of compilation; each later step takes 1 s (64 img).
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress(62, unit="img", stream=stream, clock=clock)
    clock.now += 30
    progress.update(1, 64)
    first = stream.getvalue()  # the first update always draws, even in a log file
    assert "1/62" in first and "-- img/s" in first and "ETA --:--" in first and "elapsed 0:30" in first
    assert progress.rate is None and progress.eta is None
    clock.now += 1
    progress.update(1, 64)
    assert progress.rate == 64.0 and progress.eta == 60.0
    line = progress.line()
    assert "64.0 img/s" in line and "ETA 1:00" in line and "elapsed 0:31" in line  # elapsed still from the start
    clock.now += 9
    progress.update(9, 9 * 64)
    assert progress.rate == 64.0 and progress.eta == 51.0
    assert stream.getvalue().count("\n") == 2  # the 10 s log interval counts from the first draw


def test_resumed_work_and_extra_only_updates_do_not_start_the_rate():
    clock = FakeClock()
    progress = Progress(1500, unit="img", done=500, interval=0.0, stream=io.StringIO(), clock=clock)
    clock.now += 5
    progress.update(extra={"shards": "5/15"})  # no progress: the pace has not started
    assert progress.rate is None and "ETA --:--" in progress.line()
    clock.now += 10
    progress.update(16, 16)  # worker start-up and model loading end here
    clock.now += 2
    progress.update(20, 20)
    assert progress.rate == 10.0 and progress.eta == (1500 - 536) / 10.0
    assert progress.units == 36  # what prepare's run summary counts


def test_a_finished_count_has_no_eta_left_even_without_a_rate():
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress(8, unit="img", stream=stream, clock=clock)
    clock.now += 12
    progress.update(8, 512)  # a whole epoch in one dispatch
    progress.close()
    assert stream.getvalue().count("\n") == 1 and "8/8  -- img/s  elapsed 0:12  ETA 0:00" in stream.getvalue()


def test_pace_and_format_eta():
    clock = FakeClock()
    pace = Pace(clock)
    assert pace.rate is None
    clock.now += 40  # e.g. the first dispatch, compilation included
    pace.add(4)
    assert pace.rate is None and format_eta(100, pace.rate) == "--:--"
    clock.now += 2
    pace.add(4)
    assert pace.rate == 2.0 and format_eta(100, pace.rate) == "0:50"
    assert format_eta(0, None) == "0:00"
