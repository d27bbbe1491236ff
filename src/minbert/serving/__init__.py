"""HTTP serving of saved models (`minbert serve`): a FastAPI app with dynamic micro-batching."""
