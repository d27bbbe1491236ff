"""Tasks give the trainer batches, a loss and metrics; the trainer knows nothing else about them."""
