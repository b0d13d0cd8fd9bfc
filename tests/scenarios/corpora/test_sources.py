"""scenarios.corpora / scenarios.corpora.download against a local HTTP server, and the file-name parsers."""
from __future__ import annotations

import csv
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from adapt.audio import load_audio
from adapt.errors import ChecksumMismatchError, ChecksumRequiredError, DownloadError
from scenarios.corpora import SOURCES, get_source, load_corpus, prepare
from scenarios.corpora import filenames as P
from scenarios.corpora.download import extract_archive
from tests.helpers.foundation import LocalServer, Served, ravdess_like_zip, tree


@pytest.fixture(scope="module")
def archive():
    data, expected = ravdess_like_zip()
    return data, hashlib.sha256(data).hexdigest(), expected


def _prepare(url, dest, dl, **kw):
    return prepare("ravdess", dest, url=url, download_dir=dl, backoff=0, timeout=10, **kw)


def _check_prepared(dest: Path, expected: dict) -> None:
    corpus = load_corpus("ravdess", root=dest)
    got = {str(r.path.relative_to(corpus.root)): r for r in corpus}
    assert set(got) == set(expected)
    for rel, want in expected.items():
        r = got[rel]
        assert (r.speaker, r.emotion, r.gender, r.text_id) == (want["speaker"], want["emotion"], want["gender"], want["text_id"])
        assert r.language == "en" and r.duration_s == pytest.approx(0.6, abs=1e-3)
    w = load_audio(corpus[0].path)
    assert w.original_sample_rate == 16_000 and w.duration_s == pytest.approx(0.6, abs=1e-3)
    prov = (corpus.root / "PROVENANCE.md").read_text()
    assert "notes.wav" in prov and "03-01-08-01-01-01-02.wav" in prov  # skipped members are listed
    assert "__MACOSX" not in prov
    assert tree(dest) == sorted(["ravdess"] + [f"ravdess/{p}" for p in tree(dest / "ravdess")])  # no temp leftovers


def test_prepare_with_good_checksum(tmp_path, archive):
    data, digest, expected = archive
    served = Served(files={"/ravdess.zip": data})
    with LocalServer(served) as base:
        folder = _prepare(f"{base}/ravdess.zip?download=1", tmp_path / "data", tmp_path / "dl", sha256=digest)
    assert folder == tmp_path / "data" / "ravdess"
    _check_prepared(tmp_path / "data", expected)
    with (folder / "metadata.csv").open() as fh:
        assert csv.DictReader(fh).fieldnames[:6] == ["path", "speaker", "emotion", "language", "gender", "duration_s"]
    assert [r["range"] for r in served.requests] == [None]


def test_bad_checksum_leaves_dest_untouched(tmp_path, archive):
    data, _, _ = archive
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "other.txt").write_text("keep me")
    with LocalServer(Served(files={"/r.zip": data})) as base:
        with pytest.raises(ChecksumMismatchError, match="expected 0{64}, got"):
            _prepare(f"{base}/r.zip", tmp_path / "data", tmp_path / "dl", sha256="0" * 64)
    assert tree(tmp_path / "data") == ["other.txt"]
    assert tree(tmp_path / "dl") == []  # the bad download is deleted, so a retry fetches it again


