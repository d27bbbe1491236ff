"""The model card: README.md in a saved model's directory, in the Hugging Face style.

YAML front matter (base_model, library_name, license, tags, datasets, metrics and a model-index
with the dev/test numbers), then what the model does, how it was trained, its results, its
out-of-scope and calibration settings, limitations, and how to use it. Every number comes from the
run's own files (results.json, config.yaml, per_class.json, minbert.json), never typed in, so
`minbert card RUN` rebuilds the same card at any time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from minbert.config import read_untrusted_yaml
from minbert.errors import MinbertError
from minbert.model.layout import MODEL_FILE

# data formats whose files are known public datasets (the Hub id when there is one)
DATASETS = {
    "massive": "AmazonScience/massive",
    "clinc150": "clinc_oos",
    "sts": "mteb/stsbenchmark-sts",
    "stsb": "mteb/stsbenchmark-sts",
    "quora": "quora",
    "uci": "UCI Sentiment Labelled Sentences",
    "cs224n": "SST-5 (CS224N)",
    "pipe": "SST-5 / CFIMDB (minBERT)",
    "glue": "nyu-mll/glue",
}
SHOWN = ("accuracy", "macro_f1", "weighted_f1", "pearson", "spearman", "ece", "nll")
OOS_SHOWN = ("in_scope_accuracy", "oos_recall", "oos_precision", "oos_f1", "oos_auroc", "fpr_at_95_tpr")


def base_license(checkpoint: str) -> str:
    """The license in the base checkpoint's own card, when the checkpoint can be found here."""
    try:
        from minbert.model.checkpoint import resolve_checkpoint

        readme = Path(resolve_checkpoint(checkpoint)) / "README.md"
        text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    except MinbertError:
        return "unknown"
    if text.startswith("---"):
        try:
            front = read_untrusted_yaml(text.split("---", 2)[1]) or {}
        except yaml.YAMLError:
            return "unknown (its README front matter is not plain YAML)"
        return str(front.get("license", "unknown")) if isinstance(front, dict) else "unknown"
    return "unknown"


def read_run(run_dir: Path) -> tuple[dict, dict, dict, dict | None]:
    missing = [
        name for name in ("results.json", "config.yaml", f"model/{MODEL_FILE}") if not (run_dir / name).is_file()
    ]
    if missing:
        raise MinbertError(
            f"{run_dir}: not a finished minbert run ({', '.join(missing)} missing); give a training run's output_dir"
        )
    try:
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
        config = read_untrusted_yaml((run_dir / "config.yaml").read_text(encoding="utf-8"))
        description = json.loads((run_dir / "model" / MODEL_FILE).read_text(encoding="utf-8"))
        per_class_file = run_dir / "per_class.json"
        per_class = json.loads(per_class_file.read_text(encoding="utf-8")) if per_class_file.is_file() else None
    except (ValueError, yaml.YAMLError, OSError) as e:
        raise MinbertError(
            f"{run_dir}: a run file cannot be read ({type(e).__name__}: {e}); is the run damaged?"
        ) from None
    shapes = ((results, "results.json"), (config, "config.yaml"), (description, f"model/{MODEL_FILE}"))
    wrong = [name for value, name in shapes if not isinstance(value, dict)]
    wrong += ["results.json"] if isinstance(results, dict) and not isinstance(results.get("results", {}), dict) else []
    wrong += ["per_class.json"] if per_class is not None and not isinstance(per_class, dict) else []
    if wrong:
        raise MinbertError(f"{run_dir}: {wrong[0]} does not hold what a minbert run writes; is the run damaged?")
    return results, config, description, per_class


def data_of(config: dict) -> list[tuple[str, dict]]:
    if config.get("task") == "multitask":
        return [(task["name"], task["data"]) for task in config.get("tasks", [])]
    return [("main", config["data"])]


