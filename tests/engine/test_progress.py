"""Progress without a terminal: periodic plain lines (stage, done of total, rate, ETA), never silence."""

import io

from cirkit.engine.progress import Progress, format_duration


class Clock:
    """A clock the test moves by hand (no sleeps)."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_lines_every_interval_with_rate_and_eta():
    stream, clock = io.StringIO(), Clock()
    with Progress(stream=stream, interval=5.0, clock=clock).bar("embed (images)", total=1000) as advance:
        for _ in range(10):
            clock.now += 2.0  # 100 items every 2 s: 50 items/s
            advance(100)
    lines = stream.getvalue().splitlines()
    # a line at 6 s (300 done), 12 s (600), 18 s (900) and a closing line; nothing more often than every 5 s
    assert lines[0] == "embed (images): 300/1,000 items (30%), 50.0 items/s, 6s elapsed, ETA 14s"
    assert [line.split(":")[1].split(" items")[0].strip() for line in lines] == ["300/1,000", "600/1,000",
                                                                                "900/1,000", "1,000/1,000"]
    assert lines[-1].endswith("20s elapsed, done")


def test_short_stages_print_nothing_and_disabled_prints_nothing():
    stream, clock = io.StringIO(), Clock()
    with Progress(stream=stream, clock=clock).bar("quick", total=10) as advance:
        clock.now += 1.0
        advance(10)
    with Progress(enabled=False, stream=stream, clock=clock).bar("off", total=10) as advance:
        clock.now += 100.0
        advance(10)
    assert stream.getvalue() == ""


def test_durations_read_naturally():
    assert [format_duration(s) for s in (None, 4.4, 185, 3725)] == ["?", "4s", "3m05s", "1h02m"]


def test_a_stage_made_progress_follows_the_surrounding_run():
    from cirkit.engine.progress import progress_enabled

    stream, clock = io.StringIO(), Clock()
    for enabled in (False, True):
        with progress_enabled(enabled), Progress(stream=stream, interval=0.0, clock=clock).bar(
                "train CLIP", total=2, unit="steps") as advance:
            clock.now += 1.0
            advance(1)
            clock.now += 1.0
            advance(1)
    assert stream.getvalue() == ("train CLIP: 1/2 steps (50%), 1.0 steps/s, 1s elapsed, ETA 1s\n"
                                 "train CLIP: 2/2 steps (100%), 1.0 steps/s, 2s elapsed, done\n")
    assert Progress().enabled, "outside any run, progress is shown"
