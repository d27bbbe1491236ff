"""Distil the MPNet-base MASSIVE model into all-MiniLM-L6-v2, and measure both.

    python experiments/massive_distill.py            # run what is missing, then render the table
    python experiments/massive_distill.py --render   # only render experiments/massive_distill.md

Teacher: all-mpnet-base-v2 fine-tuned with the `make demo` recipe, run seed 1 of
experiments/massive_table.py (`--checkpoint all-mpnet-base-v2 --bf16 --recipes demo`); when its run
directory is gone (they are not committed) this script trains it again first. Students:
all-MiniLM-L6-v2 with the recipe of their row (demo, or the 10-epoch configs/massive_best.yaml) plus the
teacher's soft targets (distill.alpha, distill.temperature), on MASSIVE train only; selected on dev,
reported on test.
After each run the script measures inference sentences/s of the model (PyTorch and int8 ONNX, batch
64 over the test set, one thread) and the int8 model's test accuracy; the teacher is measured the same
way. Resumable through experiments/results.csv.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import (  # noqa: E402
    DATA_DIR,
    REPO,
    Run,
    append_rows,
    ensure_model,
    main,
    mean_sd,
    read_rows,
    runs_dir,
    write_markdown,
)

from minbert.runtime import cpu_description  # noqa: E402

EXPERIMENT = "massive_distill"
CONFIG = REPO / "configs" / "massive_intent.yaml"
TEACHER_RUN = Run("massive_seed000", "demo", CONFIG, 1, ["--train.bf16", "true"], checkpoint="all-mpnet-base-v2")
TEACHER = TEACHER_RUN.output_dir
BEST = REPO / "configs" / "massive_best.yaml"
RETRAINED = "teacher_retrained"
# the student's recipes without a teacher (seed 000's table): recipe -> (config, label), and their results.csv keys
ALONE = {"demo": (CONFIG, "demo recipe"), "best": (BEST, "best 10-epoch recipe")}
ALONE_KEYS = {recipe: ("massive_seed000", recipe, "all-MiniLM-L6-v2") for recipe in ALONE}
# results.csv keys (experiment, recipe, checkpoint) of the teacher run and of its retrains
TEACHER_KEY = (TEACHER_RUN.experiment, TEACHER_RUN.recipe, TEACHER_RUN.checkpoint)
RETRAINED_KEY = (EXPERIMENT, RETRAINED, TEACHER_RUN.checkpoint)
# the full-recipe teacher: configs/massive_best.yaml on MPNet-base, the seed of the three with the best dev accuracy
BEST_TEACHER_RUN = Run("massive_seed000", "best", BEST, 2, ["--train.bf16", "true"], checkpoint="all-mpnet-base-v2")
BEST_TEACHER_KEY = (BEST_TEACHER_RUN.experiment, BEST_TEACHER_RUN.recipe, BEST_TEACHER_RUN.checkpoint)


def soft_targets(alpha: str, temperature: str) -> list[str]:
    return ["--distill.alpha", alpha, "--distill.temperature", temperature]


# extra unlabelled texts: file name -> the sets whose utterances (all splits) it holds
EXTRA_TEXTS = {"extra_texts.txt": ("hwu64", "clinc150"), "extra_texts_hwu64.txt": ("hwu64",)}


def extra_texts_file(name: str) -> Path:
    return runs_dir() / EXPERIMENT / name


def write_extra_texts(name: str) -> None:
    """Unlabelled text for the full-recipe teacher to label: every utterance of the sets EXTRA_TEXTS names (all
    splits; CLINC150's out-of-scope ones too), each once, without MASSIVE's training texts (labelled already).
    Written to the runs directory, never committed; the run itself drops any text of MASSIVE dev or test
    (compared on letters and digits) and logs how many, so no evaluation text is trained on."""
    from minbert.data.readers import read_examples

    out = extra_texts_file(name)
    if out.is_file():
        return
    texts = []
    if "hwu64" in EXTRA_TEXTS[name]:
        for split in ("train", "dev", "test"):
            texts += [e.text for e in read_examples(DATA_DIR / "hwu64" / f"{split}.csv", "csv", require_labels=False)]
    if "clinc150" in EXTRA_TEXTS[name]:
        clinc = DATA_DIR / "clinc150" / "data_full.json"
        for split in ("train", "val", "test", "oos_train", "oos_val", "oos_test"):
            texts += [e.text for e in read_examples(clinc, "clinc150", split=split, require_labels=False)]
    train = {e.text for e in read_examples(DATA_DIR / "massive_en_us" / "train.jsonl", "massive")}
    kept = [text for text in dict.fromkeys(t.strip() for t in texts) if text and text not in train]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{text}\n" for text in kept), encoding="utf-8")
    sets = " + ".join(EXTRA_TEXTS[name])
    print(f"    {out}: {len(kept)} unlabelled texts (of {len(texts)} {sets} utterances)", flush=True)


def with_extra_texts(name: str, epochs: str) -> list[str]:
    """The full-recipe teacher labels the texts of file `name` as well as the train rows. bf16: 1.4x the
    student's fp32 training rate on an avx512_bf16 CPU, and the teacher labels the texts in bf16 too."""
    return [
        *("--distill.teacher", str(BEST_TEACHER_RUN.output_dir)),
        *("--distill.data", f"[{extra_texts_file(name)}]", "--distill.format", "text"),
        *("--train.epochs", epochs, "--train.bf16", "true"),
    ]


# recipe -> (student config, distill overrides, seeds, label); the teacher is TEACHER unless the overrides name one
RECIPES = {
    "kd_a0.5_t2": (CONFIG, soft_targets("0.5", "2"), [1, 2, 3], "demo recipe, alpha 0.5, T 2"),
    "kd_a0.9_t2": (CONFIG, soft_targets("0.9", "2"), [1], "demo recipe, alpha 0.9, T 2"),
    "kd_best_a0.5_t2": (BEST, soft_targets("0.5", "2"), [1], "10-epoch recipe, alpha 0.5, T 2"),
    "kd_best_a0.5_t4": (BEST, soft_targets("0.5", "4"), [1], "10-epoch recipe, alpha 0.5, T 4"),
    # 5 epochs: each passes over 3.4x the labelled rows
    "kd_full_extra_a0.5_t2_e5": (
        BEST,
        [*soft_targets("0.5", "2"), *with_extra_texts("extra_texts.txt", "5")],
        [1],
        "full-recipe teacher, + HWU64/CLINC150 texts, 5 epochs, alpha 0.5, T 2, bf16",
    ),
    # the first one's dev accuracy (88.93) stayed below the student alone's (89.64): back to the recipe's 10
    # epochs over the labelled rows, with the in-domain texts only
    "kd_full_hwu64_a0.5_t2": (
        BEST,
        [*soft_targets("0.5", "2"), *with_extra_texts("extra_texts_hwu64.txt", "10")],
        [1],
        "full-recipe teacher, + HWU64 texts, 10 epochs, alpha 0.5, T 2, bf16",
    ),
}


def teacher_of(overrides: list[str]) -> list[str]:
    return [] if "--distill.teacher" in overrides else ["--distill.teacher", str(TEACHER)]


def prepare(run: Run) -> None:
    """What a student still to train needs: its teacher's model, trained again if gone, and the extra texts."""
    if str(BEST_TEACHER_RUN.output_dir) in run.overrides:
        ensure_model(BEST_TEACHER_RUN)
    else:
        ensure_teacher()
    for name in EXTRA_TEXTS:
        if f"[{extra_texts_file(name)}]" in run.overrides:
            write_extra_texts(name)


def ensure_teacher() -> None:
    """Train the teacher again when its model is gone; the retrain's rows are kept as `teacher_retrained`
    (the students after it learn from that model), and as the teacher run's own rows if it has none yet."""
    ensure_model(TEACHER_RUN, retrained_as=(EXPERIMENT, RETRAINED))


def runs() -> list[Run]:
    return [
        Run(EXPERIMENT, recipe, config, seed, [*teacher_of(overrides), *overrides])
        for seed_index in range(3)
        for recipe, (config, overrides, seeds, _) in RECIPES.items()
        if seed_index < len(seeds)
        for seed in [seeds[seed_index]]
    ]


def inference_rows(experiment: str, recipe: str, checkpoint: str, seed: int, model_dir: Path) -> list[dict]:
    """Sentences/s at batch 64 over MASSIVE test, PyTorch and int8 ONNX, one thread; and int8 test accuracy."""
    import shutil

    import torch

    from minbert.data.readers import read_examples
    from minbert.model.backends import OnnxModel, export_onnx
    from minbert.model.task_model import load
    from minbert.scoring import evaluate

    torch.set_num_threads(1)
    test = DATA_DIR / "massive_en_us" / "test.jsonl"
    texts = [e.text for e in read_examples(test, "massive")]
    rates: dict[str, float] = {}
    model = load(model_dir)
    model.predict(texts[:64])
    started = time.perf_counter()
    model.predict(texts, batch_size=64)
    rates["torch"] = len(texts) / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "model"
        shutil.copytree(model_dir, copy)
        export_onnx(copy, int8=True)
        onnx = OnnxModel(copy, "onnx-int8", threads=1)
        onnx.predict(texts[:64])
        started = time.perf_counter()
        onnx.predict(texts, batch_size=64)
        rates["onnx-int8"] = len(texts) / (time.perf_counter() - started)
        int8_accuracy = evaluate(copy, test, "massive", backend="onnx-int8")["accuracy"]
    base = {"experiment": experiment, "recipe": recipe, "checkpoint": checkpoint, "seed": seed, "split": "test"}
    base |= {"wall_s": "", "examples_per_s": "", "precision": "fp32 / int8", "cpu": cpu_description()}
    return [
        {**base, "metric": "sentences_per_s_torch", "value": round(rates["torch"], 1)},
        {**base, "metric": "sentences_per_s_onnx_int8", "value": round(rates["onnx-int8"], 1)},
        {**base, "metric": "accuracy_onnx_int8", "value": round(int8_accuracy, 6)},
    ]


def measure_missing() -> None:
    """Inference rows, on this CPU, for the teacher and every finished student (distilled, or alone in seed
    000's table) whose model is here and that has none from this CPU yet (speeds are only compared between
    models measured on the same CPU). After a retrain the teacher's directory holds the retrained model, so
    its rows go under `teacher_retrained`."""
    rows = read_rows(checkpoint=None)
    here = cpu_description()
    measured = {
        (r["experiment"], r["recipe"], r["checkpoint"], r["seed"])
        for r in rows
        if r["metric"].startswith("sentences_per_s") and r["cpu"] == here
    }
    retrained = any((r["experiment"], r["recipe"], r["checkpoint"]) == RETRAINED_KEY for r in rows)
    teacher = RETRAINED_KEY if retrained else TEACHER_KEY  # the model in TEACHER now
    wanted = [(*teacher, "1", TEACHER), (*BEST_TEACHER_KEY, str(BEST_TEACHER_RUN.seed), BEST_TEACHER_RUN.output_dir)]
    wanted += [
        (
            EXPERIMENT,
            r["recipe"],
            r["checkpoint"],
            r["seed"],
            Run(EXPERIMENT, r["recipe"], RECIPES[r["recipe"]][0], int(r["seed"])).output_dir,
        )
        for r in rows
        if r["experiment"] == EXPERIMENT
        and r["recipe"] in RECIPES
        and r["metric"] == "accuracy"
        and r["split"] == "test"
    ]
    wanted += [
        (*key, r["seed"], Run(key[0], recipe, ALONE[recipe][0], int(r["seed"])).output_dir)
        for recipe, key in ALONE_KEYS.items()
        for r in rows
        if (r["experiment"], r["recipe"], r["checkpoint"]) == key and (r["split"], r["metric"]) == ("test", "accuracy")
    ]
    for experiment, recipe, checkpoint, seed, run_dir in wanted:
        if (experiment, recipe, checkpoint, seed) in measured or not (run_dir / "model").is_dir():
            continue
        print(f"measuring inference of {experiment} / {recipe} / {checkpoint} / seed {seed} ...", flush=True)
        append_rows(inference_rows(experiment, recipe, checkpoint, int(seed), run_dir / "model"))


def machine(cpu: str) -> str:
    """'Intel(R) Xeon(R) Processor, 2 cores, avx512_bf16' -> 'Intel Xeon' (older rows: 'AMD EPYC (avx512_bf16)')."""
    return cpu.split(",")[0].split(" (")[0].replace("(R)", "").replace(" Processor", "") or "CPU not recorded"


def render() -> Path:
    measure_missing()
    rows = read_rows(checkpoint=None)

    def values(key: tuple[str, str, str], metric: str, split: str = "test", seed: str | None = None) -> list[dict]:
        return [
            r
            for r in rows
            if (r["experiment"], r["recipe"], r["checkpoint"]) == key
            and (r["split"], r["metric"]) == (split, metric)
            and seed in (None, r["seed"])
        ]

    def rates(key: tuple[str, str, str], metric: str, seed: str | None = None) -> dict[str, float]:
        """Mean sentences/s per CPU."""
        found = values(key, metric, seed=seed)
        cpus = sorted({machine(r["cpu"]) for r in found})
        return {cpu: statistics.mean(float(r["value"]) for r in found if machine(r["cpu"]) == cpu) for cpu in cpus}

    def line(label: str, key: tuple[str, str, str], seed: str | None = None) -> str:
        accuracy = lambda metric, split="test": [float(r["value"]) for r in values(key, metric, split, seed)]  # noqa: E731
        speed = lambda metric: " / ".join(f"{v:.0f} ({cpu})" for cpu, v in rates(key, metric, seed).items())  # noqa: E731
        test = accuracy("accuracy")
        return (
            f"| {label} | {key[2]} | {len(test)} | {mean_sd(test)} | {mean_sd(accuracy('accuracy', 'dev'))} | "
            f"{mean_sd(accuracy('accuracy_onnx_int8'))} | {speed('sentences_per_s_torch')} | {speed('sentences_per_s_onnx_int8')} |"
        )

    students = {label: (EXPERIMENT, recipe, "all-MiniLM-L6-v2") for recipe, (_, _, _, label) in RECIPES.items()}
    best_seed = str(BEST_TEACHER_RUN.seed)
    lines = [
        "# Distilling the MPNet-base MASSIVE model into MiniLM-L6",
        "",
        "MASSIVE en-US intents: train 11,514, dev 2,033 (selection), test 2,974. Accuracy in %, mean ± sd over run seeds.",
        "The teacher uses the `make demo` recipe (configs/massive_intent.yaml: 3 epochs, bs 32, lr 1e-4, head lr 1e-3,",
        "LLRD 0.9, warm-up 6 %, linear decay); each student uses the recipe its row names (demo, or the 10-epoch",
        "configs/massive_best.yaml: bs 16, lr 5e-5, LLRD 0.95, warm-up 7 %) plus the teacher's soft targets on the same train rows.",
        "The `full-recipe teacher` rows learn instead from MPNet-base trained with configs/massive_best.yaml (the seed with",
        "the best dev accuracy of three), which also labels extra texts: every HWU64 (and CLINC150, where the row says so)",
        "utterance, all splits, CLINC150's out-of-scope ones too, that is not a MASSIVE train text, less those that match a",
        "MASSIVE dev or test text on letters and digits (dropped by the run and counted in its log; none is trained on):",
        "27.5k texts with CLINC150 (2,185 dropped). Label loss on the 11.5k labelled rows, soft-target loss on all rows.",
        "Inference: sentences/s at batch 64 over the test set on one thread (PyTorch fp32, and the int8 ONNX export), on the",
        "CPU in brackets. Run directories are not committed: when the teacher's was gone, the script trained it again with the",
        "same config and seed (`teacher retrained`); the students listed after such a retrain learned from it.",
        "",
        "| model | checkpoint | runs | test accuracy | dev accuracy | int8 ONNX test accuracy | torch sent/s | int8 sent/s |",
        "|---|---|---|---|---|---|---|---|",
        line("teacher (demo recipe, seed 1)", TEACHER_KEY, "1"),
        line("teacher (demo recipe, all seeds)", TEACHER_KEY),
        line("teacher retrained (demo recipe, seed 1, each retrain)", RETRAINED_KEY),
        line(f"full-recipe teacher (10-epoch recipe, seed {best_seed}: best dev of 3)", BEST_TEACHER_KEY, best_seed),
        *(line(f"student alone, {label}", ALONE_KEYS[recipe]) for recipe, (_, label) in ALONE.items()),
        *(line(f"student distilled, {label}", key) for label, key in students.items()),
        "",
        "Throughput against the teacher's (the mean of the MPNet-base teachers' measurements), on the same CPU (torch / int8 ONNX):",
        "",
    ]
    speeds = ("sentences_per_s_torch", "sentences_per_s_onnx_int8")
    # every teacher is MPNet-base: per CPU, the mean of all their measurements (taken in different sittings, beside
    # different background runs) stands for the teacher's speed
    teacher_found = {
        metric: [
            *values(RETRAINED_KEY, metric),
            *values(TEACHER_KEY, metric, seed="1"),
            *values(BEST_TEACHER_KEY, metric, seed=best_seed),
        ]
        for metric in speeds
    }
    teacher_rates = [
        {
            cpu: statistics.mean(float(r["value"]) for r in found if machine(r["cpu"]) == cpu)
            for cpu in sorted({machine(r["cpu"]) for r in found})
        }
        for found in teacher_found.values()
    ]
    for cpu in sorted(teacher_rates[0]):
        for label, key in students.items():
            pairs = [
                (rates(key, metric).get(cpu, 0.0), rate.get(cpu, 0.0))
                for metric, rate in zip(speeds, teacher_rates, strict=True)
            ]
            if all(student and teach for student, teach in pairs):
                lines.append(f"- {cpu}: {label}: {' / '.join(f'{student / teach:.1f}x' for student, teach in pairs)}")
    lines += [
        "",
        "Target (the base-model issue): a distilled MiniLM at >= 89.5 % test accuracy and >= 4x the teacher's inference",
        "throughput. Rows say on which CPU they ran: `experiments/results.csv` (experiments `massive_distill`, `massive_seed000`).",
        "",
    ]
    return write_markdown("massive_distill.md", lines)


if __name__ == "__main__":
    main(__doc__, runs(), render, before=prepare)
