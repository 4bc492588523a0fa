"""`make bench` says of each goal whether the run met it, so bench/results.json reads without a calculator."""

from __future__ import annotations

from bench.__main__ import GOALS, judged


def test_goals_are_judged_with_inclusive_bounds_and_only_when_measured() -> None:
    figures = {
        "write_ratio_vs_raw_psycopg": 0.6,  # at least 0.6: met at the bound
        "server_cpu_per_write_over_echo": 2.51,  # at most 2.5: not met
        "server_cpu_per_write_over_library_floor": 1.3,  # at most 1.3: met at the bound
        "write_ratio_vs_library_floor": 0.84,  # at least 0.85: not met
        "unrelated_figure": 7,
    }
    goals = judged(figures)
    assert goals == {
        "write_ratio_vs_raw_psycopg": {"at_least": 0.6, "met": True},
        "server_cpu_per_write_over_echo": {"at_most": 2.5, "met": False},
        "server_cpu_per_write_over_library_floor": {"at_most": 1.3, "met": True},
        "write_ratio_vs_library_floor": {"at_least": 0.85, "met": False},
    }


def test_every_goal_names_a_bound_the_judge_knows() -> None:
    for name, goal in GOALS.items():
        assert goal and set(goal) <= {"at_most", "at_least"}, name
