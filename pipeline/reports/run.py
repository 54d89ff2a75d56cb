"""`secretwatch report`, wired: evidence files and policies, the store's aggregates, the
tables, then every output and the manifest over them. Nothing here computes or formats."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import orjson

from pipeline.errors import InputError
from pipeline.reports import access_review, archived, export, inventory, manifest, policies, render
from pipeline.reports.period import Period
from pipeline.reports.settings import ReportConfig
from pipeline.store.base import ReportSource

Step = Callable[[str], None]
_FONT_STAMP = "946684800"  # 2000-01-01T00:00:00Z, the PDF's embedded fonts' "modified" date


@dataclass(frozen=True)
class Outcome:
    folder: Path
    files: list[Path]
    manifest: Path
    review: access_review.Review


def _version() -> str:
    try:
        return metadata.version("secretwatch")
    except metadata.PackageNotFoundError:
        return "unknown"


def load_policies(cfg: ReportConfig) -> tuple[dict[str, list[policies.Rule]], dict[str, str]]:
    """Policies from the configured folder and/or Vault, with the SHA-256 of each text."""
    texts: dict[str, str] = {}
    if cfg.policies_dir is not None:
        texts.update(policies.read_dir(cfg.policies_dir))
    if cfg.vault_addr:
        texts.update(policies.fetch(cfg.vault_addr))
    hashes = {name: manifest.sha256(text.encode()) for name, text in sorted(texts.items())}
    return policies.load_texts(texts), hashes


def _file_hash(path: Path | None) -> str | None:
    return manifest.sha256(path.read_bytes()) if path is not None and path.is_file() else None


def parameters(
    period: Period, cfg: ReportConfig, policy_hashes: dict[str, str], pdf: bool
) -> dict[str, object]:
    """What the report was asked for: period, windows, thresholds and the evidence files
    (by content hash, so a changed owners file changes the parameters)."""
    return {
        "period": period.label,
        "since": period.since.isoformat(),
        "until": period.until.isoformat(),
        "timezone": period.timezone,
        "unused_days": cfg.unused_days,
        "rotation_days": cfg.rotation_days,
        "gap_hours": cfg.gap_hours,
        "kv2_mounts": cfg.kv2_mounts,
        "overbroad_factor": cfg.overbroad_factor,
        "overbroad_min_unused": cfg.overbroad_min_unused,
        "html_rows": cfg.html_rows,
        "owners_sha256": _file_hash(cfg.owners),
        "inventory_sha256": _file_hash(cfg.inventory),
        "policies_sha256": policy_hashes,
        "vault_addr": cfg.vault_addr,
        "pdf": pdf,
        "secretwatch": _version(),
    }


def previous_outputs(folder: Path) -> list[Path]:
    """The files an earlier report left in `folder` (to be replaced), once `folder` is
    known to be usable: new, empty, or a previous report whose manifest lists only files
    inside it (`manifest.inside`). Anything else raises InputError; nothing is changed."""
    for place in (folder, *folder.parents):
        if place.exists() and not place.is_dir():
            where = "is a file" if place == folder else f"cannot be created: {place} is a file"
            raise InputError(
                f"--out {folder} {where}, not a folder; give --out a folder that is new, "
                "empty, or holds an earlier report"
            )
        if place.exists():
            break
    try:
        if not folder.exists() or not any(folder.iterdir()):
            return []
    except OSError as exc:
        raise InputError(f"--out {folder} cannot be read ({exc.strerror}); choose another --out"
                         ) from None  # fmt: skip
    old = manifest.listed(folder)
    if not old:
        raise InputError(
            f"{folder} is not empty and holds no earlier report (no manifest.json); "
            "choose another --out"
        )
    paths = [folder / rel for rel in [*old, manifest.NAME]]
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            raise InputError(
                f"{folder / manifest.NAME} lists {path.relative_to(folder).as_posix()!r}, a "
                "folder, not a report file; remove that entry, or choose another --out"
            )
    return paths


def prepare_folder(folder: Path) -> None:
    """Make `folder` ready: new, empty, or a previous report (whose listed files are
    removed first, so nothing stale survives). Anything else is refused before anything
    is removed (`previous_outputs`)."""
    for path in previous_outputs(folder):
        path.unlink(missing_ok=True)
    for sub in ("csv", "json"):
        path = folder / sub
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {folder} cannot be created ({exc.strerror}); choose another "
                         "--out") from None  # fmt: skip


def generate(
    store: ReportSource,
    store_kind: str,
    period: Period,
    cfg: ReportConfig,
    folder: Path,
    pdf: bool = False,
    step: Step = lambda _: None,
    archive: Path | None = None,
) -> Outcome:
    """The report of `period` into `folder`; `archive`: the archive the store reads
    archived days from, whose digests of the period the manifest lists."""
    previous_outputs(folder)  # an unusable --out fails now, not after the store is read
    owners_default = cfg.owners == ReportConfig().owners
    evidence = inventory.load(cfg.owners, cfg.inventory, owners_default=owners_default)
    step("policies")
    rules, policy_hashes = load_policies(cfg)
    inputs = access_review.read_store(store, period, step)
    step("tables")
    review = access_review.build(inputs, period, cfg, evidence, rules)
    params = parameters(period, cfg, policy_hashes, pdf)
    frames = {"access_summary": inputs.summary, "hourly_activity": inputs.hourly,
              "source_coverage": inputs.days, "secret_history": inputs.history,
              "alerts": inputs.alerts}  # fmt: skip
    state = manifest.store_state(frames, inputs.events_total, inputs.schema_version, store_kind)
    prepare_folder(folder)
    step("files")
    files = export.write_tables(review.tables, folder)
    summary = {"parameters": params, "store_state_sha256": state["sha256"],
               "summary": review.summary, "notes": review.notes}  # fmt: skip
    (folder / "summary.json").write_bytes(
        orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    files.append(folder / "summary.json")
    step("html")
    page = render.html(review, inputs.hourly, inputs.days, _context(params, state, cfg, rules,
                       evidence, store_kind), cfg.html_rows)  # fmt: skip
    (folder / "report.html").write_bytes(page)
    files.append(folder / "report.html")
    if pdf:
        step("pdf")
        files.append(write_pdf(page, folder / "report.pdf"))
    rests_on = archived.digests(archive, period.since, period.until) if archive else None
    target = manifest.write(folder, files, params, state, rests_on)
    return Outcome(folder, files, target, review)


def _context(
    params: dict[str, object],
    state: dict[str, object],
    cfg: ReportConfig,
    rules: dict[str, list[policies.Rule]],
    evidence: inventory.Evidence,
    store_kind: str,
) -> dict[str, object]:
    sources = []
    if rules:
        sources.append(f"{len(rules)} Vault ACL policies")
    if evidence.inventory.grants:
        sources.append(f"{len(evidence.inventory.grants)} inventory grants")
    shown = [(k, v) for k, v in params.items() if k != "policies_sha256"]
    shown += [(f"policy {name}", sha) for name, sha in params["policies_sha256"].items()]  # type: ignore[attr-defined]
    shown += [("parameters sha256", manifest.sha256(manifest.canonical(params))),
              ("store", store_kind), ("store schema", state["schema_version"]),
              ("events stored", f"{state['events_total']:,}"),
              ("store state sha256", state["sha256"])]  # fmt: skip
    return {
        "version": params["secretwatch"],
        "store_kind": store_kind,
        "state_sha": state["sha256"],
        "gap_hours": f"{cfg.gap_hours:g}",
        "grant_sources": ", ".join(sources) or "no grant evidence configured",
        "overbroad_factor": f"{cfg.overbroad_factor:g}",
        "overbroad_min_unused": cfg.overbroad_min_unused,
        "unused_days": cfg.unused_days,
        "rotation_days": cfg.rotation_days,
        "parameters_shown": [(k, "–" if v is None else v) for k, v in shown],
    }


def write_pdf(page: bytes, target: Path) -> Path:
    """The same HTML as PDF (WeasyPrint, an optional dependency: `pip install
    secretwatch[pdf]`)."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:
        raise InputError(
            f"--pdf needs WeasyPrint and its system libraries (pango): {exc}; install with "
            "`pip install 'secretwatch[pdf]'`"
        ) from None
    # fontTools stamps every embedded font subset with the second it was made, unless
    # SOURCE_DATE_EPOCH names one: a fixed stamp keeps a rerun's PDF byte-identical.
    given = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = given or _FONT_STAMP
    try:
        weasyprint.HTML(string=page.decode(), base_url=str(target.parent)).write_pdf(target)
    finally:
        if given is None:
            del os.environ["SOURCE_DATE_EPOCH"]
    return target
