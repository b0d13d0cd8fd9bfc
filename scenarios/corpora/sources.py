"""Where public emotional speech corpora come from, and how to download and prepare them.

``prepare("ravdess", dest)`` fetches the corpus archive (resuming after dropped connections),
checks its sha256, extracts it and converts it to the shared format in ``dest/ravdess/``:
``audio/<folder>/<name>.flac`` (16 kHz mono 16-bit) plus ``metadata.csv`` (``path, speaker,
emotion, language, gender, duration_s, text_id``) and ``PROVENANCE.md``. Labels come from the
file names (each source has a parser). Conversion happens in a hidden temp folder inside ``dest``
that is renamed into place at the end, so ``dest`` never holds a half-written corpus.

Checksums: no source ships a sha256, because none of these corpora publishes one for its archive
(Zenodo shows md5; the others publish nothing) and a made-up hash would be worse than none. So a
first ``prepare`` without ``sha256`` downloads, computes the hash, and stops with
``ChecksumRequiredError`` telling you the value; check it against your source and re-run with
``sha256=...`` (the download is kept, so the re-run does not fetch it again).

Example:
    >>> from scenarios.corpora import prepare, SOURCES
    >>> sorted(SOURCES)[:3]
    ['crema_d', 'emodb', 'emovo']
    >>> folder = prepare("emodb", "/data/corpora", sha256="<64 hex digits>")   # doctest: +SKIP
    >>> load_corpus("emodb", root="/data/corpora")                             # doctest: +SKIP
"""
from __future__ import annotations

import csv
import datetime as _dt
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np

from adapt.audio import load_audio
from adapt.cache import cache_dir
from adapt.errors import AudioError

from adapt.labels import harmonize_emotion

from . import filenames as P
from .download import (
    ChecksumMismatchError,
    ChecksumRequiredError,
    DownloadError,
    download,
    extract_archive,
    normalize_sha256,
    sha256_of,
    verify_sha256,
)

__all__ = [
    "CorpusSource", "SOURCES", "get_source", "prepare", "convert",
    "ChecksumMismatchError", "ChecksumRequiredError", "DownloadError",
]

_NO_SHA = "no official sha256 is published for this archive"


@dataclass(frozen=True)
class CorpusSource:
    """How to fetch one corpus and read its labels from file names.

    ``url`` is ``None`` where the corpus needs a registration or a manual download: pass the archive
    you obtained as ``url`` (a local path works). ``parse`` maps a member path of the extracted
    archive to a ``ClipInfo`` or ``None`` (not a clip of this corpus: skipped and counted).
    """

    name: str
    title: str
    language: str
    homepage: str
    license: str
    url: str | None
    parse: Callable[[PurePosixPath], "P.ClipInfo | None"]
    sha256: str | None = None
    checksum_note: str = _NO_SHA
    notes: str = ""
    suffixes: tuple[str, ...] = (".wav",)
    #: reads ``{speaker: "f"|"m"}`` from the extracted archive (CREMA-D keeps genders in a CSV)
    genders: Callable[[Path], dict[str, str]] | None = None