@pytest.mark.parametrize("mode", ["drop_first", "ignore_range"])
def test_dropped_connection_is_resumed_or_retried(tmp_path, archive, mode):
    data, digest, expected = archive
    served = Served(files={"/r.zip": data}, mode=mode, drop_at=len(data) // 3)
    with LocalServer(served) as base:
        _prepare(f"{base}/r.zip", tmp_path / "data", tmp_path / "dl", sha256=digest)
    _check_prepared(tmp_path / "data", expected)
    # the second request asked for the rest; a server that ignores Range made the client restart
    assert [r["range"] for r in served.requests] == [None, f"bytes={len(data) // 3}-"]


def test_wrong_range_answer_is_not_spliced(tmp_path, archive):
    data, digest, expected = archive
    served = Served(files={"/r.zip": data}, mode="wrong_range", drop_at=len(data) // 4)
    with LocalServer(served) as base:
        _prepare(f"{base}/r.zip", tmp_path / "data", tmp_path / "dl", sha256=digest)
    _check_prepared(tmp_path / "data", expected)
    assert [r["range"] for r in served.requests] == [None, f"bytes={len(data) // 4}-", None]


def test_failing_network_keeps_part_and_resumes_later(tmp_path, archive):
    data, digest, expected = archive
    served = Served(files={"/r.zip": data}, mode="always_drop", drop_at=1000)
    with LocalServer(served) as base:
        with pytest.raises(DownloadError, match="after 3 attempts"):
            _prepare(f"{base}/r.zip", tmp_path / "data", tmp_path / "dl", sha256=digest, retries=2)
        assert not (tmp_path / "data").exists()
        parts = tree(tmp_path / "dl")
        assert len(parts) == 1 and parts[0].endswith(".part")
        kept = (tmp_path / "dl" / parts[0]).stat().st_size
        assert kept == 3000  # three attempts of 1000 bytes each, appended
        served.mode = "ok"
        _prepare(f"{base}/r.zip", tmp_path / "data", tmp_path / "dl", sha256=digest)
    assert served.requests[-1]["range"] == f"bytes={kept}-"
    _check_prepared(tmp_path / "data", expected)


def test_checksum_required_then_confirmed_without_refetch(tmp_path, archive):
    data, digest, expected = archive
    served = Served(files={"/r.zip": data})
    with LocalServer(served) as base:
        with pytest.raises(ChecksumRequiredError, match=digest):
            _prepare(f"{base}/r.zip", tmp_path / "data", tmp_path / "dl")
        assert not (tmp_path / "data").exists()
        _prepare(f"{base}/r.zip", tmp_path / "data", tmp_path / "dl", sha256=f"SHA256:{digest.upper()}")
    assert len(served.requests) == 1  # the confirmed re-run used the kept archive
    _check_prepared(tmp_path / "data", expected)


def test_existing_corpus_needs_overwrite(tmp_path, archive):
    data, digest, expected = archive
    zip_path = tmp_path / "local.zip"
    zip_path.write_bytes(data)
    dest = tmp_path / "data"
    (dest / "ravdess").mkdir(parents=True)
    (dest / "ravdess" / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite"):
        prepare("ravdess", dest, url=str(zip_path), sha256=digest)
    assert tree(dest) == ["ravdess", "ravdess/old.txt"]
    prepare("ravdess", dest, url=str(zip_path), sha256=digest, overwrite=True)  # a local archive as url
    assert not (dest / "ravdess" / "old.txt").exists()
    _check_prepared(dest, expected)
    assert zip_path.is_file()  # a local archive is never deleted


def test_broken_archives_leave_nothing(tmp_path, archive):
    dest = tmp_path / "data"
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive at all" * 100)
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        prepare("ravdess", dest, url=str(junk), sha256=hashlib.sha256(junk.read_bytes()).hexdigest())
    assert tree(dest) == []
    # a valid zip without a single RAVDESS file name
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("x/readme.wav", b"RIFF")
    with pytest.raises(ValueError, match="no clip of 'ravdess' could be converted"):
        prepare("ravdess", dest, url=str(empty), sha256=hashlib.sha256(empty.read_bytes()).hexdigest())
    assert tree(dest) == []
    with LocalServer(Served()) as base:
        with pytest.raises(DownloadError, match="HTTP 404"):
            _prepare(f"{base}/missing.zip", dest, tmp_path / "dl", sha256="1" * 64)
    with pytest.raises(ValueError, match="64 hex digits"):
        prepare("ravdess", dest, url=str(empty), sha256="abc")


def test_tar_archive_and_path_traversal(tmp_path, archive):
    data, _, expected = archive
    tgz = tmp_path / "r.tar.gz"
    with zipfile.ZipFile(io.BytesIO(data)) as zf, tarfile.open(tgz, "w:gz") as tf:
        for info in zf.infolist():
            payload = zf.read(info)
            ti = tarfile.TarInfo(info.filename)
            ti.size = len(payload)
            tf.addfile(ti, io.BytesIO(payload))
    prepare("ravdess", tmp_path / "data", url=str(tgz), sha256=hashlib.sha256(tgz.read_bytes()).hexdigest())
    _check_prepared(tmp_path / "data", expected)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escaped.wav", b"x")
    with pytest.raises(ValueError, match="outside"):
        extract_archive(evil, tmp_path / "out")
    assert not (tmp_path.parent / "escaped.wav").exists()


def test_registry():
    assert len(SOURCES) >= 8
    assert {"ravdess", "crema_d", "tess", "savee", "emodb", "emovo", "urdu"} <= set(SOURCES)
    assert get_source("CREMA-D") is SOURCES["crema_d"]
    with pytest.raises(KeyError, match="no corpus source.*known: .*ravdess"):
        get_source("iemocap")
    for r in SOURCES.values():
        assert r.sha256 is None and "sha256" in r.checksum_note  # never an invented hash
        assert r.homepage.startswith("http") and r.license
    with pytest.raises(ValueError, match="no public download URL.*kahlan"):
        prepare("savee", "/nonexistent")


# ---- parsers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,parser", [("ravdess", P.parse_ravdess), ("emodb", P.parse_emodb),
                                         ("emovo", P.parse_emovo), ("urdu", P.parse_urdu)])
def test_parsers_agree_with_shared_metadata(name, parser, request):
    corpus = request.getfixturevalue(name)
    for r in corpus:
        rel = PurePosixPath(r.path.relative_to(corpus.root).as_posix()).with_suffix(".wav")
        info = parser(rel)
        assert info is not None, rel
        assert (f"{name}_{info.speaker}", info.emotion, info.gender) == (r.speaker, r.emotion, r.gender), rel
        assert info.text_id == r.text_id


@pytest.mark.parametrize("parser,member,want", [
    (P.parse_crema_d, "AudioWAV/1001_DFA_ANG_XX.wav", P.ClipInfo("1001", "angry", None, "DFA")),
    (P.parse_crema_d, "AudioWAV/1091_WSI_SAD_HI.wav", P.ClipInfo("1091", "sad", None, "WSI")),
    (P.parse_tess, "TESS/OAF_angry/OAF_back_angry.wav", P.ClipInfo("OAF", "angry", "f", "back")),
    (P.parse_tess, "YAF_pleasant_surprised/YAF_dog_ps.wav", P.ClipInfo("YAF", "ps", "f", "dog")),
    (P.parse_savee, "AudioData/JK/sa03.wav", P.ClipInfo("JK", "sad", "m", None)),
    (P.parse_savee, "ALL/DC_su15.wav", P.ClipInfo("DC", "surprise", "m", None)),
    (P.parse_subesco, "SUBESCO/F_01_OISHI_S_1_ANGRY_1.wav", P.ClipInfo("F01", "angry", "f", "s1")),
    (P.parse_ravdess, "Actor_01/03-02-05-01-01-01-01.wav", None),  # song, not speech
    (P.parse_savee, "AudioData/XX/a01.wav", None),
    (P.parse_emodb, "wav/99a01Fa.wav", None),  # unknown speaker
])
def test_parser_examples(parser, member, want):
    assert parser(PurePosixPath(member)) == want


def test_crema_d_genders(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Caucasian,Not Hispanic\n",
        encoding="utf-8")
    assert P.crema_d_genders(tmp_path) == {"1001": "m", "1002": "f"}
    assert P.crema_d_genders(tmp_path / "repo" / "nothing") == {}


def test_converted_audio_matches_source(tmp_path, archive):
    data, digest, _ = archive
    src = tmp_path / "r.zip"
    src.write_bytes(data)
    folder = prepare("ravdess", tmp_path / "data", url=str(src), sha256=digest)
    with zipfile.ZipFile(src) as zf:
        original = load_audio(zf.read("Audio_Speech_Actors_01-24/Actor_02/03-01-05-01-02-01-02.wav"))
    converted = load_audio(folder / "audio/Actor_02/03-01-05-01-02-01-02.flac")
    np.testing.assert_allclose(converted.samples, original.samples, atol=2 / 32768)  # 16-bit rounding


# members of a tiny archive per recipe -> (speaker, emotion, gender, text_id) the corpus must show
LAYOUTS = {
    "crema_d": {"CREMA-D-master/AudioWAV/1001_DFA_ANG_XX.wav": ("crema_d_1001", "angry", "m", "DFA"),
                "CREMA-D-master/AudioWAV/1002_IEO_HAP_HI.wav": ("crema_d_1002", "happy", "f", "IEO")},
    "tess": {"TESS/YAF_pleasant_surprise/YAF_dog_ps.wav": ("tess_YAF", "surprise", "f", "dog"),
             "OAF_back_fear.wav": ("tess_OAF", "fear", "f", "back")},  # at the archive root
    "savee": {"AudioData/JK/sa03.wav": ("savee_JK", "sad", "m", None),
              "AudioData/DC/n01.wav": ("savee_DC", "neutral", "m", None)},
    "emodb": {"wav/03a01Fa.wav": ("emodb_03", "happy", "m", "a01"), "wav/16b10Wb.wav": ("emodb_16", "angry", "f", "b10")},
    "emovo": {"EMOVO/f1/gio-f1-b1.wav": ("emovo_f1", "happy", "f", "b1"),
              "EMOVO/m3/rab-m3-n5.wav": ("emovo_m3", "angry", "m", "n5")},
    "urdu": {"URDU-Dataset-master/Angry/SM1_F10_A010.wav": ("urdu_SM1", "angry", "m", None),
             "URDU-Dataset-master/Sad/SF3_F2_S02.wav": ("urdu_SF3", "sad", "f", None)},
    "subesco": {"SUBESCO/F_01_OISHI_S_1_ANGRY_1.wav": ("subesco_F01", "angry", "f", "s1"),
                "SUBESCO/M_10_RAFI_S_10_SURPRISE_5.wav": ("subesco_M10", "surprise", "m", "s10")},
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_recipe_converts_its_layout(tmp_path, name):
    from tests.helpers.foundation import wav_bytes

    members = LAYOUTS[name]
    src = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(src, "w") as zf:
        for i, member in enumerate(members):
            zf.writestr(member, wav_bytes(0.5, 22_050, seed=i))
        if name == "crema_d":
            zf.writestr("CREMA-D-master/VideoDemographics.csv",
                        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Asian,Not Hispanic\n")
    prepare(name, tmp_path / "data", url=str(src), sha256=hashlib.sha256(src.read_bytes()).hexdigest())
    corpus = load_corpus(name, root=tmp_path / "data")
    got = sorted((r.speaker, r.emotion, r.gender, r.text_id) for r in corpus)
    assert got == sorted(members.values())
    assert all(r.language == SOURCES[name].language for r in corpus)
    assert all(r.path.parent.parent.name == "audio" for r in corpus)  # one folder below audio/
