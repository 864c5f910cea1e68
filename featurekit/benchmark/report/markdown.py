"""The text of ``report.md``: one function per section, each returning its lines.

Everything is read from the results dict alone (see :mod:`featurekit.benchmark.report`).
Sections a run has nothing for return no lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from featurekit.benchmark.report.common import (
    gain_pair,
    metric_title,
    pct,
    per_class_key,
    primary_metric,
    size_text,
    subsampled_units,
    table,
)
from featurekit.benchmark.report.plan import plan_lines
from featurekit.benchmark.report.protocol import (
    budget_section,
    protocol_section,
    run_heads,
    validation_text,
)
from featurekit.benchmark.report.robustness import robustness_section
from featurekit.benchmark.report.sets import sets_section

#: A run's system entries by name.
Systems = Mapping[str, Mapping[str, Any]]


# -- formatting ------------------------------------------------------------------------------
def _mean_sd(system: Mapping[str, Any], metric: str = "accuracy") -> str:
    return f"{pct(system['mean'][metric])} ± {pct(system['std'][metric])}"


def _pp(value: float) -> str:
    return f"{round(value, 1) + 0.0:+.1f}"  # + 0.0 turns a rounded -0.0 into +0.0


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _interval(ci95: Sequence[float]) -> str:
    return f"{_pp(ci95[0])} to {_pp(ci95[1])}"


def _per_fold(per_fold_pp: Mapping[str, float]) -> str:
    return ", ".join(f"{k}: {_pp(v)}" for k, v in per_fold_pp.items())


# -- sections --------------------------------------------------------------------------------
def _primary_section(results: Mapping[str, Any], systems: Systems) -> list[str]:
    """The headline: ``auto`` against its reference, both chosen on training folds only."""
    primary = results.get("primary")
    lines = ["## Primary comparison", ""]
    if not primary:
        return [*lines, "None: it needs at least two branches and a fusion.", ""]
    return [*lines, *_comparison_lines(
        results, systems, primary, "the single neural-branch system, or with several neural "
                                   "branches any head x fusion of them all (every single "
                                   "branch when there is no neural one)")]


def _synergy_section(results: Mapping[str, Any], systems: Systems) -> list[str]:
    """The second pre-registered comparison: ``auto`` against the best one-group system, and
    its learning curve."""
    synergy = results.get("synergy")
    if not synergy and not results.get("synergy_note"):
        return []  # results written before the synergy comparison existed
    lines = ["## Synergy comparison", ""]
    if not synergy:
        return [*lines, f"None: {results['synergy_note']}.", ""]
    lines += _comparison_lines(
        results, systems, synergy, "the system made of one group of streams only (the "
                                   "handcrafted branches together, with any head and fusion, "
                                   "or one neural branch alone, with any head)")
    curve = results.get("learning_curve_synergy") or []
    if curve:
        lines += ["The same comparison at each fraction of the learning curve:", ""]
        lines += table(["Fraction", "Training clips", *_COMPARISON_HEADER],
                       [[f"{e['fraction']:g}", f"{e['train_clips']:.0f}", *_comparison_row(e)]
                        for e in curve])
    return lines


def _comparison_lines(results: Mapping[str, Any], systems: Systems,
                      primary: Mapping[str, Any], reference_text: str) -> list[str]:
    """A pre-registered comparison (``primary`` or ``synergy``): its headline, how both sides
    were chosen (``reference_text`` says among what), and their choices per fold."""
    system, reference = systems[primary["system"]], systems[primary["reference"]]
    metric = primary_metric(results)
    name = metric_title(results)
    shown = "" if metric == "accuracy" else f"{name} "  # accuracy is the unnamed default
    lines = [f"**`{primary['system']}` {shown}{pct(system['mean'][metric])} % against "
             f"`{primary['reference']}` {shown}{pct(reference['mean'][metric])} %: "
             f"{_pp(primary['gain_pp'])} pp (95 % CI {_interval(primary['ci95_pp'])} pp; "
             f"per fold {_per_fold(primary['per_fold_pp'])}).**", "",
             f"Fixed before any test score is seen: in each outer fold and repeat, "
             f"`{primary['system']}` is the head x fusion over every branch, and "
             f"`{primary['reference']}` {reference_text}, with the best inner out-of-fold "
             f"{name} on the training folds. Interval: " + primary["ci_method"] + ".", ""]
    rows = [[fold, choices_auto, primary["choices"][primary["reference"]][fold]]
            for fold, choices_auto in primary["choices"][primary["system"]].items()]
    return [*lines, *table(["Fold", f"{primary['system']} chose",
                            f"{primary['reference']} chose"], rows)]


_COMPARISON_HEADER = ["System", "%", "Reference", "%", "Gain (pp)", "95 % CI (pp)",
                      "Per fold (pp)"]


def _comparison_row(entry: Mapping[str, Any]) -> list[str]:
    # Multi-label entries carry their primary metric as score (accuracy is top-1 hit there).
    return [f"`{entry['system']}`", pct(entry.get("score", entry["accuracy"])),
            f"`{entry['reference']}`",
            pct(entry.get("reference_score", entry["reference_accuracy"])),
            _pp(entry["gain_pp"]), _interval(entry["ci95_pp"]), _per_fold(entry["per_fold_pp"])]


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
    lines += table(["Branch", *_COMPARISON_HEADER],
                   [[f"`{e['branch']}`", *_comparison_row(e)] for e in entries])
    curve = results.get("learning_curve") or []
    if curve:
        lines += ["### Learning curve", "",
                  "The same comparisons with each outer fold's training set cut to a fraction of "
                  f"its {subsampled_units(results)} (stratified by class, drawn anew in every "
                  "repeat); "
                  "the test folds are untouched.", ""]
        lines += table(["Fraction", "Training clips", "Branch", *_COMPARISON_HEADER],
                       [[f"{e['fraction']:g}", f"{e['train_clips']:.0f}", f"`{e['branch']}`",
                         *_comparison_row(e)] for e in curve])
        fractions = results.get("learning_curve_validation_splits") or {}
        if fractions:
            lines += ["Early stopping of the fits at each fraction below 1:", "",
                      *(f"- {fraction}: {validation_text(counts)}"
                        for fraction, counts in fractions.items()), ""]
    return lines


def _best_section(results: Mapping[str, Any], systems: Systems) -> list[str]:
    """The best single branch and best fusion by test score: exploratory, and said so."""
    metric, metric_name = primary_metric(results), metric_title(results)
    best_single = systems[results["best_single"]]
    lines = [f"## Exploratory: the best systems by test {metric_name}", "",
             f"- Best single branch: `{best_single['name']}`, {metric_name} "
             f"{_mean_sd(best_single, metric)} %"]
    if not results.get("best_fusion"):
        return [*lines, "- No fusion was run (a single branch, or no fusion requested).", ""]
    best_fusion = systems[results["best_fusion"]]
    gain = results.get("fusion_gain")
    n_fused = sum(s["fusion"] is not None and s["head"] is not None for s in systems.values())
    n_single = sum(s["fusion"] is None for s in systems.values())
    return [*lines,
            f"- Best fusion: `{best_fusion['name']}`, {metric_name} "
            f"{_mean_sd(best_fusion, metric)} %",
            f"- Its gain over the best single branch: {_pp(gain['mean_pp'])} pp "
            f"(95 % CI {_interval(gain['ci95_pp'])} pp; per fold "
            f"{_per_fold(gain['per_fold_pp'])})",
            f"- **Exploratory.** Both are picked by their test {metric_name} among "
            f"{n_fused} fused and {n_single} single systems, "
            "so this gain is the most favourable of many comparisons and its interval "
            "does not account for that choice. The primary comparison above is the "
            "one to quote.", ""]


def _ablation_section(results: Mapping[str, Any]) -> list[str]:
    """Every branch set x fusion (rows) by head (columns)."""
    metric, heads = primary_metric(results), run_heads(results)
    lines = [f"## Ablation: {metric_title(results)} (%) by branch set, head and fusion", "",
             "Mean ± standard deviation over folds; beside each, the values the system learned "
             "(heads, encoders, the e2e CNN, the fusion's own), and per branch set those of "
             "the frozen pretrained networks it reads (`?`: not counted).", ""]
    rows = []
    subsets = list(dict.fromkeys(tuple(system["branches"]) for system in results["systems"]))
    fusions = list(dict.fromkeys(system["fusion"] for system in results["systems"]))
    for subset in subsets:
        for fusion in fusions:
            cells = []
            for head in heads:
                match = [s for s in results["systems"] if tuple(s["branches"]) == subset
                         and s["head"] == head and s["fusion"] == fusion]
                cells += ([_mean_sd(match[0], metric), size_text(match[0], "n_parameters")]
                          if match else ["", ""])
            if any(cells):
                example = next(s for s in results["systems"] if tuple(s["branches"]) == subset)
                rows.append(["+".join(subset), ", ".join(example["ablation"]),
                             fusion or "–", *cells, size_text(example, "n_frozen_parameters")])
    return [*lines, *table(["Branches", "Role", "Fusion",
                            *(title for head in heads for title in (head, "learned")),
                            "frozen"], rows)]



def _contributions_section(results: Mapping[str, Any]) -> list[str]:
    """Each branch alone and its marginal gain, with the best fusion's head and fusion."""
    contributions = results.get("contributions", {})
    if not contributions.get("branches"):
        return []
    metric_name = metric_title(results)
    lines = ["## Branch contributions", "",
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
    return [*lines, *table(["Branch", "Alone (%)", "Marginal (pp)"], rows)]


def _against_best_single_section(results: Mapping[str, Any]) -> list[str]:
    """Every fusion against the best single branch, with sign and Wilcoxon tests."""
    if not results.get("comparisons"):
        return []
    metric_name = metric_title(results)
    lines = ["## Every fusion against the best single branch", "",
             f"Reference: `{results['best_single']}`, the single branch with the best "
             f"mean test {metric_name} (equally tuned and ensembled; choosing it on the "
             "test "
             "folds favours the reference, so gains are conservative).",
             ""]
    rows = [[f"`{c['system']}`", _pp(c["mean_pp"]), _interval(c["ci95_pp"]),
             f"{c['n_better']}/{c['n_worse']}", _p(c["sign_test_p"]), _p(c["wilcoxon_p"])]
            for c in sorted(results["comparisons"], key=lambda c: -c["mean_pp"])]
    return [*lines, *table(["Fusion", f"Δ {metric_name} (pp)", "95 % CI (pp)",
                            "folds better/worse", "sign p", "Wilcoxon p"], rows)]


def _against_own_branches_section(results: Mapping[str, Any]) -> list[str]:
    """Every fusion against the best of its own branches with the same head."""
    if not results.get("fusion_vs_own_branches"):
        return []
    lines = ["## Every fusion against the best of its own branches", "",
             "Same head on both sides: what fusing adds to that head (for the joint "
             "sequence model, the gain over its strongest stream's encoder alone, equally "
             "ensembled).", ""]
    rows = [[f"`{c['system']}`", f"`{c['reference']}`", _pp(c["mean_pp"]),
             _interval(c["ci95_pp"]), " / ".join(_pp(v) for v in c["per_fold_pp"].values())]
            for c in sorted(results["fusion_vs_own_branches"], key=lambda c: -c["mean_pp"])]
    folds = " / ".join(str(f) for f in results["folds"])
    return [*lines, *table(["Fusion", "Best own branch", f"Δ {metric_title(results)} (pp)",
                            "95 % CI (pp)", f"Δ per fold ({folds})"], rows)]


def _reliance_section(results: Mapping[str, Any], systems: Systems) -> list[str]:
    """Per outer fold, what the learned fusions over all branches and over the best fusion's
    branches chose."""
    everything = max((s["branches"] for s in results["systems"]), key=len)
    shown = {tuple(everything), tuple(systems[results["best_fusion"]]["branches"])
             if results.get("best_fusion") else ()}
    relied = [s for s in results["systems"] if s.get("fusion_choice")
              and tuple(s["branches"]) in shown]
    if not relied:
        return []
    lines = ["## What the fusions relied on", "",
             "All branches, and the best fusion's branches: per outer fold, what each "
             "learned fusion chose on its inner out-of-fold predictions (weights, "
             "temperatures, fallbacks), the features the oof_features head read, or, for "
             "the joint model, its mean gate weights on the test clips.", ""]
    rows = [[f"`{s['name']}`", str(fold), choice]
            for s in relied for fold, choice in s["fusion_choice"].items()]
    return [*lines, *table(["Fusion", "Fold", "Choice"], rows)]


def _sequence_section(results: Mapping[str, Any]) -> list[str]:
    """Per branch, the learned sequence embedding against the best functionals head."""
    if not results.get("sequence_vs_functionals"):
        return []
    lines = ["## Functionals heads against learned sequence embeddings", "",
             "Per branch: the `seq` head (an encoder trained on the branch's frame "
             "sequence) against the best head on the branch's clip-level functionals.", ""]
    rows = [[c["branch"], f"`{c['reference']}`", f"`{c['system']}`", _pp(c["mean_pp"]),
             _interval(c["ci95_pp"]), f"{c['n_better']}/{c['n_worse']}"]
            for c in results["sequence_vs_functionals"]]
    return [*lines, *table(["Branch", "Functionals", "Learned", "Δ accuracy (pp)",
                            "95 % CI (pp)", "folds better/worse"], rows)]


def _all_systems_section(results: Mapping[str, Any]) -> list[str]:
    """Every system's scores, repeat spread and per-fold primary metric."""
    metric, metric_name = primary_metric(results), metric_title(results)
    multilabel = results.get("multilabel")
    folds = results["folds"]
    shown = (("map", "macro mAP"), ("micro_map", "micro mAP"), ("lwlrap", "lwlrap"),
             ("accuracy", "top-1 hit")) if multilabel else (
             ("accuracy", "Accuracy"), ("macro_f1", "Macro-F1"), ("map", "mAP"))
    lines = ["## All systems", "", "Mean ± sd over folds (%), each fold's score the mean over "
             f"repeats; repeat sd: standard deviation (pp) of the {metric_name} over "
             "repeats." + (" Multi-label: d′ from the macro ROC AUC; top-1 hit: share of "
                           "clips whose best-scored class is one of theirs."
                           if multilabel else ""), ""]
    rows = [[f"`{s['name']}`", *(_mean_sd(s, key) for key, _ in shown),
             *([f"{s['mean']['dprime']:.2f}"] if multilabel else []),
             f"{100.0 * s.get('repeat_sd', {}).get(metric, 0.0):.2f}",
             size_text(s, "n_parameters"), size_text(s, "n_frozen_parameters"),
             " / ".join(pct(s["per_fold"][str(f)][metric]) for f in folds)]
            for s in results["systems"]]
    return [*lines, *table(["System", *(title for _, title in shown),
                            *(["d′"] if multilabel else []), "Repeat sd", "Learned", "Frozen",
                            f"{metric_name} per fold ({' / '.join(str(f) for f in folds)})"],
                           rows)]


def _per_class_section(results: Mapping[str, Any], systems: Systems) -> list[str]:
    """Per-class F1 (multi-label: AP) of the primary system and its reference."""
    if not results.get("best_fusion"):
        return []
    fused_name, reference = gain_pair(results)
    if not (fused_name and reference):
        return []
    fused, base = systems[fused_name], systems[reference]
    key = per_class_key(results)
    score = "AP" if key == "per_class_ap" else "F1"
    lines = [f"## Per-class {score}", "",
             f"`{fused_name}` against `{reference}` ({score} over all test folds).", ""]
    rows = [[name, f"{base[key][name]:.3f}", f"{fused[key][name]:.3f}",
             f"{fused[key][name] - base[key][name]:+.3f}"]
            for name in results["classes"]]
    return [*lines, *table(["Class", reference, fused_name, "Gain"], rows)]


def _plots_section(plots: Mapping[str, str] | None) -> list[str]:
    """The plots embedded, by title."""
    if not plots:
        return []
    return ["## Plots", "", *(f"![{title}]({name})" for title, name in plots.items()), ""]


def _run_section(results: Mapping[str, Any]) -> list[str]:
    """Timings and package versions of the run."""
    timings = results.get("timings_s", {})
    if not timings:
        return []
    return ["## Run", "",
            "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()), "",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items()),
            ""]


def render_markdown(results: Mapping[str, Any], plots: Mapping[str, str] | None = None) -> str:
    """The text of ``report.md``.

    Parameters
    ----------
    results : mapping
        Benchmark results.
    plots : mapping of str to str, optional
        Plot title -> file name (relative to the report) to embed.

    Returns
    -------
    str
        The report, its sections in reading order: protocol and budget, the primary
        comparison, then the exploratory and detailed tables, plots and run information.
    """
    systems = {system["name"]: system for system in results["systems"]}
    sections = [
        protocol_section(results),
        budget_section(results),
        _primary_section(results, systems),
        _synergy_section(results, systems),
        _branch_section(results),
        robustness_section(results),
        sets_section(results),
        _best_section(results, systems),
        _ablation_section(results),
        _contributions_section(results),
        _against_best_single_section(results),
        _against_own_branches_section(results),
        _reliance_section(results, systems),
        _sequence_section(results),
        _all_systems_section(results),
        _per_class_section(results, systems),
        _plots_section(plots),
        plan_lines(results["plan"]) if results.get("plan") else [],
        _run_section(results),
    ]
    return "\n".join(line for section in sections for line in section)