SOURCES: dict[str, CorpusSource] = {r.name: r for r in (
    CorpusSource(
        name="ravdess", title="RAVDESS speech, audio-only (Audio_Speech_Actors_01-24)", language="en",
        homepage="https://zenodo.org/records/1188976", license="CC BY-NC-SA 4.0",
        url="https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1",
        parse=P.parse_ravdess,
        checksum_note=_NO_SHA + " (the Zenodo record lists an md5: compare it, then pass the sha256)",
        notes="24 actors (odd ids male), 8 emotions, 2 statements (text_id s01/s02). 48 kHz WAV, ~200 MB.",
    ),
    CorpusSource(
        name="crema_d", title="CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset), audio",
        language="en", homepage="https://github.com/CheyneyComputerScience/CREMA-D", license="ODbL 1.0",
        url="https://github.com/CheyneyComputerScience/CREMA-D/archive/refs/heads/master.zip",
        parse=P.parse_crema_d, genders=P.crema_d_genders,
        notes="91 actors, 6 emotions, 12 sentences (text_id = sentence code). The WAVs are Git-LFS objects: "
              "if the GitHub archive holds LFS pointer files, clone with git-lfs, zip AudioWAV/ and "
              "VideoDemographics.csv, and pass that zip as url.",
    ),
    CorpusSource(
        name="tess", title="Toronto Emotional Speech Set (TESS)", language="en",
        homepage="https://doi.org/10.5683/SP2/E8H2MF", license="CC BY-NC-ND 4.0",
        url="https://borealisdata.ca/api/access/dataset/:persistentId/?persistentId=doi:10.5683/SP2/E8H2MF",
        parse=P.parse_tess,
        checksum_note=_NO_SHA + "; Dataverse zips the dataset on request, so the bytes may differ between downloads",
        notes="2 female speakers (OAF, YAF), 7 emotions, 200 target words (text_id = word).",
    ),
    CorpusSource(
        name="savee", title="Surrey Audio-Visual Expressed Emotion (SAVEE), audio", language="en",
        homepage="http://kahlan.eps.surrey.ac.uk/savee/", license="free for research (registration)",
        url=None, parse=P.parse_savee,
        checksum_note=_NO_SHA + "; the download needs a registration, so there is no public URL",
        notes="4 male speakers (DC, JE, JK, KL), 7 emotions. Accepts AudioData/<speaker>/a01.wav and "
              "<speaker>_a01.wav layouts.",
    ),
    CorpusSource(
        name="emodb", title="Berlin Database of Emotional Speech (EmoDB)", language="de",
        homepage="http://emodb.bilderbar.info/", license="free for research (audEERING lists CC0 1.0)",
        url="http://emodb.bilderbar.info/download/download.zip", parse=P.parse_emodb,
        notes="10 speakers, 7 emotions, 10 texts (text_id a01..b10). 16 kHz WAV, full-length clips.",
    ),
    CorpusSource(
        name="emovo", title="EMOVO Italian emotional speech", language="it",
        homepage="http://voice.fub.it/activities/corpora/emovo/index.html",
        license="research use (Fondazione Ugo Bordoni)", url=None, parse=P.parse_emovo,
        checksum_note=_NO_SHA + "; no stable public archive URL is known",
        notes="6 speakers (f1-f3, m1-m3), 7 emotions, 14 sentences (text_id b1..n5). 48 kHz stereo WAV.",
    ),
    CorpusSource(
        name="urdu", title="URDU emotional speech (Latif et al. 2018)", language="ur",
        homepage="https://github.com/siddiquelatif/URDU-Dataset", license="research use",
        url="https://github.com/siddiquelatif/URDU-Dataset/archive/refs/heads/master.zip",
        parse=P.parse_urdu,
        notes="400 clips from Urdu talk shows, 4 emotions (from the folder name), speaker ids SF*/SM*.",
    ),
    CorpusSource(
        name="subesco", title="SUST Bangla Emotional Speech Corpus (SUBESCO)", language="bn",
        homepage="https://zenodo.org/records/4526477", license="CC BY 4.0",
        url="https://zenodo.org/records/4526477/files/SUBESCO.zip?download=1", parse=P.parse_subesco,
        checksum_note=_NO_SHA + " (Zenodo lists an md5; the file name in the URL is not verified offline)",
        notes="20 speakers (10 f, 10 m), 7 emotions, 10 sentences (text_id s1..s10), 5 repetitions.",
    ),
)}


