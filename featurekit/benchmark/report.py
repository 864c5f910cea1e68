"""``report.md`` and PNG plots from benchmark results (see :mod:`featurekit.benchmark`).

Everything here is computed from the results dict alone, so a report can be rebuilt from a
saved ``results.json``. Figures are drawn with matplotlib's object-oriented API on the Agg
canvas (no display, no global pyplot state).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from featurekit.benchmark.sets import SETS_PLOT, plot_sets, sets_section
from featurekit.fsutil import atomic_path, atomic_write_text

#: File names written into the output directory.
REPORT_FILE = "report.md"
CONTRIBUTION_PLOT = "branch_contributions.png"
CONFUSION_PLOT = "confusion_best.png"
GAIN_PLOT = "per_class_gain.png"
CURVE_PLOT = "learning_curve.png"
AP_PLOT = "per_class_ap.png"
#: How the primary metric of results.json (``"metric"``) is named in the report.
METRIC_NAMES = {"accuracy": "accuracy", "map": "macro mAP"}


def _metric(results: Mapping[str, Any]) -> str:
    """The metric comparisons are made in: ``accuracy``, or ``map`` for multi-label tasks."""
    return results.get("metric", "accuracy")


def _per_class_key(results: Mapping[str, Any]) -> str:
    return "per_class_ap" if results.get("multilabel") else "per_class_f1"


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f}"


def _mean_sd(system: Mapping[str, Any], metric: str = "accuracy") -> str:
    return f"{_pct(system['mean'][metric])} ± {_pct(system['std'][metric])}"


def _pp(value: float) -> str:
    return f"{round(value, 1) + 0.0:+.1f}"  # + 0.0 turns a rounded -0.0 into +0.0


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _folds_text(folds: Sequence[int]) -> str:
    return ", ".join(str(f) for f in folds)


def headline_system(results: Mapping[str, Any]) -> Mapping[str, Any]:
    """The primary comparison's system, else the one with the highest mean primary metric."""
    primary = results.get("primary")
    if primary:
        return next(s for s in results["systems"] if s["name"] == primary["system"])
    return max(results["systems"], key=lambda system: system["mean"][_metric(results)])