def card(run_dir: str | Path) -> str:
    run_dir = Path(run_dir)
    results, config, description, per_class = read_run(run_dir)
    summary, splits = results.get("summary", {}), results.get("results", {})
    heads = description["heads"]
    base = description.get("base_checkpoint") or config["model"]["checkpoint"]
    classification = [h for h in heads if h["kind"] == "classification"]
    formats = {data.get("format", "jsonl") for _, data in data_of(config)}
    datasets = sorted({DATASETS[f] for f in formats if f in DATASETS})
    tags = ["minbert", "text-classification" if classification else "sentence-similarity"]
    tags += ["multi-task"] if len(heads) > 1 else []
    tags += ["out-of-scope-detection"] if any(h.get("oos_method", "none") != "none" for h in heads) else []
    metric_rows = [
        {"type": name, "value": round(float(value), 4), "split": split}
        for split, metrics in splits.items()
        for name, value in metrics.items()
        if name.split("_", 1)[-1] in SHOWN or name in SHOWN or name in OOS_SHOWN
    ]
    front: dict[str, Any] = {
        "base_model": base,
        "library_name": "minbert",
        "license": base_license(base),
        "tags": tags,
        **({"datasets": datasets} if datasets else {}),
        "metrics": sorted({row["type"] for row in metric_rows}),
        "model-index": [
            {
                "name": run_dir.name,
                "results": [
                    {
                        "task": {"type": tags[1]},
                        "dataset": {"name": ", ".join(datasets) or "custom data", "split": split},
                        "metrics": [
                            {"type": r["type"], "value": r["value"]} for r in metric_rows if r["split"] == split
                        ],
                    }
                    for split in splits
                ],
            }
        ],
    }
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {run_dir.name}", ""]
    lines += what_it_does(heads, base, description)
    lines += training(config, summary)
    lines += results_section(splits, per_class)
    lines += oos_and_calibration(heads, summary)
    lines += limitations(config, description, heads)
    lines += usage(run_dir, heads)
    return "\n".join(lines) + "\n"


def what_it_does(heads: list[dict], base: str, description: dict) -> list[str]:
    lines = [
        f"A minbert model fine-tuned from `{base}`: {description.get('pooling', 'cls')} pooling, "
        f"texts truncated to {description.get('max_length')} tokens, {len(heads)} head{'s' if len(heads) != 1 else ''}.",
        "",
    ]
    for head in heads:
        name = "" if head["name"] == "main" else f"**{head['name']}**: "
        if head["kind"] == "classification":
            labels = head["labels"]
            shown = ", ".join(f"`{label}`" for label in labels[:60]) + (
                f", ... ({len(labels)} in all)" if len(labels) > 60 else ""
            )
            kind = "tags" if head.get("multilabel") else "classifies"
            what = "any subset of" if head.get("multilabel") else "one of"
            lines.append(
                f"- {name}{kind} {'sentence pairs' if head['input'] != 'single' else 'texts'} with {what} {len(labels)} labels: {shown}"
            )
        else:
            low, high = head.get("target_range", [0, 1])
            lines.append(
                f"- {name}scores {'sentence pairs' if head['input'] != 'single' else 'texts'} from {low:g} to {high:g} ({head['input']} input)"
            )
    return [*lines, ""]


def training(config: dict, summary: dict) -> list[str]:
    train = config.get("train", {})
    rows = [
        ("train", summary.get("train_examples")),
        ("dev", summary.get("dev_examples")),
        ("test", summary.get("test_examples")),
    ]
    files = {
        split: ", ".join(str(data.get(split)) for _, data in data_of(config) if data.get(split)) for split, _ in rows
    }
    lines = ["## Training", "", "| split | file | rows |", "|---|---|---|"]
    lines += [f"| {split} | `{files[split] or '-'}` | {count if count is not None else '-'} |" for split, count in rows]
    minutes = summary.get("train_seconds")
    lines += [
        "",
        f"- recipe: {train.get('epochs')} epochs, batch {train.get('batch_size')}, lr {train.get('lr')} "
        f"(head {train.get('head_lr') or train.get('lr')}), LLRD {train.get('llrd')}, warm-up {train.get('warmup_ratio')}, "
        f"{train.get('schedule')} schedule, freeze {train.get('freeze')}, seed {train.get('seed')}"
        + (", bf16 autocast" if train.get("bf16") else ""),
        f"- training time: {minutes} s ({summary.get('train_examples_per_second')} examples/s) on {summary.get('cpu', 'an unrecorded CPU')} "
        f"({summary.get('device', 'cpu')}); best dev epoch {summary.get('best_epoch')}",
    ]
    if summary.get("distilled_from"):
        lines.append(f"- distilled from {summary['distilled_from']}")
    return [*lines, ""]


