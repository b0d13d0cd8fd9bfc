"""The lifelong protocols (``scenarios.lifelong``) on real cached embeddings (issue 18)."""
from __future__ import annotations

import numpy as np
import pytest

from dataclasses import replace

from adapt.personal import Shrinkage
from scenarios.lifelong import (BEFORE, LifelongConfig, UserDays, lifelong_users, new_emotion_users, select_own_emotion,
                                summarize_days)


@pytest.fixture(scope="module")
def emodb_table(six_table):
    return six_table.subset(np.asarray(six_table.corpora) == "emodb")


def test_new_emotion_users_scores_variants_on_the_same_users(emodb_table):
    out = new_emotion_users(emodb_table, "emodb", shots=(5,), folds=2, base=replace(Shrinkage(), **BEFORE),
                            variants=[{}, {"own_offset": 1e6}, {"own_tau": 2.0, "own_centre": 1.0}])
    assert set(out) == {"base", "own_offset=1e+06", "own_centre=1,own_tau=2"}
    rows = [out[n][5] for n in out]
    assert len({r["users"] for r in rows}) == 1 and rows[0]["users"] > 0
    assert len({r["old_before"] for r in rows}) == 1            # one "before" for every variant
    never = out["own_offset=1e+06"][5]
    assert never["new_recall"] == 0.0                           # an infinite offset never predicts the new class
    assert out["base"][5]["new_recall"] > 0.2                 # without it, 5 clips are recognised
    for r in rows:
        assert r["old_delta"] == pytest.approx(r["old_after"] - r["old_before"])
    with pytest.raises(KeyError):
        new_emotion_users(emodb_table, "ravdess")


def test_select_own_emotion_never_looks_at_the_target():
    def r(d, rec):
        return {5: {"old_delta": d, "new_recall": rec}}

    res = {"a": {"x": r(-0.005, 0.7), "y": r(-0.05, 0.9), "z": r(-0.002, 0.4)},
           "b": {"x": r(-0.30, 0.1), "y": r(0.0, 0.95), "z": r(0.0, 0.2)}}
    assert select_own_emotion(res, "b") == "x"       # within 1 point on "a", then the highest recall
    assert select_own_emotion(res, "a") == "y"
    res["b"]["x"] = r(-0.9, 0.0)                      # the target's own numbers change nothing
    assert select_own_emotion(res, "b") == "x"
    res["a"] = {n: r(-0.2, 0.9) for n in "xyz"} | {"z": r(-0.1, 0.0)}
    assert select_own_emotion(res, "b") == "z"       # none within 1 point: the smallest drop
    with pytest.raises(ValueError):
        select_own_emotion({"a": res["a"]}, "a")


def test_days_curves_have_one_value_per_day_and_forgetting_is_the_drop_from_the_best_day(emodb_table):
    cfg = LifelongConfig(days=4, new_day=3, shots=(2,), folds=5)
    users = lifelong_users(emodb_table, "emodb", "seen", cfg, speakers=["emodb_03", "emodb_08"])
    assert users and {u.speaker for u in users} <= {"emodb_03", "emodb_08"}
    for u in users:
        assert len(u.ua) == len(u.old_ua) == len(u.new_recall) == 4
        assert np.isnan(u.new_recall[:2]).all() and np.isfinite(u.new_recall[2:]).all()
        assert all(0.0 <= v <= 1.0 for v in u.ua + u.old_ua)
        assert u.max_drop == pytest.approx(max([0.0] + [max(u.old_ua[:i]) - u.old_ua[i] for i in range(1, 4)]))
    s = summarize_days(users)
    assert list(s) == [("emodb", "seen", 2)] and s[("emodb", "seen", 2)]["users"] == len(users)
    with pytest.raises(ValueError):
        lifelong_users(emodb_table, "emodb", "sometimes", cfg)


def test_user_days_max_drop():
    u = UserDays("c", "s", "seen", 5, "sad", (0.5,) * 4, (0.5, 0.7, 0.6, 0.65), (np.nan,) * 4, new_day=3)
    assert u.max_drop == pytest.approx(0.1)
    assert u.add_drop == pytest.approx(0.1)                     # day 2 -> day 3, the day of add_emotion
    assert replace(u, new_day=4).add_drop == 0.0                # it rose that day
