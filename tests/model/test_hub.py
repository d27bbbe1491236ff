"""Checkpoints by Hub id, through the real `huggingface_hub` client against a local server that speaks the
Hub's file protocol (tests/hub_server.py), never the real Hub. Each client runs in its own process with
the environment a user would set (HF_HOME, HF_ENDPOINT, HF_HUB_OFFLINE), because huggingface_hub reads
them when it is imported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minbert.errors import MinbertError
from tests.hub_server import HubServer, Repo, folder_files

pytestmark = pytest.mark.slow

TOKENIZER = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def tiny_checkpoint(folder: Path, tokenizer_from: Path, seed: int, model_type: str = "bert") -> dict[str, bytes]:
    """A tiny BERT saved by transformers (config.json + model.safetensors) with the default tokenizer."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64
    )
    BertModel(config).save_pretrained(folder)
    for name in TOKENIZER:
        shutil.copy(tokenizer_from / name, folder / name)
    if model_type != "bert":
        raw = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**raw, "model_type": model_type}))
    files = folder_files(folder)
    files["flax_model.msgpack"] = b"weights minbert never reads"
    files["onnx/model.onnx"] = b"an export minbert never reads"
    return files


def sentence_transformers_layout(files: dict[str, bytes]) -> dict[str, bytes]:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    return {
        **files,
        "modules.json": json.dumps(modules).encode(),
        "1_Pooling/config.json": json.dumps(pooling).encode(),
        "sentence_bert_config.json": json.dumps({"max_seq_length": 40}).encode(),
    }


CLIENT = """
import json, sys
import minbert

out = {}
for name in sys.argv[1:]:
    try:
        model = minbert.Model.from_pretrained(name)
        vector = model.encode(["hello world"], normalize=False)[0]
        out[name] = {"pooling": model.config.pooling, "normalize": model.config.normalize,
                     "max_length": model.config.max_length, "first": float(vector[0])}
    except minbert.MinbertError as e:
        out[name] = "error: " + str(e)
print(json.dumps(out))
"""


def client(env: dict[str, str], *names: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, *names], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hub(tmp_path_factory, checkpoint_dir):
    root = tmp_path_factory.mktemp("hub")
    tiny = tiny_checkpoint(root / "tiny", checkpoint_dir, seed=1)
    pinned = tiny_checkpoint(root / "tiny_v1", checkpoint_dir, seed=2)
    repos = {
        "org/tiny": Repo({"main": tiny, "v1": pinned}),
        "org/st": Repo({"main": sentence_transformers_layout(tiny)}),
        "plainid": Repo({"main": tiny}),
        "org/gated": Repo({"main": tiny}, gated=True),
        "org/cut": Repo({"main": tiny}, truncated={"model.safetensors"}),
        "org/gpt": Repo({"main": tiny_checkpoint(root / "gpt", checkpoint_dir, seed=3, model_type="gpt2")}),
    }
    with HubServer(repos) as server:
        env = {**os.environ, "HF_HOME": str(root / "hf_home"), "HF_ENDPOINT": server.url, "HF_HUB_DISABLE_XET": "1"}
        env.pop("HF_HUB_OFFLINE", None)
        yield server, env


def test_hub_ids_download_once_then_load_from_the_cache_and_offline(hub):
    server, env = hub
    first = client(env, "org/tiny", "org/tiny@v1", "org/st", "plainid")
    fetched = set(server.gets)
    assert {"org/tiny/config.json", "org/tiny/model.safetensors", "org/tiny/tokenizer.json"} <= fetched
    assert not any(name.endswith(("flax_model.msgpack", ".onnx")) for name in fetched)  # only what minbert reads
    assert first["org/tiny"]["pooling"] == "mean" and first["plainid"]["first"] == first["org/tiny"]["first"]
    assert first["org/tiny@v1"]["first"] != first["org/tiny"]["first"]  # the pinned revision's own weights
    st = first["org/st"]  # the sentence-transformers layout: its pooling, normalisation and length
    assert (st["pooling"], st["normalize"], st["max_length"]) == ("cls", True, 40)

    gets = sum(server.gets.values())
    again = client(env, "org/tiny", "org/st")
    assert sum(server.gets.values()) == gets  # a cache hit downloads nothing again
    assert again["org/tiny"] == first["org/tiny"]

    offline = client(
        {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}, "org/tiny", "org/st", "org/new"
    )
    assert offline["org/tiny"] == first["org/tiny"] and offline["org/st"] == st
    assert offline["org/new"].startswith("error: org/new: not in the Hugging Face cache, and the Hub cannot be reached")
    assert "HF_HUB_OFFLINE" in offline["org/new"]


def test_hub_failures_are_one_line_errors_that_name_the_fix(hub):
    server, env = hub
    failed = client(env, "org/missing", "org/gated", "org/tiny@nope", "org/cut", "org/gpt")
    assert failed["org/missing"].startswith("error: org/missing: no such local directory, and no model of that id")
    assert "HF_TOKEN" in failed["org/missing"]
    assert "gated repository" in failed["org/gated"] and "HF_TOKEN" in failed["org/gated"]
    assert (
        failed["org/tiny@nope"]
        == "error: org/tiny@nope: the repository has no revision 'nope'; give a branch, tag or commit"
    )
    assert "downloading model.safetensors failed" in failed["org/cut"] and "run again" in failed["org/cut"]
    assert "model_type 'gpt2' is not an encoder minbert implements" in failed["org/gpt"]
    assert "org/gpt/model.safetensors" not in server.gets  # refused before its weights were fetched
    assert all("\n" not in message for message in failed.values())


def test_a_checkpoint_transformers_downloaded_loads_offline(hub):
    """transformers fetches through the same cache; minbert then loads it with HF_HUB_OFFLINE=1."""
    server, env = hub
    script = (
        "from transformers import AutoModel, AutoTokenizer\n"
        "AutoModel.from_pretrained('org/tiny'); AutoTokenizer.from_pretrained('org/tiny')\n"
    )
    home = Path(env["HF_HOME"]).parent / "transformers_home"
    env = {**env, "HF_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    offline = client({**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}, "org/tiny")
    assert isinstance(offline["org/tiny"], dict) and offline["org/tiny"]["pooling"] == "mean"


def test_a_mistyped_run_path_is_not_looked_up_on_the_hub(tmp_path, monkeypatch):
    """`minbert serve runs/mine` with runs/ here but no runs/mine: a missing path, said at once, not a Hub
    repository of an org called "runs" tried with retries."""
    from minbert.model.checkpoint import resolve_checkpoint

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # any Hub request would fail, slowly
    with pytest.raises(MinbertError, match=r"runs/mine: checkpoint directory does not exist \(runs/ is a folder here"):
        resolve_checkpoint("runs/mine")
