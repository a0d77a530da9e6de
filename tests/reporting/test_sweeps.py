"""Sweep plots take one record per sweep point: the newest, when a point was rerun as NAME~2."""

from cirkit.reporting.sweeps import newest_per_point, sweep_series


def record(name: str, scale: float, started: str, value: float) -> dict:
    return {"name": name, "sweep_point": {"embed.scale": scale}, "started": started,
            "metrics": {"sum": value}, "metric_order": ["sum"]}


def test_a_point_rerun_under_another_name_is_plotted_once_with_its_newest_value():
    records = [
        record("s/embed.scale=1.0", 1.0, "2026-12-01T10:00:00Z", 1.0),
        record("s/embed.scale=2.0", 2.0, "2026-12-01T10:00:05Z", 2.0),
        record("s/embed.scale=2.0~2", 2.0, "2026-12-02T09:00:00Z", 5.0),  # rerun after a change: newer
        record("s/embed.scale=3.0~2", 3.0, "2026-11-30T09:00:00Z", 0.5),  # an older record under the ~2 name
        record("s/embed.scale=3.0", 3.0, "2026-12-01T10:00:09Z", 3.0),
    ]
    kept = newest_per_point(records)
    assert [r["name"] for r in kept] == ["s/embed.scale=1.0", "s/embed.scale=2.0~2", "s/embed.scale=3.0"]
    key, metric, [series] = sweep_series(records, "sum")
    assert (key, metric) == ("embed.scale", "sum")
    assert series.points == [(1.0, 1.0), (2.0, 5.0), (3.0, 3.0)]
