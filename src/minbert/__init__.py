"""minbert: pretrained BERT encoders -> sentence-level models, fast on a CPU.

    import minbert
    encoder = minbert.Encoder.from_pretrained()          # all-MiniLM-L6-v2, bundled
    tokenizer = minbert.Tokenizer.from_pretrained()
    out = encoder(**tokenizer(["hello world"]).as_kwargs())
"""

from minbert.errors import MinbertError
from minbert.model.encoder import Encoder, EncoderConfig, EncoderOutput
from minbert.model.tokenizer import Tokenizer

__version__ = "0.1.0"

__all__ = ["Encoder", "EncoderConfig", "EncoderOutput", "MinbertError", "Tokenizer", "__version__"]