def results_section(splits: dict, per_class: dict | None) -> list[str]:
    lines = ["## Results", ""]
    names = [
        n for n in (*SHOWN, *OOS_SHOWN) if any(any(k == n or k.endswith(f"_{n}") for k in m) for m in splits.values())
    ]
    keys = sorted({k for m in splits.values() for k in m if k in names or any(k.endswith(f"_{n}") for n in names)})
    if keys:
        lines += ["| metric | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
        lines += [
            f"| {k} | " + " | ".join(f"{splits[s][k]:.4f}" if k in splits[s] else "" for s in splits) + " |"
            for k in keys
        ]
    if per_class:
        for head, classes in per_class["heads"].items():
            worst = sorted(classes.items(), key=lambda item: item[1]["f1-score"])[:5]
            title = f" of {head}" if head != "main" else ""
            lines += [
                "",
                f"The five weakest classes{title} on {per_class['split']} (by F1):",
                "",
                "| label | precision | recall | F1 | support |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {label} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1-score']:.3f} | {int(v['support'])} |"
                for label, v in worst
            ]
    return [*lines, ""]


def oos_and_calibration(heads: list[dict], summary: dict) -> list[str]:
    lines: list[str] = []
    for head in heads:
        if head.get("oos_method", "none") != "none":
            lines.append(
                f"- out-of-scope rejection: `{head['oos_method']}` score below {head['oos_threshold']:.4f} -> label "
                f"`{head['oos_label']}` (threshold chosen on dev)"
            )
        if head.get("multilabel") and head.get("thresholds"):
            low, high = min(head["thresholds"]), max(head["thresholds"])
            lines.append(
                "- multi-label: a label is given when its sigmoid probability reaches its threshold "
                + (f"({low:.2f} for every label" if low == high else f"({low:.2f} to {high:.2f}, one per label")
                + ", tuned on dev for macro-F1)"
            )
        if head.get("temperature", 1.0) != 1.0:
            before = summary.get("dev_ece_before_calibration")
            lines.append(
                f"- calibrated: softmax temperature {head['temperature']:.3f} fitted on dev"
                + (f" (dev ECE before: {before:.4f})" if before is not None else "")
            )
    return ["## Out-of-scope, calibration and thresholds", "", *lines, ""] if lines else []


def limitations(config: dict, description: dict, heads: list[dict]) -> list[str]:
    lines = [
        "## Limitations",
        "",
        f"- It knows only what its training data held ({', '.join(str(d.get('train')) for _, d in data_of(config))}); "
        "texts from other domains, languages or styles get confident-looking but unreliable answers.",
        f"- Texts longer than {description.get('max_length')} tokens are truncated: only their beginning is read.",
    ]
    if any(h["kind"] == "classification" and not h.get("multilabel") for h in heads) and not any(
        h.get("oos_method", "none") != "none" for h in heads
    ):
        lines.append("- It always answers with one of its labels: it has no out-of-scope rejection (see `oos.method`).")
    if not any(h.get("temperature", 1.0) != 1.0 or h.get("multilabel") for h in heads):
        lines.append("- Its probabilities are not calibrated (see `calibration: temperature` and the ECE above).")
    return [*lines, ""]


def usage(run_dir: Path, heads: list[dict]) -> list[str]:
    task = "" if len(heads) == 1 else f" --task {heads[0]['name']}"
    single = heads[0]["input"] == "single"
    example = "'a text to label'" if single else "$'first sentence\\tsecond sentence'"
    python_input = "'a text to label'" if single else "('first sentence', 'second sentence')"
    task_argument = f", task={heads[0]['name']!r}" if task else ""
    return [
        "## How to use",
        "",
        "```bash",
        f"minbert predict {run_dir.name}{task} {example}     # JSON lines: label, probability, top classes",
        f'minbert serve {run_dir.name} --port 8000            # POST /predict {{"texts": [...]}}',
        f"minbert export {run_dir.name} --int8                # ONNX fp32 + int8 (minbert predict --backend onnx-int8)",
        "```",
        "",
        "```python",
        "import minbert",
        f"model = minbert.load({str(run_dir.name)!r})",
        f"model.predict([{python_input}]{task_argument})",
        "```",
        "",
    ]


def write_card(run_dir: str | Path) -> Path:
    """Write (or rewrite) README.md in the run's model directory, whole or not at all."""
    run_dir = Path(run_dir)
    text = card(run_dir)
    target = run_dir / "model" / "README.md"
    partial = target.with_name(f".README.md.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)
    return target
