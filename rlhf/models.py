"""The model registry and training orchestration (policy versions, reward models, training runs) land here
with the RLHF engine. This app may import ``labeling``; ``labeling`` never imports it."""