def _primary_section(results: Mapping[str, Any],
                     systems: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The headline: ``auto`` against its reference, both chosen on training folds only."""
    primary = results.get("primary")
    lines = ["## Primary comparison", ""]
    if not primary:
        return [*lines, "None: it needs at least two branches and a fusion.", ""]
    system, reference = systems[primary["system"]], systems[primary["reference"]]
    metric = _metric(results)
    name = METRIC_NAMES.get(metric, metric)
    shown = "" if metric == "accuracy" else f"{name} "  # accuracy is the unnamed default
    lines += [f"**`{primary['system']}` {shown}{_pct(system['mean'][metric])} % against "
              f"`{primary['reference']}` {shown}{_pct(reference['mean'][metric])} %: "
              f"{_pp(primary['gain_pp'])} pp (95 % CI {_pp(primary['ci95_pp'][0])} to "
              f"{_pp(primary['ci95_pp'][1])} pp; per fold "
              + ", ".join(f"{k}: {_pp(v)}" for k, v in primary["per_fold_pp"].items())
              + ").**", "",
              f"Fixed before any test score is seen: in each outer fold and repeat, "
              f"`{primary['system']}` is the head x fusion over every branch, and "
              f"`{primary['reference']}` the single neural-branch system (every single branch "
              f"when there is no neural one), with the best inner out-of-fold {name} on the "
              "training folds. Interval: " + primary["ci_method"] + ".", ""]
    rows = [[fold, choices_auto, primary["choices"][primary["reference"]][fold]]
            for fold, choices_auto in primary["choices"][primary["system"]].items()]
    lines += _table(["Fold", f"{primary['system']} chose", f"{primary['reference']} chose"],
                    rows)
    return lines


def _comparison_row(entry: Mapping[str, Any]) -> list[str]:
    # Multi-label entries carry their primary metric as score (accuracy is top-1 hit there).
    return [f"`{entry['system']}`", _pct(entry.get("score", entry["accuracy"])),
            f"`{entry['reference']}`",
            _pct(entry.get("reference_score", entry["reference_accuracy"])),
            _pp(entry["gain_pp"]),
            f"{_pp(entry['ci95_pp'][0])} to {_pp(entry['ci95_pp'][1])}",
            ", ".join(f"{k}: {_pp(v)}" for k, v in entry["per_fold_pp"].items())]


_COMPARISON_HEADER = ["System", "%", "Reference", "%", "Gain (pp)", "95 % CI (pp)",
                      "Per fold (pp)"]


def _branch_section(results: Mapping[str, Any]) -> list[str]:
    """Handcrafted + each neural branch against it alone; and the learning curve."""
    entries = results.get("branch_comparisons") or []
    if len(entries) < 2 and not results.get("learning_curve"):
        return []  # one neural branch: the primary comparison says it all
    lines = ["## Handcrafted branches next to each neural branch", "",
             "For each neural branch (a pretrained embedding, or `e2e`, the CNN trained from "
             "scratch on the training folds): the handcrafted branches + it against it alone, "
             "each side chosen in every outer fold and repeat by inner cross-validation on the "
             "training folds (intervals as in the primary comparison).", ""]
    lines += _table(["Branch", *_COMPARISON_HEADER],
                    [[f"`{e['branch']}`", *_comparison_row(e)] for e in entries])
    curve = results.get("learning_curve") or []
    if curve:
        lines += ["### Learning curve", "",
                  "The same comparisons with each outer fold's training set cut to a fraction of "
                  "its source recordings (stratified by class, drawn anew in every repeat); "
                  "the test folds are untouched.", ""]
        lines += _table(["Fraction", "Training clips", "Branch", *_COMPARISON_HEADER],
                        [[f"{e['fraction']:g}", f"{e['train_clips']:.0f}", f"`{e['branch']}`",
                          *_comparison_row(e)] for e in curve])
    return lines


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def render_markdown(results: Mapping[str, Any], plots: Mapping[str, str] | None = None) -> str:
    """The text of ``report.md``.

    Parameters
    ----------
    results : mapping
        Benchmark results.
    plots : mapping of str to str, optional
        Plot title -> file name (relative to the report) to embed.
    """
    systems = {system["name"]: system for system in results["systems"]}
    config = results.get("config", {})
    heads = list(dict.fromkeys(system["head"] for system in results["systems"]
                               if system["head"] is not None))
    folds = results["folds"]
    metric = _metric(results)
    metric_name = METRIC_NAMES.get(metric, metric)
    lines = [f"# featurekit benchmark: {results['dataset']}", ""]

    protocol = (f"**Protocol.** {results['protocol']} over folds {_folds_text(folds)} "
                f"({results.get('n_clips', '?')} clips, {len(results.get('classes', []))} "
                f"classes; clips per fold: "
                + ", ".join(f"{k}: {v}" for k, v in results.get("clips_per_fold", {}).items())
                + "). " + ("Official split: heads are fitted on the train clips (fold 1) and "
                           "predict the validation clips (fold 2), on which fusion weights, "
                           "stackers and every selection are learned; the systems are then "
                           "refitted on train + validation and score the eval clips (fold 3) "
                           "once; intervals resample the eval clips."
                           if results["protocol"] == "train-val-eval" else
                           "Each fold is the test set once; scaling, imputation, early "
                           "stopping, hyper-parameters, fusion weights and stackers are fitted "
                           "on the training folds only, second-level learners on inner "
                           "out-of-fold predictions."))
    lines += [protocol, ""]
    missing = results.get("missing_folds") or []
    if missing:
        lines += [f"**Missing folds.** The dataset's official folds are "
                  f"{_folds_text(results['expected_folds'])}; folds {_folds_text(missing)} are "
                  f"not in this copy, so the figures cover folds {_folds_text(folds)} only and "
                  "are not comparable with full-dataset results.", ""]
    else:
        lines += ["All official folds are present.", ""]
    if config:
        lines += [f"**Budget (identical for every system).** Heads: {', '.join(heads)}; "
                  f"{config.get('repeats', 1)} repeat(s) of every fit (other seeds and inner "
                  f"splits each time), {config.get('n_seeds')} seed(s) per seeded head within "
                  "a repeat, probabilities averaged (single branches and every branch inside "
                  f"a fusion alike); {config.get('inner_splits')} inner out-of-fold splits of "
                  "the training folds that keep each source recording whole (the folds "
                  "themselves when recordings are unknown), and the same grouping for every "
                  "head's early stopping; hyper-parameter "
                  f"search {'on' if config.get('tune') else 'off'}; seed {config.get('seed')}.",
                  ""]
    hashes = results.get("config_hashes", {})
    if hashes:
        lines += ["**Config hashes.** " + ", ".join(f"{k}: `{v}`" for k, v in hashes.items()),
                  ""]

    lines += _primary_section(results, systems)
    lines += _branch_section(results)
    lines += sets_section(results)
    lines += [f"## Exploratory: the best systems by test {metric_name}", ""]
    best_single = systems[results["best_single"]]
    lines.append(f"- Best single branch: `{best_single['name']}`, {metric_name} "
                 f"{_mean_sd(best_single, metric)} %")
    gain = results.get("fusion_gain")
    if results.get("best_fusion"):
        best_fusion = systems[results["best_fusion"]]
        lines.append(f"- Best fusion: `{best_fusion['name']}`, {metric_name} "
                     f"{_mean_sd(best_fusion, metric)} %")
        lines.append(f"- Its gain over the best single branch: {_pp(gain['mean_pp'])} pp "
                     f"(95 % CI {_pp(gain['ci95_pp'][0])} to "
                     f"{_pp(gain['ci95_pp'][1])} pp; per fold "
                     + ", ".join(f"{k}: {_pp(v)}" for k, v in gain["per_fold_pp"].items())
                     + ")")
        n_fused = sum(s["fusion"] is not None and s["head"] is not None
                      for s in systems.values())
        n_single = sum(s["fusion"] is None for s in systems.values())
        lines.append(f"- **Exploratory.** Both are picked by their test {metric_name} among "
                     f"{n_fused} fused and {n_single} single systems, "
                     "so this gain is the most favourable of many comparisons and its interval "
                     "does not account for that choice. The primary comparison above is the "
                     "one to quote.")
    else:
        lines.append("- No fusion was run (a single branch, or no fusion requested).")
    lines.append("")

    lines += [f"## Ablation: {metric_name} (%) by branch set, head and fusion", "",
              "Mean ± standard deviation over folds.", ""]
    rows = []
    subsets = list(dict.fromkeys(tuple(system["branches"]) for system in results["systems"]))
    fusions = list(dict.fromkeys(system["fusion"] for system in results["systems"]))
    for subset in subsets:
        for fusion in fusions:
            cells = []
            for head in heads:
                match = [s for s in results["systems"] if tuple(s["branches"]) == subset
                         and s["head"] == head and s["fusion"] == fusion]
                cells.append(_mean_sd(match[0], metric) if match else "")
            if any(cells):
                example = next(s for s in results["systems"] if tuple(s["branches"]) == subset)
                rows.append(["+".join(subset), ", ".join(example["ablation"]),
                             fusion or "–", *cells])
    lines += _table(["Branches", "Role", "Fusion", *heads], rows)

    contributions = results.get("contributions", {})
    if contributions.get("branches"):
        lines += ["## Branch contributions", "",
                  f"Head `{contributions['head']}`, fusion `{contributions['fusion']}` (those of "
                  f"the best fusion). *Alone*: the branch's own {metric_name}; *marginal*: "
                  f"{metric_name} of "
                  "all branches minus all but this one. ± is the standard deviation over folds.",
                  ""]
        rows = []
        for name, entry in contributions["branches"].items():
            alone = entry["alone_pct"]
            marginal = entry.get("marginal_pp")
            rows.append([name, f"{alone['mean']:.1f} ± {alone['std']:.1f}",
                         f"{_pp(marginal['mean'])} ± {marginal['std']:.1f}" if marginal
                         else "n/a"])
        lines += _table(["Branch", "Alone (%)", "Marginal (pp)"], rows)

    if results.get("comparisons"):
        lines += ["## Every fusion against the best single branch", "",
                  f"Reference: `{results['best_single']}`, the single branch with the best "
                  f"mean test {metric_name} (equally tuned and ensembled; choosing it on the "
                  "test "
                  "folds favours the reference, so gains are conservative).",
                  ""]
        rows = [[f"`{c['system']}`", _pp(c["mean_pp"]),
                 f"{_pp(c['ci95_pp'][0])} to {_pp(c['ci95_pp'][1])}",
                 f"{c['n_better']}/{c['n_worse']}", _p(c["sign_test_p"]), _p(c["wilcoxon_p"])]
                for c in sorted(results["comparisons"], key=lambda c: -c["mean_pp"])]
        lines += _table(["Fusion", f"Δ {metric_name} (pp)", "95 % CI (pp)",
                         "folds better/worse",
                         "sign p", "Wilcoxon p"], rows)

    if results.get("fusion_vs_own_branches"):
        lines += ["## Every fusion against the best of its own branches", "",
                  "Same head on both sides: what fusing adds to that head (for the joint "
                  "sequence model, the gain over its strongest stream's encoder alone, equally "
                  "ensembled).", ""]
        rows = [[f"`{c['system']}`", f"`{c['reference']}`", _pp(c["mean_pp"]),
                 f"{_pp(c['ci95_pp'][0])} to {_pp(c['ci95_pp'][1])}",
                 " / ".join(_pp(v) for v in c["per_fold_pp"].values())]
                for c in sorted(results["fusion_vs_own_branches"], key=lambda c: -c["mean_pp"])]
        lines += _table(["Fusion", "Best own branch", f"Δ {metric_name} (pp)", "95 % CI (pp)",
                         f"Δ per fold ({' / '.join(str(f) for f in folds)})"], rows)

    everything = max((s["branches"] for s in results["systems"]), key=len)
    shown = {tuple(everything), tuple(systems[results["best_fusion"]]["branches"])
             if results.get("best_fusion") else ()}
    relied = [s for s in results["systems"] if s.get("fusion_choice")
              and tuple(s["branches"]) in shown]
    if relied:
        lines += ["## What the fusions relied on", "",
                  "All branches, and the best fusion's branches: per outer fold, what each "
                  "learned fusion chose on its inner out-of-fold predictions (weights, "
                  "temperatures, fallbacks), the features the oof_features head read, or, for "
                  "the joint model, its mean gate weights on the test clips.", ""]
        rows = [[f"`{s['name']}`", str(fold), choice]
                for s in relied for fold, choice in s["fusion_choice"].items()]
        lines += _table(["Fusion", "Fold", "Choice"], rows)

    if results.get("sequence_vs_functionals"):
        lines += ["## Functionals heads against learned sequence embeddings", "",
                  "Per branch: the `seq` head (an encoder trained on the branch's frame "
                  "sequence) against the best head on the branch's clip-level functionals.", ""]
        rows = [[c["branch"], f"`{c['reference']}`", f"`{c['system']}`", _pp(c["mean_pp"]),
                 f"{_pp(c['ci95_pp'][0])} to {_pp(c['ci95_pp'][1])}",
                 f"{c['n_better']}/{c['n_worse']}"]
                for c in results["sequence_vs_functionals"]]
        lines += _table(["Branch", "Functionals", "Learned", "Δ accuracy (pp)", "95 % CI (pp)",
                         "folds better/worse"], rows)

    metric = _metric(results)
    shown = (("map", "macro mAP"), ("micro_map", "micro mAP"), ("lwlrap", "lwlrap"),
             ("accuracy", "top-1 hit")) if results.get("multilabel") else (
             ("accuracy", "Accuracy"), ("macro_f1", "Macro-F1"), ("map", "mAP"))
    lines += ["## All systems", "", "Mean ± sd over folds (%), each fold's score the mean over "
              f"repeats; repeat sd: standard deviation (pp) of the {METRIC_NAMES[metric]} over "
              "repeats." + (" Multi-label: d′ from the macro ROC AUC; top-1 hit: share of "
                            "clips whose best-scored class is one of theirs."
                            if results.get("multilabel") else ""), ""]
    rows = [[f"`{s['name']}`", *(_mean_sd(s, key) for key, _ in shown),
             *([f"{s['mean']['dprime']:.2f}"] if results.get("multilabel") else []),
             f"{100.0 * s.get('repeat_sd', {}).get(metric, 0.0):.2f}",
             " / ".join(_pct(s["per_fold"][str(f)][metric]) for f in folds)]
            for s in results["systems"]]
    lines += _table(["System", *(title for _, title in shown),
                     *(["d′"] if results.get("multilabel") else []), "Repeat sd",
                     f"{METRIC_NAMES[metric]} per fold ({' / '.join(str(f) for f in folds)})"],
                    rows)

    best_fusion_name, reference = (_gain_pair(results) if results.get("best_fusion")
                                   else (None, None))
    if best_fusion_name and reference:
        fused, base = systems[best_fusion_name], systems[reference]
        key = _per_class_key(results)
        score = "AP" if key == "per_class_ap" else "F1"
        lines += [f"## Per-class {score}", "",
                  f"`{best_fusion_name}` against `{reference}` ({score} over all test folds).",
                  ""]
        rows = [[name, f"{base[key][name]:.3f}", f"{fused[key][name]:.3f}",
                 f"{fused[key][name] - base[key][name]:+.3f}"]
                for name in results["classes"]]
        lines += _table(["Class", reference, best_fusion_name, "Gain"], rows)

    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{title}]({name})" for title, name in plots.items()]
        lines.append("")
    timings = results.get("timings_s", {})
    if timings:
        lines += ["## Run", "", "Timings (s): " + ", ".join(f"{k} {v:.1f}"
                                                          for k, v in timings.items()),
                  "", "Versions: " + ", ".join(f"{k} {v}"
                                               for k, v in results.get("versions", {}).items()),
                  ""]
    return "\n".join(lines)


def _save(figure: Figure, target: Path) -> None:
    FigureCanvasAgg(figure)
    with atomic_path(target, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight",
                       metadata={"Software": None})


def plot_contributions(results: Mapping[str, Any], target: Path) -> None:
    """Bars of each branch's accuracy alone and its marginal gain, fold standard deviations as
    error bars."""
    contributions = results["contributions"]
    names = list(contributions["branches"])
    entries = [contributions["branches"][name] for name in names]
    has_marginal = all("marginal_pp" in entry for entry in entries)
    figure = Figure(figsize=(4.0 + 2.5 * has_marginal + 0.4 * len(names), 3.6),
                    layout="constrained")
    axes = figure.subplots(1, 2 if has_marginal else 1, squeeze=False)[0]
    positions = np.arange(len(names))
    axes[0].bar(positions, [e["alone_pct"]["mean"] for e in entries],
                yerr=[e["alone_pct"]["std"] for e in entries], capsize=4, color="tab:blue")
    axes[0].set_ylabel("accuracy alone (%)")
    axes[0].set_title(f"alone ({contributions['head']})")
    if has_marginal:
        values = [e["marginal_pp"]["mean"] for e in entries]
        axes[1].bar(positions, values, yerr=[e["marginal_pp"]["std"] for e in entries],
                    capsize=4, color=["tab:green" if v >= 0 else "tab:red" for v in values])
        axes[1].axhline(0.0, color="black", linewidth=0.8)
        axes[1].set_ylabel("all − all-but-branch (pp)")
        axes[1].set_title(f"marginal ({contributions['head']}, {contributions['fusion']})")
    for axis in axes:
        axis.set_xticks(positions, names, rotation=30, ha="right")
    figure.suptitle(f"{results['dataset']}: branch contributions (error bars: fold sd)")
    _save(figure, target)


def plot_learning_curve(results: Mapping[str, Any], target: Path) -> None:
    """Gain of handcrafted + each neural branch over it alone against the training fraction,
    95 % intervals as error bars."""
    curve = results["learning_curve"]
    figure = Figure(figsize=(5.5, 3.6), layout="constrained")
    axis = figure.subplots()
    branches = list(dict.fromkeys(entry["branch"] for entry in curve))
    for offset, branch in zip(np.linspace(-0.015, 0.015, len(branches)), branches,
                              strict=True):
        points = sorted((e for e in curve if e["branch"] == branch),
                        key=lambda e: e["fraction"])
        x = np.array([e["fraction"] for e in points]) * (1.0 + offset)
        gains = np.array([e["gain_pp"] for e in points])
        bounds = np.array([e["ci95_pp"] for e in points])
        axis.errorbar(x, gains, yerr=[gains - bounds[:, 0], bounds[:, 1] - gains], capsize=4,
                      marker="o", label=f"handcrafted + {branch} vs {branch}")
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_xscale("log")
    fractions = sorted({e["fraction"] for e in curve})
    axis.set_xticks(fractions, [f"{f:g}" for f in fractions])
    axis.set_xlabel("fraction of the training recordings")
    axis.set_ylabel("accuracy gain (pp)")
    axis.legend(fontsize=8)
    figure.suptitle(f"{results['dataset']}: what the handcrafted branches add (95 % CI)")
    _save(figure, target)


def plot_confusion(results: Mapping[str, Any], target: Path) -> None:
    """Row-normalised confusion matrix of the headline system over all test folds."""
    system = headline_system(results)
    counts = np.asarray(system["confusion"], dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    classes = results["classes"]
    size = 2.5 + 0.45 * len(classes)
    figure = Figure(figsize=(size + 1.0, size), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(rates, vmin=0.0, vmax=1.0, cmap="Blues")
    if len(classes) <= 20:
        for (row, column), count in np.ndenumerate(counts):
            if count:
                axis.text(column, row, f"{int(count)}", ha="center", va="center", fontsize=7,
                          color="white" if rates[row, column] > 0.5 else "black")
    ticks = np.arange(len(classes))
    axis.set_xticks(ticks, classes, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(ticks, classes, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"{system['name']} ({_pct(system['mean']['accuracy'])} %)", fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of true class")
    _save(figure, target)


def _gain_pair(results: Mapping[str, Any]) -> tuple[str, str]:
    """Per-class gains are shown for the primary comparison, else the best fusion over the
    best neural branch."""
    primary = results.get("primary")
    if primary:
        return primary["system"], primary["reference"]
    return results["best_fusion"], results["reference_for_gain"]


def plot_per_class_gain(results: Mapping[str, Any], target: Path) -> None:
    """Per-class F1 (multi-label: AP) gain of the primary system over its reference."""
    systems = {system["name"]: system for system in results["systems"]}
    fused_name, base_name = _gain_pair(results)
    key = _per_class_key(results)
    fused = systems[fused_name][key]
    base = systems[base_name][key]
    classes = results["classes"]
    gains = [fused[name] - base[name] for name in classes]
    figure = Figure(figsize=(6.0, 1.5 + 0.3 * len(classes)), layout="constrained")
    axis = figure.subplots()
    axis.barh(np.arange(len(classes)), gains,
              color=["tab:green" if g >= 0 else "tab:red" for g in gains])
    axis.axvline(0.0, color="black", linewidth=0.8)
    axis.set_yticks(np.arange(len(classes)), classes, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("AP gain" if key == "per_class_ap" else "F1 gain")
    axis.set_title(f"{fused_name}\nover {base_name}", fontsize=9)
    _save(figure, target)


def plot_per_class_ap(results: Mapping[str, Any], target: Path) -> None:
    """Average precision of each class for the headline system and, with a primary
    comparison, its reference (multi-label results)."""
    systems = [headline_system(results)]
    primary = results.get("primary")
    if primary:
        systems.append(next(s for s in results["systems"]
                            if s["name"] == primary["reference"]))
    classes = results["classes"]
    rows = np.arange(len(classes))
    height = 0.8 / len(systems)
    figure = Figure(figsize=(6.0, 1.5 + 0.3 * len(classes)), layout="constrained")
    axis = figure.subplots()
    for index, system in enumerate(systems):
        values = [system["per_class_ap"][name] for name in classes]
        axis.barh(rows + index * height, np.nan_to_num(values, nan=0.0), height=height,
                  label=f"{system['name']} (mAP {_pct(system['mean']['map'])} %)")
    axis.set_yticks(rows + height * (len(systems) - 1) / 2, classes, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlim(0.0, 1.0)
    axis.set_xlabel("average precision")
    axis.legend(fontsize=7, loc="lower right")
    _save(figure, target)


def write_report(results: Mapping[str, Any],
                 out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.md`` and its plots into ``out_dir``.

    Returns
    -------
    dict of str to Path
        ``report`` and one entry per plot written (``contributions``, ``feature_sets`` for a
        comparison of sets, ``learning_curve`` with train fractions, ``confusion`` (multi-label:
        ``per_class_ap``), ``per_class_gain`` -- the last only when a fusion was run).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    plots: dict[str, str] = {}
    if results.get("contributions", {}).get("branches"):
        plot_contributions(results, out / CONTRIBUTION_PLOT)
        written["contributions"] = out / CONTRIBUTION_PLOT
        plots["Branch contributions"] = CONTRIBUTION_PLOT
    if results.get("feature_sets"):
        plot_sets(results, out / SETS_PLOT)
        written["feature_sets"] = out / SETS_PLOT
        plots["Feature sets side by side"] = SETS_PLOT
    if results.get("learning_curve"):
        plot_learning_curve(results, out / CURVE_PLOT)
        written["learning_curve"] = out / CURVE_PLOT
        plots["Learning curve: gain of the handcrafted branches"] = CURVE_PLOT
    if results.get("multilabel"):  # label sets have no confusion matrix
        plot_per_class_ap(results, out / AP_PLOT)
        written["per_class_ap"] = out / AP_PLOT
        plots["Per-class average precision"] = AP_PLOT
    else:
        plot_confusion(results, out / CONFUSION_PLOT)
        written["confusion"] = out / CONFUSION_PLOT
        plots["Confusion matrix of the headline system"] = CONFUSION_PLOT
    if results.get("best_fusion") and results.get("reference_for_gain"):
        plot_per_class_gain(results, out / GAIN_PLOT)
        written["per_class_gain"] = out / GAIN_PLOT
        plots[f"Per-class {'AP' if results.get('multilabel') else 'F1'} gain of the "
              "primary comparison"] = GAIN_PLOT
    atomic_write_text(out / REPORT_FILE, render_markdown(results, plots))
    written["report"] = out / REPORT_FILE
    return written
