"""Writes of the rlhf app: training runs (``runs``), the model registry (``registry``), turning generations
into comparison items (``generation``), training data (``data``) and the loop (``loop``)."""
