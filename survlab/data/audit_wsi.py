"""`survlab check`, WSI features: the stores training reads (same builder, CLAM or TRIDENT layout) and every slide's
feature file(s) of every store read once: missing, unreadable, shared or odd-dimensioned files, slides without
coords, patients left without a slide at every scale.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from survlab.data.audit_findings import AuditBase, _error, _group, file_problem_kind, missing_fix
from survlab.data.cohort.checks import DataFileError, Finding
from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.table import Cohort
from survlab.data.modalities.stores import build_stores
from survlab.data.modalities.wsi import BagStore
from survlab.data.modalities.wsi_files import _FIX, _check_twin, read_bag, read_header
from survlab.data.options import under


class WsiChecks(AuditBase):
    """The WSI feature-file checks of an audit."""

    def stores(self) -> list[BagStore]:
        """The stores training reads, from the same builder (survlab.data.modalities.stores.build_stores; CLAM or
        TRIDENT layout): every scale, and the single-scale store unless a multi-scale cohort has no such folder."""
        w, dm = self.dm.wsi_cfg, self.dm
        if w is None:
            return []
        modalities = {"wsi"}
        if w["scales"]:
            base = under(dm.root, w["features_dir"]) / (w["encoder"] or "")
            single = (base / "h5_files").is_dir() or (base / "pt_files").is_dir()
            modalities = {"scales", "wsi"} if single else {"scales"}
        wsi, scales = build_stores(w, dm.root, dm.name, modalities)
        return [s for s in [wsi, *(scales or {}).values()] if s is not None]

    def wsi(self, cohort: Cohort) -> None:
        dm = self.dm
        try:
            stores = self.stores()
        except (FileNotFoundError, DataFileError, ValueError) as exc:  # e.g. no such TRIDENT patching
            trident = (dm.wsi_cfg or {}).get("trident") or {}
            self.fail(trident.get("job_dir") or dm.root, "feature folder", exc)
            return
        if not stores:
            return
        no_slides = [c for c, ss in zip(cohort.case_ids, cohort.table["slide_ids"], strict=True) if not ss]
        if dm.slide_col is None or len(no_slides) == len(cohort):
            self.add(
                Finding(
                    str(dm.clinical_csv),
                    "no slides listed",
                    (
                        f"data={dm.name}: the config reads WSI features but {dm.clinical_csv} lists no {dm.slide_col or 'slide_id'}"
                        f" (table-only cohort); set data.wsi=null or add a slide_id column"
                    ),
                )
            )
            return
        if no_slides:
            fix = missing_fix(
                dm.missing,
                "add their slides, or set data.missing=drop (leave them out) or keep (test them without slides)",
            )
            self.add(
                Finding(
                    str(dm.clinical_csv),
                    "patients without slides",
                    (
                        f"{dm.clinical_csv}: {len(no_slides)} patient(s) list no {dm.slide_col} ({_first_ids(no_slides)}); "
                        f"{fix}"
                    ),
                    tuple(no_slides),
                ),
                note=dm.missing != "error",
            )
        slides = [
            (c, s) for c, ss in zip(cohort.case_ids, cohort.table["slide_ids"], strict=True) for s in ss
        ]
        readable = {s for _, s in slides}  # slides whose file is fine in EVERY store (scale)
        absent: set[str] = set()  # slides without a file in some store
        for store in stores:
            try:
                store.check_layout()
            except FileNotFoundError as exc:
                self.fail(store.base, "feature folder", exc)
                readable = set()
                continue
            ok, missing = self._store(store, slides, cohort)
            readable &= ok
            absent |= missing
        lacking = {c for c, s in slides} - {c for c, s in slides if s in readable}
        self.have["wsi"] = {c for c, _ in slides} - lacking
        left = sorted({c for c, s in slides} - {c for c, s in slides if s not in absent})
        # multi-scale: a slide missing a scale is dropped, so a patient may lose all of them
        if len(stores) > 1 and left:
            fix = "dropped (data.missing=drop)" if dm.allow_missing else f"{_FIX}, or set data.missing=drop"
            self.add(
                Finding(
                    str(dm.clinical_csv),
                    "patients without a slide at every scale",
                    f"{dm.clinical_csv}: {len(left)} patient(s) have no slide with features at all scales "
                    f"({_first_ids(left)}); {fix}",
                    tuple(left),
                ),
                note=dm.allow_missing,
            )
        self.coverage["wsi"] = (
            f"{len(cohort) - len(lacking) - len(no_slides)}/{len(cohort)} patients with readable features"
        )
        self.result.summary["slides"] = len(slides)

    def _store(
        self, store: BagStore, slides: Sequence[tuple[str, str]], cohort: Cohort
    ) -> tuple[set[str], set[str]]:
        """Read every slide's file of one store once -> (the slides whose file is fine, the slides without a file)."""
        where = str(store.base)
        missing: dict[str, str] = {}
        bad: dict[str, dict[str, str]] = {}
        owner: dict[Path, tuple[str, str]] = {}
        shared: dict[str, str] = {}
        dims: dict[str, int] = {}
        no_coords: list[str] = []
        total = len(slides)
        for i, (case, s) in enumerate(slides):
            if self.progress is not None:
                self.progress(i, total, where)
            try:
                paths = store.paths_of(s)
            except DataFileError as exc:
                bad.setdefault(file_problem_kind(str(exc)), {})[s] = _error(exc)
                continue
            if not paths:
                missing[s] = case
                continue
            first = owner.setdefault(paths[0], (s, case))
            if first[0] == s and first[1] != case:  # one slide id under two patients: a cohort-table finding
                continue
            if first != (s, case):
                shared[s] = (
                    f"slide_id {s} of case {case} and {first[0]} of case {first[1]} both resolve to "
                    f"{paths[0]}"
                )
                continue
            try:
                feats, coords = read_bag(paths[0], store.feature_dim)
                if len(paths) > 1:  # format=auto with an .h5 and a .pt: they must hold one bag
                    _check_twin(
                        read_header(paths[0], store.feature_dim, edges=True),
                        read_header(paths[1], store.feature_dim, edges=True),
                    )
            except (DataFileError, FileNotFoundError, OSError) as exc:
                bad.setdefault(file_problem_kind(str(exc)), {})[s] = _error(exc)
                continue
            dims[s] = int(feats.shape[1])
            if coords is None:
                no_coords.append(s)
        if self.progress is not None:
            self.progress(total, total, where)
        if missing:
            cases = sorted(set(missing.values()))
            dirs = ", ".join(str(d) for d in store.search_dirs)
            drop = self.dm.allow_missing or (store.scale is not None)
            fix = (
                "dropped (data.missing=drop)"
                if self.dm.allow_missing
                else "these slides are dropped (a slide needs a bag at every scale)"
                if drop
                else f"{_FIX}, or set data.missing=drop to drop them"
            )
            self.add(
                Finding(
                    where,
                    "feature files missing",
                    (
                        f"{where}: no feature file for {len(missing)} slide(s) of {len(cases)} patient(s) "
                        f"({_first_ids(sorted(missing))}; searched {dirs}); {fix}"
                    ),
                    tuple(sorted(missing)),
                ),
                note=drop,
            )
        if shared:
            self.add(_group(str(cohort.path), "slide ids resolving to one file", shared))
        for kind, problems in bad.items():
            self.add(_group(where, kind, problems))
        if len(set(dims.values())) > 1:
            common = Counter(dims.values()).most_common(1)[0][0]
            odd = sorted(s for s, d in dims.items() if d != common)
            self.add(
                Finding(
                    where,
                    "feature dims differ across slides",
                    (
                        f"{where}: {len(odd)} slide(s) have feature dim(s) {sorted(set(dims[s] for s in odd))} but "
                        f"{sum(d == common for d in dims.values())} have {common} ({_first_ids(odd)}); re-extract all slides "
                        f"with one encoder, or set wsi.feature_dim"
                    ),
                    tuple(odd),
                )
            )
        if no_coords:
            self.add(
                Finding(
                    where,
                    "slides without coords",
                    (
                        f"{where}: {len(no_coords)} slide file(s) hold no coords ({_first_ids(sorted(no_coords))}); training "
                        f"works, attention heatmaps need them: extract with CLAM/TRIDENT (.h5 with 'coords')"
                    ),
                    tuple(no_coords),
                ),
                note=True,
            )
        usual = Counter(dims.values()).most_common(1)[0][0] if dims else None
        return {s for s, d in dims.items() if d == usual}, set(missing)
