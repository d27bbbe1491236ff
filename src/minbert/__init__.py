"""minbert: pretrained BERT encoders -> sentence-level models, fast on a CPU.

import minbert
config = minbert.load_config("configs/massive_intent.yaml", ["--train.epochs", "1"])
run = minbert.train(config)                     # fine-tune, evaluate, save, report
model = minbert.load(run.output_dir)            # reload anywhere
model.predict(["wake me up at seven"])[0].label
# every run reloads as a Model: encoder, pooling, optional projection, named heads
#   multitask: model.predict([("a man plays", "a man is playing")], task="sts")  -> [4.6]
#   no heads (a plain checkpoint): minbert.load().encode(["a sentence"])

encoder = minbert.Encoder.from_pretrained()     # all-MiniLM-L6-v2, bundled
tokenizer = minbert.Tokenizer.from_pretrained()
out = encoder(**tokenizer(["hello world"]).as_kwargs())
"""

from minbert.config import RunConfig, load_config
from minbert.errors import MinbertError
from minbert.model.encoder import Encoder, EncoderConfig, EncoderOutput
from minbert.model.heads import HeadSpec
from minbert.model.task_model import Model, Prediction, load
from minbert.model.tokenizer import Tokenizer
from minbert.run import train
from minbert.scoring import evaluate

__version__ = "0.2.0"

__all__ = [
    "Encoder",
    "EncoderConfig",
    "EncoderOutput",
    "HeadSpec",
    "MinbertError",
    "Model",
    "Prediction",
    "RunConfig",
    "Tokenizer",
    "__version__",
    "evaluate",
    "load",
    "load_config",
    "train",
]
