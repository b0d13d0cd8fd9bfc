"""scenarios.corpora on the four real corpora, plus malformed metadata in a temp dir."""
from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from scenarios.corpora import (
    CANONICAL_EMOTIONS,
    available_corpora,
    data_root,
    harmonize_emotion,
    load_corpus,
)

NAMES = ["ravdess", "emodb", "emovo", "urdu"]


def _metadata_rows(folder: Path) -> list[dict]:
    with (folder / "metadata.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("name", NAMES)
def test_counts_match_metadata(name, request):
    corpus = request.getfixturevalue(name)
    rows = _metadata_rows(corpus.root)
    assert len(corpus) == len(rows) > 0
    assert corpus.speakers == tuple(sorted({r["speaker"] for r in rows}))
    assert corpus.counts() == dict(sorted(Counter(harmonize_emotion(r["emotion"]) for r in rows).items()))
    assert all(s.startswith(f"{name}_") for s in corpus.speakers)  # globally unique ids
    assert set(corpus.emotions) <= set(CANONICAL_EMOTIONS)
    assert len({r.clip_id for r in corpus}) == len(corpus)
    assert all(r.path.is_file() for r in corpus)
    assert all(r.corpus == name and r.duration_s > 0 and r.gender in ("f", "m") for r in corpus)


def test_data_readme_facts(ravdess, emodb, emovo, urdu):
    # the numbers in /work/shared/data/README.md, read back from disk
    table = {c.name: (len(c), len(c.speakers), set(c.languages)) for c in (ravdess, emodb, emovo, urdu)}
    readme = (data_root() / "README.md").read_text()
    for name, (files, speakers, langs) in table.items():
        row = re.search(rf"^\| {name} \| (\w+) \| (\d+) \| (\d+)", readme, re.M)
        assert row, f"{name} missing from the data README"
        assert (row.group(1), int(row.group(2)), int(row.group(3))) == (langs.pop(), files, speakers)


def test_text_ids(ravdess, emodb, emovo, urdu):
    for r in ravdess:
        # modality-channel-emotion-intensity-STATEMENT-repetition-actor
        assert r.text_id == "s" + r.path.stem.split("-")[4]
    assert {r.text_id for r in ravdess} == {"s01", "s02"}
    for r in emodb:
        assert r.text_id == r.path.stem[2:5] and re.fullmatch(r"[ab]\d\d", r.text_id)
    for r in emovo:
        assert r.text_id == r.path.stem.split("-")[2]
    # every EMOVO speaker reads every sentence
    per_speaker = {s: {r.text_id for r in emovo if r.speaker == s} for s in emovo.speakers}
    assert len({frozenset(v) for v in per_speaker.values()}) == 1
    assert {r.text_id for r in urdu} == {None}  # no fixed texts


def test_filtering(ravdess, emodb):
    sub = ravdess.filter(speakers=["ravdess_01", "ravdess_02"], emotions=["Anger", "sad"])
    assert sub.speakers == ("ravdess_01", "ravdess_02") and sub.emotions == ("angry", "sad")
    assert len(sub) == sum(1 for r in ravdess if r.speaker in ("ravdess_01", "ravdess_02") and r.emotion in ("angry", "sad"))
    only_s01 = ravdess.filter(where=lambda r: r.text_id == "s01")
    assert len(only_s01) * 2 == len(ravdess)
    assert len(emodb.filter(languages=["de"])) == len(emodb)
    for kwargs, word in ((dict(speakers=["nobody"]), "speaker"), (dict(emotions=["contempt"]), "emotion"),
                         (dict(languages=["xx"]), "language")):
        with pytest.raises(KeyError, match=f"unknown {word}"):
            ravdess.filter(**kwargs)
    both = ravdess.filter(emotions=["angry"]) + emodb.filter(emotions=["angry"])
    assert set(both.languages) == {"en", "de"} and both.emotions == ("angry",)
    picked = ravdess.subset([5, 0])
    assert [r.clip_id for r in picked] == [ravdess[5].clip_id, ravdess[0].clip_id]


def test_harmonize():
    assert harmonize_emotion(" Anger ") == "angry"
    assert harmonize_emotion("ps") == "surprise" and harmonize_emotion("fearful") == "fear"
    assert harmonize_emotion("Contempt") == "contempt"  # unknown labels pass through lower-cased


def test_available_and_missing(data_dir, tmp_path):
    assert set(NAMES) <= set(available_corpora())
    assert available_corpora(tmp_path / "nowhere") == []
    with pytest.raises(FileNotFoundError, match="known corpora: .*ravdess"):
        load_corpus("no_such_corpus")


def test_env_override(monkeypatch, tmp_path):
    _write(tmp_path / "mini", [dict(path="audio/x.flac", speaker="mini_1", emotion="Happiness", language="en",
                                    gender="f", duration_s="1.5")])
    monkeypatch.setenv("SER_ADAPT_DATA", str(tmp_path))
    assert available_corpora() == ["mini"]
    c = load_corpus("mini")
    assert c.emotions == ("happy",) and c[0].text_id is None
    assert load_corpus(tmp_path / "mini").name == "mini"  # by folder path too


def _write(folder: Path, rows: list[dict], columns=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    columns = columns or ["path", "speaker", "emotion", "language", "gender", "duration_s"]
    with (folder / "metadata.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, columns)
        w.writeheader()
        w.writerows(rows)
    return folder


GOOD = dict(path="audio/a.flac", speaker="t_1", emotion="sad", language="en", gender="m", duration_s="1.0")


@pytest.mark.parametrize("bad,match", [
    (dict(duration_s="long"), "not a number"),
    (dict(duration_s="-1"), "positive"),
    (dict(duration_s="nan"), "positive"),
    (dict(speaker=""), "empty"),
    (dict(emotion=" "), "empty"),
])
def test_malformed_rows(tmp_path, bad, match):
    folder = _write(tmp_path / "broken", [GOOD, {**GOOD, **bad}])
    with pytest.raises(ValueError, match=match) as info:
        load_corpus(folder)
    assert "metadata.csv:3" in str(info.value)  # the message points at the line


def test_missing_column(tmp_path):
    folder = _write(tmp_path / "nocol", [{k: v for k, v in GOOD.items() if k != "gender"}],
                    columns=["path", "speaker", "emotion", "language", "duration_s"])
    with pytest.raises(ValueError, match=r"lacks columns \['gender'\]"):
        load_corpus(folder)