def get_source(name: str) -> CorpusSource:
    """The corpus source called ``name`` (``"crema-d"`` and ``"CREMA_D"`` also work)."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in SOURCES:
        raise KeyError(f"no corpus source {name!r}; known: {sorted(SOURCES)}")
    return SOURCES[key]


def _ignored(rel: PurePosixPath) -> bool:
    # macOS archives carry __MACOSX/ folders and ._name resource forks: never audio
    return any(part == "__MACOSX" or part.startswith("._") for part in rel.parts)


def convert(source_spec: CorpusSource, raw: Path, out: Path, *, progress: bool = False) -> dict:
    """Convert an extracted archive ``raw`` into the shared format in the (new) folder ``out``.

    Returns ``{"clips": n, "skipped": [(member, reason), ...]}``. Files whose name the source does
    not recognise, duplicates, and files that fail ``load_audio`` (corrupt, empty, under 0.25 s)
    are skipped and listed; converting zero clips raises ``ValueError``.
    """
    import soundfile as sf

    files = sorted(p for p in Path(raw).rglob("*") if p.is_file() and p.suffix.lower() in source_spec.suffixes)
    genders = source_spec.genders(Path(raw)) if source_spec.genders else {}
    rows: list[dict] = []
    skipped: list[tuple[str, str]] = []
    seen: set[Path] = set()
    iterator = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc=f"converting {source_spec.name}", unit="file")
    for path in iterator:
        rel = PurePosixPath(path.relative_to(raw).as_posix())
        if _ignored(rel):
            continue
        info = source_spec.parse(rel)
        if info is None:
            skipped.append((str(rel), "file name not recognised"))
            continue
        # keep the archive's folder (RAVDESS Actor_01, URDU Angry); files at the archive root go
        # under their speaker, so every clip sits one folder below audio/ as ClipRecord.clip_id expects
        folder = path.parent.name if path.parent != Path(raw) else info.speaker
        out_rel = Path("audio") / folder / (path.stem + ".flac")
        if out_rel in seen:
            skipped.append((str(rel), f"duplicate of {out_rel}"))
            continue
        try:
            wave = load_audio(path)
        except AudioError as err:
            skipped.append((str(rel), str(err)))
            continue
        seen.add(out_rel)
        (out / out_rel).parent.mkdir(parents=True, exist_ok=True)
        # clip to full scale: 16-bit PCM would wrap around on resampling overshoot
        sf.write(out / out_rel, np.clip(wave.samples, -1.0, 1.0), wave.sample_rate, subtype="PCM_16", format="FLAC")
        rows.append({
            "path": out_rel.as_posix(),
            "speaker": f"{source_spec.name}_{info.speaker}",
            "emotion": harmonize_emotion(info.emotion),
            "language": source_spec.language,
            "gender": info.gender or genders.get(info.speaker, "u"),
            "duration_s": f"{wave.duration_s:.4f}",
            "text_id": info.text_id or "",
        })
    if not rows:
        examples = "; ".join(f"{m}: {r}" for m, r in skipped[:3]) or "no audio files found"
        raise ValueError(f"no clip of {source_spec.name!r} could be converted from {len(files)} files ({examples})")
    with (out / "metadata.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["path", "speaker", "emotion", "language", "gender", "duration_s", "text_id"])
        writer.writeheader()
        writer.writerows(rows)
    return {"clips": len(rows), "skipped": skipped}


def _provenance(source_spec: CorpusSource, source: str, digest: str, report: dict) -> str:
    skipped = report["skipped"]
    lines = [
        f"# {source_spec.title}", "",
        "| field | value |", "|---|---|",
        f"| prepared by | `scenarios.corpora.prepare({source_spec.name!r})`, {_dt.date.today().isoformat()} |",
        f"| source | {source} |", f"| archive sha256 | `{digest}` |",
        f"| homepage | {source_spec.homepage} |", f"| licence | {source_spec.license} |",
        f"| clips | {report['clips']} |", f"| skipped files | {len(skipped)} |", "",
        source_spec.notes, "",
    ]
    if skipped:
        lines += ["## Skipped (first 50)", ""] + [f"- `{m}`: {r}" for m, r in skipped[:50]]
    return "\n".join(lines) + "\n"


def _is_local(src: str) -> bool:
    return "://" not in src and Path(src).is_file()


def prepare(
    name: str,
    dest: str | os.PathLike,
    *,
    url: str | None = None,
    sha256: str | None = None,
    overwrite: bool = False,
    download_dir: str | os.PathLike | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: bool = False,
) -> Path:
    """Download, verify, extract and convert corpus ``name`` into ``dest/<name>/``.

    Arguments:
        name: a key of ``SOURCES``.
        dest: the data root to write into (``load_corpus(name, root=dest)`` reads the result).
        url: overrides the source's URL; an http(s)/file URL or the path of a local archive.
        sha256: the expected archive sha256 (required: see the module docstring).
        overwrite: replace an existing ``dest/<name>`` (swapped in only after a full conversion).
        download_dir: where downloads (and their resumable ``.part`` files) live; default
            ``<cache>/downloads`` (``$SER_ADAPT_CACHE`` or ``<project>/.cache``).
        retries, timeout, backoff: passed to ``scenarios.download.download``.
        progress: show progress bars.

    Returns:
        The corpus folder ``dest/<name>``.

    Raises:
        KeyError: unknown source name.
        ValueError: no URL known and none given; the archive is not a zip/tar; nothing converted.
        ChecksumRequiredError: no sha256 given or known; the message holds the computed one.
        ChecksumMismatchError: the archive's sha256 differs (a downloaded file is deleted).
        DownloadError: HTTP errors, or the connection kept failing.
        FileExistsError: ``dest/<name>`` exists and ``overwrite`` is false.
    """
    source_spec = get_source(name)
    source = url or source_spec.url
    if source is None:
        raise ValueError(
            f"source_spec {source_spec.name!r} has no public download URL ({source_spec.checksum_note}); get the archive "
            f"from {source_spec.homepage} and pass url=<path or URL> (CLI: --url)"
        )
    expected = normalize_sha256(sha256) if sha256 else source_spec.sha256
    root = Path(dest)
    final = root / source_spec.name
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; pass overwrite=True (CLI: --overwrite) to replace it")

    local = _is_local(str(source))
    if local:
        archive = Path(source)
    else:
        import hashlib

        folder = Path(download_dir) if download_dir is not None else _default_download_dir()

        tag = hashlib.sha1(str(source).encode()).hexdigest()[:12]
        bar = _progress_bar(source_spec.name) if progress else None
        archive = download(str(source), folder / f"{source_spec.name}-{tag}.archive", retries=retries,
                           timeout=timeout, backoff=backoff, progress=bar)
    if expected is None:
        got = sha256_of(archive)
        raise ChecksumRequiredError(
            f"no trusted sha256 is known for {source_spec.name!r} ({source_spec.checksum_note}). The archive "
            f"{archive} has sha256 {got}: compare it with your source, then re-run with sha256={got!r} "
            f"(CLI: --sha256 {got}); the archive is kept, so the re-run does not download it again"
        )
    digest = verify_sha256(archive, expected, delete_on_mismatch=not local)

    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{source_spec.name}.", suffix=".partial", dir=root))
    try:
        raw = extract_archive(archive, work / "raw")
        out = work / source_spec.name
        out.mkdir()
        report = convert(source_spec, raw, out, progress=progress)
        (out / "PROVENANCE.md").write_text(_provenance(source_spec, str(source), digest, report), encoding="utf-8")
        if final.exists():  # overwrite: move the old copy aside, restore it if the swap fails
            os.rename(final, work / "previous")
            try:
                os.rename(out, final)
            except BaseException:
                os.rename(work / "previous", final)
                raise
        else:
            os.rename(out, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _default_download_dir() -> Path:
    return cache_dir("downloads")


def _progress_bar(name: str) -> Callable[[int, int | None], None]:
    from tqdm import tqdm

    bar = tqdm(desc=f"downloading {name}", unit="B", unit_scale=True)

    def update(done: int, total: int | None) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return update
