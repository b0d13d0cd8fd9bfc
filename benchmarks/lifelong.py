"""Lifelong personalization: new emotions, days of use, feedback to the global head (issue #18).

Writes ``benchmarks/results/lifelong.md`` and rebuilds BENCHMARKS.md.

    .venv/bin/python -m benchmarks.lifelong                 # the shared corpora (13-14 min on 2 loaded cores)
    .venv/bin/python -m benchmarks.lifelong --quick         # EmoDB + EMOVO, fewer variants: a smoke run, writes nothing

Three parts, all on cached embeddings through the ``Personalizer`` ``*_embeddings`` API
(``scenarios.lifelong``):

1. *New emotion* (``new_emotion_users``): the protocol of the few-shot new-emotion table
   (``benchmarks.fewshot``; speaker 5-fold, every emotion held out in turn) on the application
   path: each held-out speaker observes their clips without labels, then ``add_emotion``s the
   held-out emotion from K of their own clips. ``before`` is ``add_emotion`` before this issue;
   the setting of ``Shrinkage.own_tau`` / ``own_offset`` / ``own_centre`` is picked for each
   corpus on the *other* corpora (leave the target corpus out; ``select_own_emotion``).
2. *Days of use* (``lifelong_users``): 10 days of unlabelled clips and 2 corrections a day, a new
   emotion on day 5 with K in {2, 5}; seen (speaker folds) and unseen (leave one corpus out) heads.
3. *Feedback* (``feedback_transfer``): half of a held-out corpus's speakers correct 5 clips per
   emotion and consent; their statistics are folded into a new head version, gated on held-out
   speakers of the training corpora; the other half is scored unenrolled before and after.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

from ._common import SHARED_CORPORA, load_average, provenance
from .render import publish

TARGETS = ("ravdess", "emodb", "emovo")
SELECTION = ("ravdess", "emodb", "emovo", "rcebrian_es")   # the pool the leave-one-corpus-out choice draws on
#: the issue's "today" (few-shot new-emotion table, linear+norm, K=5): old-class change, new-class recall
TODAY = {"ravdess": (-3.1, 0.58), "emodb": (-3.6, 0.68), "emovo": (-4.8, 0.39)}


def part_new_emotion(table, corpora, grid, shots):
    from adapt.personal import Shrinkage
    from scenarios.lifelong import BEFORE, _name, new_emotion_users, select_own_emotion

    res = {}
    shipped = {k: getattr(Shrinkage(), k) for k in BEFORE}
    variants = list(grid) + ([shipped] if shipped not in grid else [])
    for c in corpora:
        t0 = time.perf_counter()
        # base: add_emotion before this issue; every variant is on top of it
        res[c] = new_emotion_users(table, c, shots=shots, variants=[{}] + variants, base=replace(Shrinkage(), **BEFORE))
        print(f"new emotion {c}: {time.perf_counter() - t0:.0f} s", flush=True)
    chosen = {c: select_own_emotion({k: {n: r for n, r in v.items() if n != "base"} for k, v in res.items()}, c,
                                    k=max(shots)) for c in corpora if c in TARGETS}
    all_four = select_own_emotion({k: {n: r for n, r in v.items() if n != "base"} for k, v in res.items()}, None,
                                  k=max(shots))
    return res, chosen, {_name(v): v for v in variants}, _name(shipped), all_four


def render(res, chosen, days, feedback, shots, args, wall, shipped, all_four) -> str:
    k = max(shots)
    lines = ["## Lifelong personalization: new emotions, days of use, feedback (issue #18)", "", provenance(), "",
             f"Wall time {wall / 60:.1f} min; 1-min load average at the end {load_average() or float('nan'):.1f} (cores shared with "
             "other jobs: times measured under load are pessimistic). Everything runs on cached embeddings of the "
             "default backbone through the `Personalizer` `*_embeddings` API (`scenarios.lifelong`).", "",
             "### New emotion from K of the user's own clips (`add_emotion`)", "",
             "Protocol of the few-shot new-emotion table (speaker 5-fold within the corpus, every emotion held out of "
             "the head in turn, old-class UA on the held-out speakers before and after with the new class among the "
             "predictions, speakers standardized from their clips without labels), but on the application path: each "
             "held-out speaker observes their clips, then adds the held-out emotion from K of their *own* clips; "
             "scored on their other clips (not sentence-disjoint: RAVDESS has 4 clips of an emotion per sentence). "
             "*before*: `add_emotion` before this issue (`own_tau = own_offset = own_centre = 0`: the user's plain "
             "mean). *chosen without c*: the setting of `Shrinkage.own_tau / own_offset / own_centre` picked for corpus "
             "c on the *other* corpora of " + ", ".join(SELECTION) + " (`select_own_emotion`: mean old-class change "
             f">= -1 point at K={k}, then the highest mean recall: the rule of the few-shot `-cal` heads). *shipped*: "
             f"the `Shrinkage` defaults, the same rule on all four corpora (this run picks {all_four}); it has seen "
             "the target corpus, so the held-out numbers are the *chosen* rows. *today*: the issue's reference "
             "(`linear+norm` heads of the few-shot table, K=5, new class enrolled from training speakers).", "",
             "| corpus | setting | K | old UA before | old UA after | change (points) | new-class recall | UA all | users |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in res:
        names = {"base": "before (0, 0, 0)", shipped: f"shipped: {shipped}"}
        if c in chosen:
            names[chosen[c]] = names.get(chosen[c], "") + f" chosen without {c}: {chosen[c]}"
        for name, tag in names.items():
            for kk, r in sorted(res[c][name].items()):
                lines.append(f"| {c} | {tag} | {kk} | {r['old_before']:.3f} | {r['old_after']:.3f} | "
                             f"{100 * r['old_delta']:+.1f} | {r['new_recall']:.3f} | {r['ua']:.3f} | {r['users']} |")
    lines += ["", f"Every setting tried (K={k}: change in points / recall):", "",
              "| setting | " + " | ".join(res) + " |", "|---|" + "---|" * len(res)]
    for name in res[next(iter(res))]:
        lines.append(f"| {name} | " + " | ".join(f"{100 * res[c][name][k]['old_delta']:+.1f} / "
                                                 f"{res[c][name][k]['new_recall']:.2f}" for c in res) + " |")
    lines += ["", "#### Target: 5 clips, old-class change >= -2 points and new-class recall >= 0.60", "",
              "| corpus | today (issue) | before, this protocol | chosen without the corpus | met |",
              "|---|---|---|---|---|"]
    for c in chosen:
        d, r = res[c]["base"][k], res[c][chosen[c]][k]
        met = r["old_delta"] >= -0.02 and r["new_recall"] >= 0.60
        t = TODAY.get(c)
        lines.append(f"| {c} | {t[0]:+.1f} / {t[1]:.2f} | {100 * d['old_delta']:+.1f} / {d['new_recall']:.2f} | "
                     f"{100 * r['old_delta']:+.1f} / {r['new_recall']:.2f} | {'met' if met else 'missed'} |")
    if days:
        lines += ["", "### Days of use", "",
                  "Each held-out speaker (5 speaker folds; fold i's new emotion is the corpus's i-th emotion, held out of "
                  "that fold's head) lives 10 days: each day `observe`s a tenth of their clips of the other emotions and "
                  "`update`s 2 of them with the true label; on day 5 the new emotion is added with K clips "
                  "(`add_emotion`, the chosen setting of the corpus). After each day: UA on the user's held-out clips "
                  "(the other half of the sentences where the corpus has text ids) of every emotion so far, and of the "
                  "earlier emotions. *seen*: head trained on every corpus but the user's fold; *unseen*: on the other "
                  "corpora only. Forgetting = the largest drop of a user's earlier-emotion UA below its best earlier "
                  "day.", "",
                  "| corpus | head | K | users | UA day 1 -> 10 (all emotions so far) | earlier emotions day 1 / 4 / 5 / 10 "
                  "| new recall day 5 / 10 | median forgetting | largest | users within 2 points | largest drop on day 5 | "
                  "users within 2 points on day 5 |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for (c, s, kk), v in days.items():
            ua, old, new = v["ua"], v["old_ua"], v["new_recall"]
            lines.append(f"| {c} | {s} | {kk} | {v['users']} | " + " ".join(f"{x:.2f}" for x in ua) + " | "
                         f"{old[0]:.3f} / {old[3]:.3f} / {old[4]:.3f} / {old[-1]:.3f} | {new[4]:.2f} / {new[-1]:.2f} | "
                         f"{100 * v['median_drop']:.1f} | {100 * v['max_drop']:.1f} | {v['within_2']:.0%} | "
                         f"{100 * v['add_drop_max']:.1f} | {v['add_within_2']:.0%} |")
        met = all(v["max_drop"] <= 0.02 + 1e-9 for v in days.values())
        lines += ["", f"Target (over 10 days no user's UA on their earlier emotions drops by more than 2 points): "
                  f"**{'met' if met else 'missed'}** (largest drop of any user "
                  f"{100 * max(v['max_drop'] for v in days.values()):.1f} points). On the day of `add_emotion` alone "
                  f"the largest drop is {100 * max(v['add_drop_max'] for v in days.values()):.1f} points. The other "
                  "drops come from days of plain use (new normalization statistics, corrections of other clips): a "
                  "user's test set holds 10-40 clips of the earlier emotions, so one clip is 2-10 points of that "
                  "user's UA."]
    if feedback:
        from scenarios.lifelong import _name

        lines += ["", "### Feedback aggregation: the next users of a corpus the head never saw", "",
                  "For each held-out corpus the base head is trained on the other five corpora minus a quarter of each "
                  "one's speakers (the frozen set). Half the held-out corpus's speakers (seeded) observe their clips and "
                  "correct 5 clips per emotion, consent, and `FeedbackAggregator.fold` merges their statistics into a "
                  "candidate version (streaming-LDA running means: class means with `prior_clips` pseudo-clips of the "
                  "current mean, normalization prior with `prior_speakers` pseudo-speakers), scored on the frozen set on "
                  "the unenrolled and observed paths (gate: no path more than 1 point below the current version or the "
                  "base). The other half of the corpus is scored *unenrolled* (no profile), with the corpus's emotions, "
                  "before and after. *chosen*: the setting picked by `select_feedback` without the corpus (the same "
                  "protocol with each other corpus of " + ", ".join(SELECTION) + " held out in turn, on the table "
                  "without the target; highest mean gain of the served version). Forgetting: the largest drop of the "
                  "candidate below the base on a frozen-set path (negative: it improved).", "",
                  "| held-out corpus | setting | feeders / next | next users unenrolled before | candidate | served after "
                  "gate | gain (points) | frozen unenrolled / observed: base -> candidate | forgetting (points) | gate |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for c, best, inner, rows in feedback:
            for r in rows:
                tag = _name(r.options) + (" **chosen**" if r.options == best else "")
                g = r.gate["paths"]
                fro = " / ".join(f"{g[p]['base']:.3f} -> {g[p]['candidate']:.3f}" for p in g)
                lines.append(f"| {c} | {tag} | {r.feeders} / {r.next_users} | {r.next_before:.3f} | "
                             f"{r.next_candidate:.3f} | {r.next_after:.3f} | {100 * r.gain:+.1f} | {fro} | "
                             f"{100 * r.forgetting:+.1f} | {'accepted' if r.accepted else 'rejected (rolled back)'} |")
        lines += ["", "Inner (leave-one-training-corpus-out) mean gains behind each choice:", ""]
        for c, best, inner, rows in feedback:
            lines.append(f"- {c}: " + ", ".join(f"{n} {100 * v:+.1f}" for n, v in inner.items()))
        verdicts = []
        for c, best, inner, rows in feedback:
            r = next(r for r in rows if r.options == best)
            ok = r.gain >= 0.05 and r.forgetting <= 0.01
            cand = 100 * (r.next_candidate - r.next_before)
            verdicts.append(f"{c} {100 * r.gain:+.1f} points served (candidate {cand:+.1f}, its forgetting "
                            f"{100 * r.forgetting:+.1f}, {'accepted' if r.accepted else 'rejected by the gate'}): "
                            f"{'met' if ok else 'missed'}")
        lines += ["", "Target (after feedback from 50 % of a corpus's speakers, unenrolled UA of the others +5 points on a "
                  "corpus the head never saw; forgetting on the training corpora <= 1 point), chosen setting: "
                  + "; ".join(verdicts) + ". Where the gate rejects, the candidate's gain for the next users comes "
                  "with a larger loss on the frozen set's unenrolled path: moving the one normalization prior toward "
                  "the new corpus's speakers moves it away from the training corpora's."]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="EmoDB and EMOVO only, a smaller grid, no days for unseen")
    ap.add_argument("--no-days", action="store_true")
    ap.add_argument("--no-feedback", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from scenarios.lifelong import (FEEDBACK_GRID, OWN_GRID, LifelongConfig, feedback_transfer, lifelong_users,
                                    select_feedback, summarize_days)
    from scenarios.tables import FeatureTable

    from adapt.personal import Shrinkage

    t0 = time.perf_counter()
    table = FeatureTable.from_corpora(list(SHARED_CORPORA))
    shots = (2, 5)
    selection = ("emodb", "emovo") if args.quick else SELECTION
    grid = OWN_GRID[::3] if args.quick else OWN_GRID
    res, chosen, by_name, shipped, all_four = part_new_emotion(table, selection, grid, shots)
    days = {}
    if not args.no_days:
        users = []
        for c in chosen:
            v = by_name.get(chosen[c], {})
            cfg = LifelongConfig(shrinkage=replace(Shrinkage(), **v))
            for setting in (("seen",) if args.quick else ("seen", "unseen")):
                t1 = time.perf_counter()
                users += lifelong_users(table, c, setting, cfg)
                print(f"days {c} {setting}: {time.perf_counter() - t1:.0f} s", flush=True)
        days = summarize_days(users)
    feedback = []
    if not args.no_feedback:
        for c in (("emovo",) if args.quick else TARGETS):
            t1 = time.perf_counter()
            best, inner = select_feedback(table, c, SELECTION)
            rows = feedback_transfer(table, c, grid=FEEDBACK_GRID)
            feedback.append((c, best, inner, rows))
            print(f"feedback {c}: {time.perf_counter() - t1:.0f} s", flush=True)
    text = render(res, chosen, days, feedback, shots, args, time.perf_counter() - t0, shipped, all_four)
    print(text)
    if not args.no_write and not args.quick:
        publish("lifelong", text)


if __name__ == "__main__":
    main()
